// How bsrecv restores part of a chain into a plain directory
// (--include/--exclude with dir:// and --in-place): the whole chain, full
// stream first, is applied in one run into the directory's temporary
// name with the tar target's chain (tar.go, tartree.go: the same
// dropping of unselected data, the same answers to clones from an
// incremental's parent), then what is not selected is removed, the
// overlay's modes given to what stays, and only then the directory gets
// its name, its marker recording the patterns.

package bsrecv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/pathmatch"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// receiveFiltered restores the chain of streams r reads into the
// directory rv.inPlace; it returns how many streams it applied.
func (rv *plainReceiver) receiveFiltered(ctx context.Context, r *sendstream.Reader, opts Options) (int, int64, error) {
	filter, err := pathmatch.New(opts.Include, opts.Exclude)
	if err != nil {
		return 0, 0, cli.UsageError("%v", err)
	}
	s, err := r.Next()
	if err == io.EOF || errors.Is(err, sendstream.ErrEmpty) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	name := rv.inPlace
	target := rv.shown + name
	pd := receive.NewPlainDest(rv.destFD, rv.destFD)
	first := receive.ID{UUID: s.Subvol.UUID, CTransID: s.Subvol.CTransID}
	state, err := pd.Examine(name, first)
	if state == receive.PlainLeftover {
		rv.env.Log.Warn(target + ": deleting the leftover of an interrupted receive")
		err = pd.RemoveLeftover(name)
	} else if err == nil && state != receive.PlainNone {
		err = errors.New("already exists")
	}
	if err != nil {
		return 0, 0, hint.Wrap(fmt.Errorf("%s: %w: a filtered restore takes a whole chain into a new directory", target, err),
			"restore into a new name, or delete the directory and its marker first")
	}
	if err := receive.RemoveTree(rv.destFD, receive.StashName(name)); err != nil {
		return 0, 0, err
	}
	tfd, err := pd.BeginFiltered(name, first, snapshot.Filter{Include: opts.Include, Exclude: opts.Exclude})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", target, err)
	}
	n, total, last, applied, err := rv.applyChain(ctx, r, s, tfd, filter, name)
	unix.Close(tfd)
	if err == nil {
		err = pd.EndFiltered(name, last, applied)
	}
	if err != nil {
		if st, e := pd.Examine(name, first); e == nil && st == receive.PlainLeftover {
			if e := pd.RemoveLeftover(name); e != nil {
				rv.env.Log.Error("could not delete the partial directory; delete it by hand", "path", filepath.Join(rv.dest, receive.TempName(name)), "error", e)
			}
		}
		return n, total, err
	}
	return n, total, rv.report(ctx, rv.destFD, "", name)
}

// applyChain applies s and the streams after it into the directory open
// at tfd, then prunes it.
func (rv *plainReceiver) applyChain(ctx context.Context, r *sendstream.Reader, s *sendstream.Stream, tfd int, filter *pathmatch.Filter, name string) (n int, total int64, last receive.ID, applied []uuid.UUID, err error) {
	stash := filepath.Join(rv.dest, receive.StashName(name))
	if err := os.Mkdir(stash, 0o700); err != nil {
		return 0, 0, last, nil, err
	}
	defer func() {
		if e := receive.RemoveTree(rv.destFD, receive.StashName(name)); e != nil && err == nil {
			err = e
		}
	}()
	ch := &chain{root: tfd, tmp: stash, ov: newOverlay(filter), what: "a filtered restore"}
	defer ch.close()
	for ; ; n++ {
		if err := ctx.Err(); err != nil {
			return n, total, last, nil, err
		}
		if err := ch.begin(s.Subvol); err != nil {
			return n, total, last, nil, fmt.Errorf("%s%s", rv.shown, err)
		}
		if n > 0 {
			applied = append(applied, last.UUID)
		}
		last = *ch.prev
		if err := s.Commands(ch.command); err != nil {
			return n, total, last, nil, err
		}
		total += s.Size()
		if !ch.ended {
			return n, total, last, nil, fmt.Errorf("stream %s: no END", ch.name)
		}
		rv.env.Log.Debug("applied", "snapshot", ch.name, "bytes", s.Size())
		next, err := r.Next()
		if err == io.EOF || errors.Is(err, sendstream.ErrEmpty) {
			break
		}
		if err != nil {
			return n, total, last, nil, err
		}
		s = next
	}
	n++
	if err := ch.close(); err != nil {
		return n, total, last, nil, err
	}
	p := &pruner{ov: ch.ov}
	if _, err := p.walk(tfd, ""); err != nil {
		return n, total, last, nil, fmt.Errorf("%s: selecting: %w", rv.shown+name, err)
	}
	if p.unset != (receive.Unset{}) {
		rv.env.Log.Warn(fmt.Sprintf("%s: %d owners, %d device files, %d xattrs could not be set as a non-root user", rv.shown+name, p.unset.Owners, p.unset.Devices, p.unset.Xattrs))
	}
	return n, total, last, applied, nil
}

// pruner removes what the filter does not select from the restored
// directory, never following a symbolic link nor leaving it: the stream
// made every name in it, and none is trusted.
type pruner struct {
	ov    *overlay
	unset receive.Unset
}

// walk prunes the directory open at fd, the snapshot's path rel, and
// reports whether anything stays in it. The times of a directory that
// lost entries are put back.
func (p *pruner) walk(fd int, rel string) (kept bool, err error) {
	var self unix.Stat_t
	if err := unix.Fstat(fd, &self); err != nil {
		return false, err
	}
	dup, err := unix.Dup(fd)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(dup), rel)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return false, err
	}
	removed := false
	for _, e := range names {
		path := e
		if rel != "" {
			path = rel + "/" + e
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, e, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, err
		}
		keep := p.ov.filter.Match(path)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if p.ov.filter.Excluded(path) {
				if err := receive.RemoveTree(fd, e); err != nil {
					return false, err
				}
				removed = true
				continue
			}
			sub, err := unix.Openat(fd, e, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return false, fmt.Errorf("%s: %w", path, err)
			}
			below, err := p.walk(sub, path)
			unix.Close(sub)
			if err != nil {
				return false, err
			}
			keep = keep || below
			if !keep {
				if err := unix.Unlinkat(fd, e, unix.AT_REMOVEDIR); err != nil {
					return false, fmt.Errorf("%s: %w", path, err)
				}
				removed = true
				continue
			}
		} else if !keep {
			if err := unix.Unlinkat(fd, e, 0); err != nil {
				return false, fmt.Errorf("%s: %w", path, err)
			}
			removed = true
			continue
		}
		kept = true
		if err := p.finish(fd, e, path, &st); err != nil {
			return false, err
		}
	}
	if removed {
		// Removing entries changed the directory's times: the
		// snapshot's are put back.
		ts := []unix.Timespec{self.Atim, self.Mtim}
		if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
			return false, fmt.Errorf("%s: %w", showPath(rel), err)
		}
	}
	if rel == "" {
		return kept, p.finish(fd, "", "", &self)
	}
	return kept, nil
}

// finish checks that a kept entry has its data and gives it the mode the
// overlay holds; what the overlay holds beyond that is counted unset.
func (p *pruner) finish(dir int, name, path string, st *unix.Stat_t) error {
	k := devIno{uint64(st.Dev), st.Ino}
	if _, ok := p.ov.skipped[k]; ok && st.Mode&unix.S_IFMT == unix.S_IFREG {
		return hint.Wrap(fmt.Errorf("%s: selected, but its data was dropped when it was written under a name not selected (renamed into the selection later)", path),
			"restore without --include/--exclude, or with patterns that also select the name it was written under")
	}
	m := p.ov.byIno[k]
	if m == nil {
		return nil
	}
	if m.owner {
		p.unset.Owners++
	}
	if m.devType != 0 {
		p.unset.Devices++
	}
	p.unset.Xattrs += len(m.xattrs)
	if !m.hasMode || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	var err error
	if name == "" {
		err = unix.Fchmod(dir, m.mode&0o7777)
	} else {
		err = unix.Fchmodat(dir, name, m.mode&0o7777, 0) // not a symbolic link: checked
	}
	if err != nil {
		return fmt.Errorf("%s: %w", showPath(path), err)
	}
	return nil
}

func showPath(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
