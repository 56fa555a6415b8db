package main

// bsrm links lib/objstore anyway: list s3:// and file:// locations
// in-process rather than through bss3ls.
import _ "github.com/buttersink/buttersink/lib/inventory/objlist"
