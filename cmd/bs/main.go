// Command bs is the multi-call binary of the buttersink commands that do
// not link the AWS SDK: bsls, bssend, bsrecv and checksumdir, run through
// links named for them (make build, make install, bs --install-links).
// bsls starts many times per run (once per location listed, over ssh
// too), so it must not pay for the SDK's initialisation: the commands
// that do reach S3 are in bs-s3 (cmd/bs-s3).
package main

import (
	"os"

	"github.com/buttersink/buttersink/cmd/bsls"
	"github.com/buttersink/buttersink/cmd/bsrecv"
	"github.com/buttersink/buttersink/cmd/bssend"
	"github.com/buttersink/buttersink/cmd/buttersink"
	"github.com/buttersink/buttersink/cmd/checksumdir"
	"github.com/buttersink/buttersink/lib/cli"
)

func main() {
	os.Exit(cli.Program{
		Name: "bs",
		Commands: map[string]func([]string) int{
			"bsls":        bsls.Main,
			"bsrecv":      bsrecv.Main,
			"bssend":      bssend.Main,
			"checksumdir": checksumdir.Main,
		},
		// The commands of cmd/bs-s3.
		Beside: map[string]string{
			"bsplan":  "bs-s3",
			"bsrm":    "bs-s3",
			"bss3get": "bs-s3",
			"bss3ls":  "bs-s3",
			"bss3put": "bs-s3",
		},
		Scripts: map[string][]byte{"buttersink": buttersink.Script},
	}.Run(os.Args))
}
