package inventory

import (
	"context"
	"fmt"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// listDir lists a plain-directory mirror (dir://): every snapshot
// directory below loc.Dir whose marker says complete (with opts.All the
// receives in progress or interrupted too, as partial), or the one named.
// A directory is identified by its marker's own uuid, and correlates with
// its source by its received uuid, as a received subvolume does.
func listDir(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	dir := loc.Dir
	if loc.Snapshot != "" {
		dir = filepath.Join(loc.Dir, path.Dir(loc.Snapshot))
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc.DirString(), err)
	}
	defer unix.Close(fd)
	ents, err := receive.ListPlain(fd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc.DirString(), err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []snapshot.Snapshot
	for _, e := range ents {
		p := e.Path
		if loc.Snapshot != "" {
			if p != path.Base(loc.Snapshot) {
				continue
			}
			p = loc.Snapshot
		}
		if !e.Complete && !opts.All {
			continue
		}
		out = append(out, DirRecord(p, e))
	}
	if loc.Snapshot != "" && len(out) == 0 {
		err := fmt.Errorf("%s: no complete snapshot directory of that name", loc)
		if !opts.All {
			return nil, hint.Wrap(err, "--all includes receives in progress or interrupted")
		}
		return nil, err
	}
	return out, nil
}

// DirRecord is the snapshot record of a mirror's directory.
func DirRecord(p string, e receive.PlainEntry) snapshot.Snapshot {
	m := e.Marker
	return snapshot.Snapshot{
		Kind:         snapshot.KindDirectory,
		Path:         p,
		UUID:         m.UUID,
		ParentUUID:   m.ParentUUID,
		ReceivedUUID: m.ReceivedUUID,
		STransID:     m.STransID,
		CTime:        m.CTime,
		OTime:        m.OTime,
		ReadOnly:     e.Complete && m.Filter == nil,
		// A selective restore holds part of a snapshot: listed, but
		// never taken for the snapshot (bsplan sends it nothing).
		Partial: !e.Complete || m.Filter != nil,
		Filter:  m.Filter,
	}
}
