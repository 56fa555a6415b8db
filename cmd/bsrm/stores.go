package bsrm

import (
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
	"github.com/buttersink/buttersink/lib/objstore/s3store"
)

// stores are the object stores bsrm links; it lists s3:// and file://
// locations in-process with them rather than through bss3ls.
var stores = objstore.Openers{location.S3: s3store.Open, location.File: filestore.Open}
