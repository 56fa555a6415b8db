// Command bs-s3 is the multi-call binary of the buttersink commands that
// link the AWS SDK (lib/objstore/s3store): bsplan, bsrm, bss3get, bss3ls
// and bss3put, run through links named for them. One binary holds the SDK
// once for all five; the other commands are in bs (cmd/bs).
package main

import (
	"os"

	"github.com/buttersink/buttersink/cmd/bsplan"
	"github.com/buttersink/buttersink/cmd/bsrm"
	"github.com/buttersink/buttersink/cmd/bss3get"
	"github.com/buttersink/buttersink/cmd/bss3ls"
	"github.com/buttersink/buttersink/cmd/bss3put"
	"github.com/buttersink/buttersink/lib/cli"
)

func main() {
	os.Exit(cli.Program{
		Name: "bs-s3",
		Commands: map[string]func([]string) int{
			"bsplan":  bsplan.Main,
			"bsrm":    bsrm.Main,
			"bss3get": bss3get.Main,
			"bss3ls":  bss3ls.Main,
			"bss3put": bss3put.Main,
		},
	}.Run(os.Args))
}
