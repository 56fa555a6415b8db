// Package bssend is the command bssend: it writes btrfs send streams to stdout, for snapshots named
// on the command line or by plan steps on stdin.
package bssend

import (
	"context"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/remote"
)

type flags struct {
	cli.Globals
	Remote remote.Flags `embed:""`

	Parent     string   `short:"p" placeholder:"PARENT" help:"Send incrementally from the read-only snapshot PARENT (also a clone source)."`
	Clone      []string `short:"c" placeholder:"CLONE" help:"Use the read-only snapshot CLONE as a clone source (repeatable)."`
	Proto      uint32   `name:"proto" placeholder:"N" help:"Send protocol version (default: the highest the kernel offers)."`
	Compressed bool     `name:"compressed-data" help:"Pass compressed extents through as they are (needs protocol 2)."`
	NoData     bool     `name:"no-data" help:"Send metadata only: file data becomes UPDATE_EXTENT sizes."`
	NoPrefetch bool     `name:"no-prefetch" help:"Do not read the snapshot ahead of the kernel's send (on by default: a cold send waits on the disk far less)."`
	Resume     string   `name:"resume" placeholder:"OFFSET:DIGEST" help:"Send the rest of the one SNAPSHOT's stream from this resume point (bsls --all), as a resumed stream; the whole stream if it differs."`
	Snapshots  []string `arg:"" optional:"" name:"SNAPSHOT" help:"Read-only snapshots to send; none: read plan steps (JSON Lines) on stdin."`
}

// Main runs bssend on args (those after the command's name) and returns its
// exit status; cmd/bs (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bssend", "Write btrfs send streams of snapshots to stdout.", &f, func(ctx context.Context, env *cli.Env) error {
		opts := Options{
			Snapshots: f.Snapshots, Parent: f.Parent, Clones: f.Clone,
			Proto: f.Proto, Compressed: f.Compressed, NoData: f.NoData, NoPrefetch: f.NoPrefetch, Remote: f.Remote,
		}
		if f.Resume != "" {
			r, err := plan.ParseResume(f.Resume)
			if err != nil {
				return cli.UsageError("--resume: %v", err)
			}
			opts.Resume = &r
		}
		return Run(ctx, env, opts)
	})
}
