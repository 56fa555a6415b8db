// Package bsrm is the command bsrm: it deletes snapshots: the delete steps of a plan on stdin,
// within the directories named on its command line, or snapshots named
// as DIR/NAME; with --incomplete AGE, the unfinished uploads of object stores.
package bsrm

import (
	"context"
	"strings"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/remote"
)

type flags struct {
	cli.Globals
	Remote  remote.Flags   `embed:""`
	Objects objstore.Flags `embed:""`
	Lock    lock.Flags     `embed:""`
	Stats   metrics.Flags  `embed:""`

	DryRun     bool     `short:"n" name:"dry-run" help:"Check everything and print what would be deleted, deleting nothing."`
	Incomplete string   `name:"incomplete" placeholder:"AGE" help:"Instead of reading steps, abort the unfinished uploads older than AGE (24h, 90m, 7d, 0s) in the s3:// or file:// directories given."`
	Locations  []string `arg:"" name:"LOCATION" help:"DIR/ to allow the delete steps on stdin within DIR, or DIR/NAME to delete that snapshot."`
}

// Main runs bsrm on args (those after the command's name) and returns its
// exit status; cmd/bs-s3 (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bsrm", "Delete snapshots: plan delete steps on stdin, or snapshots named on the command line.", &f, func(ctx context.Context, env *cli.Env) error {
		rec := f.Stats.Recorder(strings.Join(f.Locations, " "))
		env.AtExit(rec.AtExit(env.Log))
		return Run(ctx, env, Options{Locations: f.Locations, DryRun: f.DryRun, Incomplete: f.Incomplete, Remote: f.Remote, Objects: f.Objects.Options(), Lock: f.Lock, Stats: &rec.Stats})
	})
}
