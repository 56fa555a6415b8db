// Package buttersink holds the buttersink script (buttersink.sh, POSIX
// sh), so that `bs --install-links` can write it where `go install`
// cannot.
package buttersink

import _ "embed"

// Script is buttersink.sh.
//
//go:embed buttersink.sh
var Script []byte
