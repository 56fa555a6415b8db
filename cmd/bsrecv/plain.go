// How bsrecv receives into a plain-directory mirror (dir://): each
// stream becomes a directory DIR/NAME on whatever filesystem DIR is,
// made by lib/receive's PlainDest: no btrfs, no root needed. The
// destination is locked as a btrfs one is; a snapshot already complete
// there is skipped, the leftover of an interrupted receive (only one its
// marker proves bsrecv left) deleted first.

package bsrecv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/sendstream"
)

type plainReceiver struct {
	env     *cli.Env
	dest    string
	shown   string
	destFD  int
	nonRoot bool
	// inPlace is --in-place's directory name in dest ("" without it).
	inPlace string
	meter   *progress.Meter
	records *jsonl.Writer
}

// receivePlain receives the streams on stdin into the mirror at loc.
func receivePlain(ctx context.Context, env *cli.Env, opts Options, loc location.Location) error {
	dest := loc.Path()
	var inPlace string
	if opts.InPlace {
		if loc.Snapshot == "" {
			return cli.UsageError("--in-place: name the directory to receive into, as dir:///restore/home")
		}
		dest, inPlace = loc.Dir, loc.Snapshot
		if strings.Contains(inPlace, "/") {
			dest, inPlace = filepath.Join(loc.Dir, path.Dir(inPlace)), path.Base(inPlace)
		}
	}
	shown := location.Location{Scheme: location.Dir, Dir: dest}.DirString()
	// Resolved once: the lock and every receive act on one directory,
	// even when a symbolic link on the way changes while this runs.
	resolved, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return fmt.Errorf("destination %s: %w", shown, errors.Unwrap(err))
	}
	destFD, err := unix.Open(resolved, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("destination %s: %w", shown, err)
	}
	defer unix.Close(destFD)
	lk, err := lock.Dir(ctx, resolved, shown, opts.Lock.Options(env.Name, env.Log))
	if err != nil {
		return err
	}
	defer lk.Release()
	ctx = lk.Context()
	rv := &plainReceiver{env: env, dest: resolved, shown: shown, destFD: destFD, inPlace: inPlace,
		nonRoot: os.Geteuid() != 0, records: jsonl.NewWriter(env.Stdout)}
	if rv.meter = env.Meter(progress.RoleSink); rv.meter != nil {
		defer rv.meter.Close()
	}
	start := time.Now()
	var n, skipped int
	var total int64
	growPipe(env.Stdin)
	in := newCtxReader(ctx, env.Stdin)
	defer in.Close()
	r := sendstream.NewReader(in)
	r.OnCommand(func(_ *sendstream.Stream, c *sendstream.Command) error {
		if err := sendstream.CheckPaths(c); err != nil {
			return &sendstream.Error{Offset: c.Offset, Reason: "refused: " + err.Error(), Err: err}
		}
		return nil
	})
	filtered := len(opts.Include) > 0 || len(opts.Exclude) > 0
	if filtered {
		n, total, err = rv.receiveFiltered(ctx, r, opts)
	} else {
		n, skipped, total, err = receiveStreams(ctx, r, rv.receive)
	}
	return finish(env, opts.Stats, n, skipped, total, start, err)
}

// receive receives one stream; skipped reports that it was already there.
func (rv *plainReceiver) receive(ctx context.Context, s *sendstream.Stream) (skipped bool, err error) {
	h := s.Subvol
	rel := h.Path
	if err := names.Snapshot(rel); err != nil {
		return false, fmt.Errorf("stream %v: not a path below the destination", err)
	}
	if rv.inPlace != "" {
		rel = rv.inPlace
	}
	dir, base := path.Split(rel)
	dfd, err := openDirs(rv.destFD, dir)
	if err != nil {
		return false, fmt.Errorf("%s: %w", rv.shown+dir, err)
	}
	defer unix.Close(dfd)
	target := rv.shown + rel
	pd := receive.NewPlainDest(rv.destFD, dfd)
	pd.NonRoot = rv.nonRoot
	id := receive.ID{UUID: h.UUID, CTransID: h.CTransID}
	var parent *receive.ID
	if h.Snapshot {
		parent = &receive.ID{UUID: h.CloneUUID, CTransID: h.CloneCTransID}
	}
	var state receive.PlainState
	if rv.inPlace != "" {
		state, err = pd.ExamineInPlace(base, id, parent)
	} else {
		state, err = pd.Examine(base, id)
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", target, err)
	}
	switch state {
	case receive.PlainComplete:
		if _, err := io.Copy(io.Discard, s); err != nil {
			return false, err
		}
		rv.env.Log.Info(target + ": " + h.Path + " already received, skipped")
		return true, rv.report(ctx, dfd, dir, base)
	case receive.PlainLeftover:
		rv.env.Log.Warn(target + ": deleting the leftover of an interrupted receive")
		if err := pd.RemoveLeftover(base); err != nil {
			return false, fmt.Errorf("%s: %w", target, err)
		}
	}
	var tree receive.Tree
	if rv.inPlace != "" && parent != nil {
		tree, err = pd.BeginInPlace(base, id, *parent)
	} else {
		tree, err = pd.Begin(base, id, parent)
	}
	if err == nil {
		err = rv.apply(ctx, s, tree, id, h.Path)
		tree.Close()
	} else {
		err = fmt.Errorf("%s: %w", target, err)
	}
	if err != nil {
		if st, e := pd.Examine(base, id); e == nil && st == receive.PlainLeftover {
			if e := pd.RemoveLeftover(base); e != nil {
				rv.env.Log.Error("could not delete the partial directory; delete it by hand", "path", filepath.Join(rv.dest, dir, receive.TempName(base)), "error", e)
			}
		}
		return false, err
	}
	if pt, ok := tree.(*receive.PlainTree); ok {
		if u := pt.Unset(); u != (receive.Unset{}) {
			rv.env.Log.Warn(fmt.Sprintf("%s: %d owners, %d device files, %d xattrs could not be set as a non-root user", target, u.Owners, u.Devices, u.Xattrs))
		}
	}
	rv.env.Log.Debug("received", "snapshot", rel, "bytes", s.Size())
	return false, rv.report(ctx, dfd, dir, base)
}

// apply applies the rest of the stream to tree, each command once
// verified, in order, through END.
func (rv *plainReceiver) apply(ctx context.Context, s *sendstream.Stream, tree receive.Tree, id receive.ID, name string) error {
	if rv.meter != nil {
		rv.meter.Start(name, 0)
	}
	ap := &receive.Applier{Tree: tree, Self: id}
	var applyErr error
	err := s.Commands(func(c *sendstream.Command) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := ap.Command(c); err != nil {
			applyErr = fmt.Errorf("%s: receive failed: %w", rv.shown+name, err)
			return applyErr
		}
		if rv.meter != nil {
			rv.meter.Add(int64(c.Len()))
		}
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case applyErr != nil:
		return applyErr
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// openDirs opens the directory rel beneath dir, making what is missing,
// through no symbolic link.
func openDirs(dir int, rel string) (int, error) {
	fd, err := unix.Dup(dir)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		if c == "" {
			continue
		}
		if err := unix.Mkdirat(fd, c, 0o755); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, err
		}
		next, err := openDirBeneath(fd, c)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: %w (symbolic links are not followed below the destination)", c, err)
		}
		fd = next
	}
	return fd, nil
}

// report prints the received snapshot's record.
func (rv *plainReceiver) report(ctx context.Context, dfd int, dir, base string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := receive.ListPlain(dfd)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Path == base && e.Complete {
			r := inventory.DirRecord(dir+base, e)
			if err := rv.records.Write(&r); err != nil {
				return fmt.Errorf("writing stdout: %w", err)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: not complete after receiving", rv.shown+dir+base)
}
