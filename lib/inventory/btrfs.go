package inventory

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/lib/snapshot"
)

const hintNotBtrfs = "bsls lists btrfs subvolumes; for object stores use s3://bucket/prefix/ or file:///dir/"

// listBtrfs lists the subvolumes of a local btrfs location: every
// read-only one below loc.Dir (writable ones too with opts.All), or the
// one named by loc.Snapshot.
func listBtrfs(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	var subs []btrfs.Subvol
	var err error
	if loc.Snapshot == "" {
		subs, err = listBtrfsDir(loc.Dir)
	} else {
		subs, err = listBtrfsOne(loc, opts)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	partial := partialSubvolumes(subs)
	if loc.Snapshot != "" && !partial[0] && !subs[0].ReadOnly {
		// A named writable subvolume: judge it among its siblings.
		partial[0], err = partialAmongSiblings(loc, subs[0])
		if err != nil {
			return nil, err
		}
	}
	sizes, quotas, err := btrfs.Qgroups(loc.Dir)
	if err != nil {
		return nil, err
	}
	out := make([]snapshot.Snapshot, 0, len(subs))
	for i := range subs {
		s := &subs[i]
		if !s.ReadOnly && !opts.All {
			continue
		}
		r := snapshot.Snapshot{
			Kind:         snapshot.KindSubvolume,
			Path:         s.Path,
			ID:           s.ID,
			UUID:         s.UUID,
			ParentUUID:   s.ParentUUID,
			ReceivedUUID: s.ReceivedUUID,
			CTransID:     s.CTransID,
			OTransID:     s.OTransID,
			STransID:     s.STransID,
			RTransID:     s.RTransID,
			CTime:        s.CTime.UTC(),
			OTime:        s.OTime.UTC(),
			ReadOnly:     s.ReadOnly,
			Partial:      partial[i],
		}
		if !s.ReadOnly {
			var marked bool
			r.Resume, marked = resumePoint(loc.Dir, s)
			r.Partial = r.Partial || marked
		}
		if q, ok := sizes[s.ID]; quotas && ok {
			r.Referenced, r.Exclusive = &q.Referenced, &q.Exclusive
		}
		out = append(out, r)
	}
	return out, nil
}

// btrfsError adds the hint for a location that is not on btrfs.
func btrfsError(err error) error {
	if errors.Is(err, btrfs.ErrNotBtrfs) {
		return hint.Wrap(err, hintNotBtrfs)
	}
	return err
}

func listBtrfsDir(dir string) ([]btrfs.Subvol, error) {
	subs, err := btrfs.List(dir)
	if err != nil {
		return nil, btrfsError(err)
	}
	return subs, nil
}

func listBtrfsOne(loc location.Location, opts Options) ([]btrfs.Subvol, error) {
	p := loc.Path()
	s, err := btrfs.Info(p)
	if errors.Is(err, btrfs.ErrNotSubvolume) {
		return nil, hint.Wrap(err, fmt.Sprintf("to list the snapshots below a directory, end it with a slash: %s/", p))
	}
	if err != nil {
		return nil, btrfsError(err)
	}
	if !s.ReadOnly && !opts.All {
		return nil, hint.Wrap(fmt.Errorf("%s: not read-only: a writable subvolume, not a snapshot", p), "--all includes writable subvolumes")
	}
	s.Path = loc.Snapshot
	return []btrfs.Subvol{s}, nil
}

// Partial receives. The kernel keeps no mark of a receive in progress:
// btrfs receive (and bsrecv) create the subvolume writable, write the
// stream into it, then set the received UUID and finally make it
// read-only. A writable subvolume is therefore reported partial when
//
//  1. it has a received UUID: the receive was cut between setting the UUID
//     and the read-only flag (or a received snapshot was made writable);
//     either way it no longer provably matches the sender; or
//  2. it has no received UUID but sits in the same directory as a
//     read-only received snapshot: a receive into a backup directory that
//     was cut mid-stream; or
//  3. its receive marker holds a resume record for it (resumePoint).
//
// Any other writable subvolume (a working subvolume such as /home, or a
// writable snapshot next to local snapshots) is not partial. The first
// receive into an empty directory, cut short before its first resume
// record, is not recognised: it stays
// a writable subvolume that default listings leave out.
func partialSubvolumes(subs []btrfs.Subvol) []bool {
	type dirOf struct{ parent, dir uint64 }
	received := map[dirOf]bool{}
	for i := range subs {
		s := &subs[i]
		if s.ReadOnly && !s.ReceivedUUID.IsZero() {
			received[dirOf{s.ParentID, s.DirID}] = true
		}
	}
	out := make([]bool, len(subs))
	for i := range subs {
		s := &subs[i]
		if s.ReadOnly {
			continue
		}
		out[i] = !s.ReceivedUUID.IsZero() || received[dirOf{s.ParentID, s.DirID}]
	}
	return out
}

// resumePoint is the resume point of the partial receive into the
// writable subvolume s, if its exact point is known (resume.Load), and
// whether the receive marker beside s holds a record for s itself (rule 3
// of partialSubvolumes). A marker that cannot be read, or whose record is
// for another subvolume (one deleted and received anew at the same path,
// or a forgery), is ignored: the listing only reports.
func resumePoint(dir string, s *btrfs.Subvol) (*snapshot.Resume, bool) {
	rec, exact, ok, err := resume.Load(filepath.Join(dir, path.Dir(s.Path)), path.Base(s.Path))
	if err != nil || !ok || rec.Subvol != s.UUID {
		return nil, false
	}
	if !exact {
		return nil, true
	}
	return &snapshot.Resume{Offset: rec.Point.Offset, Digest: rec.Point.Digest, UUID: rec.UUID, CTransID: rec.CTransID,
		ParentUUID: rec.CloneUUID, ParentCTransID: rec.CloneCTransID}, true
}

// partialAmongSiblings applies rule 2 of partialSubvolumes to one named
// writable subvolume by listing its directory.
func partialAmongSiblings(loc location.Location, s btrfs.Subvol) (bool, error) {
	dir := filepath.Dir(loc.Path())
	siblings, err := btrfs.List(dir)
	if err != nil {
		return false, btrfsError(err)
	}
	for _, o := range siblings {
		if o.ReadOnly && !o.ReceivedUUID.IsZero() && o.ParentID == s.ParentID && o.DirID == s.DirID {
			return true, nil
		}
	}
	return false, nil
}
