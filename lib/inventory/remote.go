package inventory

import (
	"context"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/snapshot"
)

func listRemote(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	return nil, NotSupported(loc)
}
