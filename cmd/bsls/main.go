// Package bsls is the command bsls: it lists btrfs snapshots (or the stored streams of an object
// store) as JSON Lines or a table.
package bsls

import (
	"context"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/objstore/objopts"
	"github.com/buttersink/buttersink/lib/remote"
)

// bsls links no object store (lib/objstore/s3store links the AWS SDK):
// it leaves inventory.Options.ListObjects nil, so s3:// and file://
// locations are listed by bss3ls; the S3 flags come from objopts.
type flags struct {
	cli.Globals
	Remote  remote.Flags  `embed:""`
	Objects objopts.Flags `embed:""`

	JSON      bool   `help:"Print JSON Lines (the default when stdout is not a terminal)." xor:"format"`
	Table     bool   `help:"Print an aligned table (the default on a terminal)." xor:"format"`
	Tree      bool   `help:"Show the snapshots as their restore chains: each below the one it is restored on top of, with the chain's length and size." xor:"view"`
	Inventory bool   `help:"Show one line per prefix (snapshot path up to its last slash): how many snapshots, their size, the newest and its age; the default on a terminal for an object store holding several prefixes." xor:"view"`
	All       bool   `short:"a" help:"Include writable subvolumes; mark leftovers of interrupted receives as partial."`
	Location  string `arg:"" help:"DIR/ for every snapshot below DIR, or DIR/NAME for one; btrfs://, s3://, file:// or ssh:// locations."`
}

// Main runs bsls on args (those after the command's name) and returns its
// exit status; cmd/bs (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bsls", "List the snapshots at a location, sorted by path.", &f, func(ctx context.Context, env *cli.Env) error {
		opts := Options{Location: f.Location, All: f.All, Remote: f.Remote, Objects: f.Objects.Options()}
		switch {
		case f.JSON:
			opts.Format = JSON
		case f.Table:
			opts.Format = Table
		}
		switch {
		case f.Tree:
			opts.View = Tree
		case f.Inventory:
			opts.View = Inventory
		case f.Table:
			opts.View = RecordsOnly
		}
		return Run(ctx, env, opts)
	})
}
