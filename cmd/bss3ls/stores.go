package bss3ls

import (
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
	"github.com/buttersink/buttersink/lib/objstore/s3store"
)

// stores are the object stores bss3ls links.
var stores = objstore.Openers{location.S3: s3store.Open, location.File: filestore.Open}
