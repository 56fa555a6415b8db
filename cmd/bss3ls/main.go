// Package bss3ls is the command bss3ls: it lists the send streams stored at an object-store location
// as JSON Lines; bsls runs it for s3:// and file:// locations, so that
// bsls itself does not link the AWS SDK.
package bss3ls

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"syscall"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/snapshot"
)

type flags struct {
	cli.Globals
	Store objstore.Flags `embed:""`

	All bool `short:"a" help:"Also list, marked partial, what is stored of streams stored as several objects whose set is not whole (an interrupted bss3put)."`

	Location string `arg:"" help:"s3://bucket/prefix/ or file:///dir/ for every stored stream, or .../NAME for one snapshot's."`
}

// Main runs bss3ls on args (those after the command's name) and returns its
// exit status; cmd/bs-s3 (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bss3ls", "List the send streams stored in an object store as JSON Lines, sorted by path.", &f, func(ctx context.Context, env *cli.Env) error {
		loc, err := location.Parse(f.Location)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		if !loc.IsObjectStore() {
			return cli.UsageError("%s: not an object store: want s3:// or file://", loc)
		}
		recs, err := stores.ListStreams(ctx, loc, f.Store.Options())
		if err != nil && (!f.All || loc.Snapshot == "") {
			return err
		}
		if f.All {
			st, oerr := stores.Open(ctx, loc, f.Store.Options())
			if oerr != nil {
				return oerr
			}
			part, perr := objstore.PartialSets(ctx, st, loc)
			if perr != nil {
				return perr
			}
			if err != nil && len(part) == 0 {
				return err
			}
			recs = append(recs, part...)
			sort.SliceStable(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
		}
		if err := snapshot.WriteLines(env.Stdout, recs); err != nil {
			if errors.Is(err, syscall.EPIPE) {
				// The reader took what it wanted (bss3ls | head).
				return &cli.ExitError{Code: cli.ExitFailure}
			}
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	})
}
