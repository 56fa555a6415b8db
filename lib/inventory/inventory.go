// Package inventory lists the snapshots at a location, whatever kind of
// store holds them, as snapshot records: what bsls prints and bsplan plans
// over.
package inventory

import (
	"context"
	"fmt"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore/objopts"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// Options tune a listing.
type Options struct {
	// All includes writable subvolumes (and marks partial receives).
	All bool
	// Remote is how ssh:// locations are reached (the command's --ssh
	// and --sudo flags).
	Remote remote.Flags
	// Objects is how s3:// locations are reached (the command's
	// objopts.Flags: --profile, --endpoint-url, --region, --path-style).
	Objects objopts.Options
	// ListObjects lists s3:// and file:// locations in-process: a
	// command that links the object stores sets it (to its
	// objstore.Openers' ListStreams). When nil, List runs bss3ls, so that
	// a command without the stores (bsls) does not link the AWS SDK,
	// whose package initialisation alone would make bsls on btrfs several
	// times slower.
	ListObjects func(ctx context.Context, loc location.Location, opts objopts.Options) ([]snapshot.Snapshot, error)
}

// List returns the snapshots at loc: every read-only snapshot below the
// directory, or the one snapshot named. Paths are relative to loc.Dir.
func List(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	switch loc.Scheme {
	case location.Btrfs:
		return listBtrfs(ctx, loc, opts)
	case location.S3, location.File:
		return listObjects(ctx, loc, opts)
	case location.SSH:
		return listRemote(ctx, loc, opts)
	case location.Dir:
		return listDir(ctx, loc, opts)
	}
	return nil, fmt.Errorf("%s: unknown scheme", loc)
}
