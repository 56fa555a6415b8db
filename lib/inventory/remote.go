package inventory

import (
	"context"
	"os"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// listRemote runs bsls on the location's host (lib/remote); the remote
// command's messages go to stderr like the local command's own.
func listRemote(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	return opts.Remote.List(ctx, loc, opts.All, os.Stderr, nil)
}
