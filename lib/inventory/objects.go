package inventory

import (
	"context"
	"sort"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// listObjects lists the streams stored below an s3:// or file:// directory:
// one record per object whose key is in a known format (buttersink,
// buttersink-v0, btrfs2s3), from the keys alone: one ListObjectsV2 per
// 1,000 objects, no GET or HEAD. Other objects are skipped. A location
// naming a snapshot lists that snapshot's objects only.
func listObjects(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	st, err := objstore.Open(ctx, loc, opts.Objects)
	if err != nil {
		return nil, err
	}
	objs, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []snapshot.Snapshot
	for _, o := range objs {
		rec, ok := objstore.Record(o)
		if !ok {
			continue
		}
		if loc.Snapshot != "" && rec.Path != loc.Snapshot {
			continue
		}
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}
