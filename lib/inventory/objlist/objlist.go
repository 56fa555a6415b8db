// Package objlist lists the streams stored at s3:// and file:// locations
// in-process with lib/objstore. Importing it makes lib/inventory use it;
// without it (bsls, which must not link the AWS SDK) lib/inventory runs
// bss3ls for those locations.
package objlist

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/snapshot"
)

func init() { inventory.SetObjectLister(List) }

// List lists the streams stored below an s3:// or file:// directory: one
// record per object whose key is in a known format (buttersink,
// buttersink-v0, btrfs2s3), from the keys alone: one ListObjectsV2 per
// 1,000 objects, no GET; a HEAD only for each buttersink object completed
// from a multipart upload, whose digest the listing cannot show (an
// object without it is not stored, see objstore.Stored). Other objects
// are skipped. A location naming a snapshot lists that snapshot's objects
// only, and is an error when there are none (with a hint when the name is
// a directory of objects: s3://bucket/prefix without its slash). Records
// are sorted by path, then key.
func List(ctx context.Context, loc location.Location, opts objstore.Options) ([]snapshot.Snapshot, error) {
	st, err := objstore.Open(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	objs, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	// An object completed without its digest is not a stored stream.
	if objs, err = objstore.Stored(ctx, st, objs); err != nil {
		return nil, err
	}
	var out []snapshot.Snapshot
	dir := false // loc names a directory of objects rather than a snapshot
	for _, o := range objs {
		if loc.Snapshot != "" && strings.HasPrefix(o.Key, loc.Snapshot+"/") {
			dir = true
		}
		rec, ok := objstore.Record(o)
		if !ok {
			continue
		}
		if loc.Snapshot != "" && rec.Path != loc.Snapshot {
			continue
		}
		out = append(out, rec)
	}
	if loc.Snapshot != "" && len(out) == 0 {
		if dir {
			return nil, hint.Wrap(fmt.Errorf("%s: no stored stream of a snapshot of that name", loc),
				fmt.Sprintf("to list the snapshots below a directory, end it with a slash: %s/", loc))
		}
		return nil, fmt.Errorf("%s: no stored stream of a snapshot of that name", loc)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}
