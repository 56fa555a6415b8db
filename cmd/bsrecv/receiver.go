// How bsrecv works: it splits the concatenated send streams on
// stdin and applies each one itself (lib/receive) to a new subvolume
// below a destination directory, so that every failure belongs to one
// stream and its partial subvolume can be deleted.
//
// Nothing half-received may look complete. The reader verifies each
// command's CRC before it is applied; the subvolume is marked received
// and made read-only only at END, after all its data is durable: a
// damaged or missing END never reaches the applier. A receive cut short
// (input cut, interrupt, bsrecv killed) keeps its writable partial
// subvolume with its resume points (checkpoint.go), for a resumed stream
// to go on with; a wrong stream or a failing command deletes it.
// Every path of a stream is opened beneath the new subvolume's root with
// openat2, so the kernel keeps a hostile stream inside it; parents and
// clone sources are taken only below the destination directory.

package bsrecv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Options are bsrecv's arguments.
type Options struct {
	// Dest is the destination directory location.
	Dest string
	// Remote reaches ssh:// destinations (lib/remote).
	Remote remote.Flags
	// Lock says whether to wait for the destination's lock.
	Lock lock.Flags
	// InPlace applies every stream into the one directory Dest names
	// (dir:// only).
	InPlace bool
	// Include and Exclude select what a restore in place writes: the
	// whole chain is then taken in one run (plainfilter.go).
	Include, Exclude []string
	// Stats, when set, counts what is received.
	Stats *metrics.Stats
}

// finish ends a receive of n streams (skipped of them already there) of
// total bytes that began at start and ended with err: it counts them in
// st, where a received stream is stored whole (its bytes count as sent
// and stored), and with -v says so.
func finish(env *cli.Env, st *metrics.Stats, n, skipped int, total int64, start time.Time, err error) error {
	if st != nil {
		st.SnapshotsSent += int64(n - skipped)
		st.BytesSent += total
		st.BytesStored += total
	}
	if err != nil {
		return err
	}
	if env.Verbose > 0 {
		env.Log.Info(fmt.Sprintf("received %s (%d skipped)", progress.Summary(n, "snapshot", total, time.Since(start)), skipped))
	}
	return nil
}

// Run receives the streams on env.Stdin into opts.Dest.
func Run(ctx context.Context, env *cli.Env, opts Options) error {
	loc, err := location.Parse(opts.Dest)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	if opts.InPlace && loc.Scheme != location.Dir {
		return cli.UsageError("--in-place receives into a plain directory only (dir:///dir/NAME)")
	}
	switch loc.Scheme {
	case location.Btrfs:
		return receiveLocal(ctx, env, opts, loc.Path())
	case location.SSH:
		return receiveSSH(ctx, env, opts, loc)
	case location.Dir:
		return receivePlain(ctx, env, opts, loc)
	case location.S3, location.File:
		return hint.Wrap(fmt.Errorf("%s: an object store, not a btrfs directory", loc.DirString()), "use bss3put to store streams in an object store")
	}
	return fmt.Errorf("%s: unknown scheme", opts.Dest)
}

// receiveSSH is the hook for receiving on a remote host (ssh:// destinations).
func receiveSSH(ctx context.Context, env *cli.Env, opts Options, loc location.Location) error {
	// The remote bsrecv takes the destination's lock.
	return remote.Exec(ctx, remote.Stdio{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose}, opts.Remote, loc, "bsrecv", append(opts.Lock.Args(), remote.Path(loc))...)
}

type receiver struct {
	env  *cli.Env
	dest string
	// destFD is the destination directory, open: every subvolume is
	// made, and every parent or clone source found, beneath it.
	destFD  int
	meter   *progress.Meter
	records *jsonl.Writer
	// scope is what the current stream may refer to, loaded once per
	// stream (scope.go).
	scope *receive.Scope
	// cur is the UUID of the stream being checked: its CLONEs may name it.
	cur uuid.UUID
}

func receiveLocal(ctx context.Context, env *cli.Env, opts Options, dest string) error {
	fi, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dest, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("destination %s: not a directory", dest)
	}
	if ok, err := btrfs.IsBtrfs(dest); err != nil {
		return err
	} else if !ok {
		return hint.Wrap(fmt.Errorf("destination %s: not on a btrfs filesystem", dest), "bsrecv receives into btrfs; use bss3put file:///dir/ to store streams as files")
	}
	if err := btrfs.RequireAdmin(env.Name); err != nil {
		return err
	}
	// The destination is resolved once: its lock, the checks and the
	// receiving all act on one directory, even when a symbolic link on
	// the way is changed while this runs.
	shown := location.Location{Scheme: location.Btrfs, Dir: dest}.DirString()
	if dest, err = filepath.EvalSymlinks(dest); err != nil {
		return fmt.Errorf("destination %s: %w", shown, errors.Unwrap(err))
	}
	destFD, err := unix.Open(dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("destination %s: %w", shown, err)
	}
	defer unix.Close(destFD)
	// One writer at a time: another run's receive in progress is never
	// taken for a leftover, and what it completed meanwhile is skipped.
	lk, err := lock.Dir(ctx, dest, shown, opts.Lock.Options(env.Name, env.Log))
	if err != nil {
		return err
	}
	defer lk.Release()
	ctx = lk.Context()
	rv := &receiver{env: env, dest: dest, destFD: destFD, records: jsonl.NewWriter(env.Stdout)}
	if rv.meter = env.Meter(progress.RoleSink); rv.meter != nil {
		defer rv.meter.Close()
	}
	start := time.Now()
	growPipe(env.Stdin)
	in := newCtxReader(ctx, env.Stdin)
	defer in.Close()
	r := sendstream.NewReader(in)
	r.OnCommand(rv.check)
	n, skipped, total, err := receiveStreams(ctx, r, rv.receive)
	return finish(env, opts.Stats, n, skipped, total, start, err)
}

// receiveStreams hands each stream of r to receive in turn until the
// input ends (no stream at all is an empty plan: nothing to do), and
// counts the streams, those already there and their bytes.
func receiveStreams(ctx context.Context, r *sendstream.Reader, receive func(context.Context, *sendstream.Stream) (skipped bool, err error)) (n, skipped int, total int64, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return n, skipped, total, err
		}
		s, err := r.Next()
		if err == io.EOF || errors.Is(err, sendstream.ErrEmpty) {
			return n, skipped, total, nil
		}
		if err != nil {
			return n, skipped, total, err
		}
		skip, err := receive(ctx, s)
		total += s.Size()
		if err != nil {
			return n, skipped, total, err
		}
		n++
		if skip {
			skipped++
		}
	}
}

// growPipe makes f, when it is a pipe, hold 1 MiB (the default limit for
// unprivileged users) instead of 64 KiB: the sender then writes, and this
// reads, in larger pieces with far fewer wake-ups (a third of the CPU time
// of a pipeline here). A pipe that stays small works all the same.
func growPipe(f *os.File) {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
}

// What a stream's name is held by at the destination.
type holder int

const (
	holdNothing  holder = iota
	holdComplete        // the same snapshot, completely received
	holdWritable        // a writable subvolume, maybe a leftover of an interrupted receive
)

// receive receives one stream; skipped reports that it was already there.
func (rv *receiver) receive(ctx context.Context, s *sendstream.Stream) (skipped bool, err error) {
	h := s.Subvol
	rel := h.Path
	if err := names.Snapshot(rel); err != nil {
		return false, fmt.Errorf("stream %v: not a path below the destination", err)
	}
	dir, base := path.Split(rel)
	targetDir := filepath.Join(rv.dest, dir)
	target := filepath.Join(targetDir, base)

	// Look at (and later delete) nothing reached through a symbolic link.
	if _, err := walkDirs(rv.dest, dir, false); err != nil {
		return false, err
	}
	hold, err := examine(target, h)
	if err != nil {
		return false, err
	}
	if hold == holdComplete {
		return true, rv.skip(ctx, s, rel)
	}
	if h.Snapshot {
		if err := rv.inScope(h.CloneUUID, h.CloneCTransID); err != nil {
			return false, hint.Wrap(fmt.Errorf("%s: parent %s %w", target, h.CloneUUID.Canonical(), err),
				"receive the parent snapshot into "+rv.dest+" first, or send a full stream")
		}
	}
	created, err := walkDirs(rv.dest, dir, true)
	if err != nil {
		return false, err
	}
	m, err := takeMarker(targetDir, base, target)
	if err != nil {
		removeDirs(created)
		return false, err
	}
	// Under the marker's lock, look again: another run may have been
	// at it in between.
	hold, err = examine(target, h)
	var from *resumeFrom
	switch {
	case err != nil:
	case hold == holdComplete:
		m.release()
		return true, rv.skip(ctx, s, rel)
	case hold == holdWritable && m.created:
		err = hint.Wrap(fmt.Errorf("%s: already exists and is a writable subvolume that no bsrecv left (no receive marker %s)", target, m.path),
			"move or delete it, or receive into another directory")
	case hold == holdWritable:
		var info btrfs.Subvol
		if info, err = btrfs.Info(target); err != nil {
			break
		}
		rec, own := m.record(info)
		if !own && !m.madeAfter(info) {
			err = hint.Wrap(fmt.Errorf("%s: already exists and is a writable subvolume older than its receive marker %s (made %s, marker changed %s): not a leftover of bsrecv",
				target, m.path, info.OTime.UTC().Format(time.RFC3339Nano), m.changed.UTC().Format(time.RFC3339Nano)),
				"move or delete it (and the marker), or receive into another directory")
			break
		}
		if s.Resume != nil {
			from, err = rv.resumable(s, m, rec, own, target)
			if from != nil || !errors.Is(err, errStale) {
				break
			}
			// A partial that no stream can go on with goes, so that the
			// next plan sends the whole stream.
			rv.env.Log.Warn(target + ": deleting a partial receive that cannot be resumed")
			if derr := btrfs.Delete(target); derr != nil {
				err = derr
			}
			break
		}
		rv.env.Log.Warn(target + ": deleting the leftover of an interrupted receive")
		err = btrfs.Delete(target)
	case s.Resume != nil:
		err = fmt.Errorf("%s: %w: no partial receive there", target, errNoResume)
	}
	if errors.Is(err, errNoResume) || errors.Is(err, errStale) {
		err = hint.Wrap(err, "rerun bsplan; it will send the whole stream")
	}
	if err != nil {
		if m.created || errors.Is(err, errStale) {
			m.release()
		} else {
			m.keep()
		}
		removeDirs(created)
		return false, err
	}
	if from != nil {
		resume.Stamp(m.f, os.Getpid())
	} else if !m.created {
		m.stamp()
	}
	err = rv.run(ctx, s, m, dir, base, target, rel, from)
	if err == nil {
		var info btrfs.Subvol
		info, err = btrfs.Info(target)
		if err == nil && !complete(info, h) {
			err = fmt.Errorf("%s: incomplete after receiving (read-only %v, received uuid %s, stransid %d; want %s, %d)",
				target, info.ReadOnly, info.ReceivedUUID.Canonical(), info.STransID, h.UUID.Canonical(), h.CTransID)
		}
	}
	var kept *keptError
	if errors.As(err, &kept) {
		// Cut short, not wrong: the partial stays for a resumed stream.
		m.keep()
		rv.env.Log.Info(target + ": partial receive kept; the next run of the same plan resumes it")
		return false, kept.err
	}
	if errors.Is(err, errNoResume) {
		err = hint.Wrap(err, "rerun bsplan; it will send the whole stream")
	}
	if err != nil {
		if rv.cleanup(target) {
			m.release()
		} else {
			m.keep()
		}
		removeDirs(created)
		return false, err
	}
	m.release()
	rv.env.Log.Debug("received", "snapshot", rel, "bytes", s.Size())
	return false, rv.report(ctx, rel)
}

var (
	// errNoResume: a resumed stream for which no partial receive matches.
	errNoResume = errors.New("cannot resume")
	// errStale: a partial receive whose exact point is lost.
	errStale = errors.New("cannot resume")
)

// keptError is a receive cut short (interrupted, its input cut) whose
// partial subvolume is kept to be resumed.
type keptError struct{ err error }

func (e *keptError) Error() string { return e.err.Error() }
func (e *keptError) Unwrap() error { return e.err }

// resumeFrom is where a resumed receive goes on: rec, the record of the
// point the stream resumes from, and at, the point the partial holds
// exactly.
type resumeFrom struct {
	rec resume.Record
	at  resume.Progress
}

// resumable checks that the resumed stream s goes on with the partial
// receive at target: the marker's record is the partial's own (own), the
// progress page says exactly what is applied, in this boot, and the
// stream resumes from that exact point (what bsls reports) or from the
// record's (the start), whose commands up to the exact point are read
// without being applied.
func (rv *receiver) resumable(s *sendstream.Stream, m *marker, rec resume.Record, own bool, target string) (*resumeFrom, error) {
	if !own {
		return nil, fmt.Errorf("%s: %w: the partial receive there is not of this stream at offset %d", target, errNoResume, s.Resume.Offset)
	}
	p, ok := resume.ReadProgress(m.f)
	boot, err := resume.BootID()
	if err != nil {
		return nil, err
	}
	exact, ok := resume.Exact(rec, p, boot)
	if !ok {
		return nil, fmt.Errorf("%s: %w: what the partial receive holds is unknown since the system restarted", target, errStale)
	}
	switch {
	case exact.Resumes(s.Subvol, *s.Resume):
		return &resumeFrom{rec: exact, at: p}, nil
	case rec.Resumes(s.Subvol, *s.Resume):
		return &resumeFrom{rec: rec, at: p}, nil
	}
	return nil, fmt.Errorf("%s: %w: the partial receive there is not of this stream at offset %d", target, errNoResume, s.Resume.Offset)
}

// skip reads (and verifies) a stream whose snapshot is already there, to
// reach the next one, and reports the snapshot.
func (rv *receiver) skip(ctx context.Context, s *sendstream.Stream, rel string) error {
	if _, err := io.Copy(io.Discard, s); err != nil {
		return err
	}
	rv.env.Log.Info(rel + ": already received, skipped")
	return rv.report(ctx, rel)
}

func complete(info btrfs.Subvol, h sendstream.Head) bool {
	return info.ReadOnly && info.ReceivedUUID == h.UUID && info.STransID == h.CTransID
}

// examine decides what holds the stream's name at the destination.
func examine(target string, h sendstream.Head) (holder, error) {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return holdNothing, nil
	}
	if err != nil {
		return 0, err
	}
	notOurs := func(what string) error {
		return hint.Wrap(fmt.Errorf("%s: already exists and %s", target, what), "move it away, or receive into another directory")
	}
	if !fi.IsDir() {
		return 0, notOurs("is not a subvolume")
	}
	// Its directory is on the destination's mount (walkDirs); a mount on
	// it holds something else.
	if m, err := mountID(target); err != nil {
		return 0, err
	} else if d, err := mountID(filepath.Dir(target)); err != nil {
		return 0, err
	} else if m != d {
		return 0, notOurs("is a mount point")
	}
	if ok, err := btrfs.IsSubvolume(target); err != nil {
		return 0, err
	} else if !ok {
		return 0, notOurs("is not a subvolume")
	}
	info, err := btrfs.Info(target)
	if err != nil {
		return 0, err
	}
	switch {
	case complete(info, h):
		return holdComplete, nil
	case !info.ReadOnly && (info.ReceivedUUID.IsZero() || info.ReceivedUUID == h.UUID):
		// What a receive leaves when cut short: writable, without (or,
		// cut between the two final steps, with) the received UUID.
		// Only a receive marker tells whether bsrecv made it.
		return holdWritable, nil
	}
	return 0, notOurs(fmt.Sprintf("is another snapshot (uuid %s, received uuid %s)", info.UUID.Canonical(), info.ReceivedUUID.Canonical()))
}

// mountPoint is the mount point of the filesystem holding dir.
func mountPoint(dir string) (string, error) {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	best := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return "", errors.New("no mount point")
	}
	return best, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + int(c-'0')
			}
			if ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// walkDirs checks the directories of rel below dest, refusing to pass
// through anything but real directories of dest's mount; with create it
// makes the missing ones and returns those it made (outermost first).
func walkDirs(dest, rel string, create bool) ([]string, error) {
	var created []string
	p := dest
	mnt, err := mountID(dest)
	if err != nil {
		return nil, err
	}
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		if c == "" {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !create:
			return nil, nil
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return created, err
			}
			created = append(created, p)
		case err != nil:
			return created, err
		case !fi.IsDir():
			return created, fmt.Errorf("%s: not a directory (symbolic links are not followed below the destination)", p)
		default:
			// The subvolume is made beneath dest's mount only
			// (openDirBeneath): nothing, not even its marker, is made
			// below a mount point, which may hold anything.
			if m, err := mountID(p); err != nil {
				return created, err
			} else if m != mnt {
				return created, fmt.Errorf("%s: a mount point (mounts below the destination are not received into)", p)
			}
		}
	}
	return created, nil
}

// mountID is the id of the mount p is on, not following a last symbolic
// link; 0 where the kernel does not tell (before 5.8).
func mountID(p string) (uint64, error) {
	var stx unix.Statx_t
	for {
		err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "statx", Path: p, Err: err}
		}
		break
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, nil
	}
	return stx.Mnt_id, nil
}

// cleanup deletes the partial subvolume a failed receive left at target.
// It reports whether no subvolume is left there.
func (rv *receiver) cleanup(target string) bool {
	if ok, _ := btrfs.IsSubvolume(target); ok {
		if err := btrfs.Delete(target); err != nil {
			rv.env.Log.Error("could not delete the partial subvolume; delete it by hand", "path", target, "error", err)
			return false
		}
		rv.env.Log.Debug("deleted partial subvolume", "path", target)
	}
	return true
}

// removeDirs removes the directories walkDirs made, innermost first, as
// far as they are empty.
func removeDirs(created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		os.Remove(created[i])
	}
}

// run makes the subvolume base in the directory dir below the
// destination (or, resuming, reopens it) and applies the rest of the
// stream s to it, each command once verified (after check), in order,
// through END. A receive cut short returns a *keptError.
func (rv *receiver) run(ctx context.Context, s *sendstream.Stream, m *marker, dir, base, target, rel string, from *resumeFrom) error {
	dfd, err := openDirBeneath(rv.destFD, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(rv.dest, dir), err)
	}
	defer unix.Close(dfd)
	sc, err := rv.loadScope()
	if err != nil {
		return err
	}
	h := s.Subvol
	id := receive.ID{UUID: h.UUID, CTransID: h.CTransID}
	var parent *receive.ID
	if h.Snapshot {
		parent = &receive.ID{UUID: h.CloneUUID, CTransID: h.CloneCTransID}
	}
	dest := receive.NewBtrfsDest(dfd, sc)
	var tree receive.Tree
	var d *resume.Digester
	var self uuid.UUID
	if from == nil {
		if tree, err = dest.Begin(base, id, parent); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
		d = resume.Start(s.Version)
	} else {
		self = from.rec.Subvol
		if tree, err = dest.Reopen(base, id, parent, self); err != nil {
			return fmt.Errorf("%s: cannot resume: %w", target, err)
		}
		if d, err = from.rec.Digester(); err != nil {
			tree.Close()
			return err
		}
	}
	defer tree.Close()
	if parent != nil {
		defer warm(ctx, tree)()
	}
	if from == nil {
		// Every partial has a record naming it: what makes it a leftover
		// of bsrecv, and resumable from its start. After a crash its
		// progress page is void anyway, and the marker's ctime (stamped
		// before the subvolume was made) shows it a leftover: the record
		// need not be durable.
		info, err := btrfs.Info(target)
		if err != nil {
			return err
		}
		self = info.UUID
		w, err := resume.NewWriter(m.f)
		if err != nil {
			return err
		}
		if err := w.Put(resume.NewRecord(self, h, d, time.Now())); err != nil {
			return fmt.Errorf("receive marker %s: %w", m.path, err)
		}
	}
	prog, err := resume.MapProgress(m.f, self)
	if err != nil {
		return err
	}
	defer prog.Close()
	if from == nil {
		// The start is a point too, and the page may hold an earlier
		// receive's into another subvolume.
		prog.Set(d)
	}
	if rv.meter != nil {
		rv.meter.Start(rel, 0)
	}
	ap := &receive.Applier{Tree: tree, Self: id}
	// Resuming, the commands up to the exact point are in the subvolume
	// already; the one after it may be too (bsrecv died before noting it).
	skipTo, inFlight := int64(-1), false
	var atDigest [32]byte
	if from != nil {
		skipTo, inFlight = from.at.Offset, true
		at, err := from.at.Point()
		if err != nil {
			return fmt.Errorf("%s: %w: %v", target, errStale, err)
		}
		atDigest = at.Digest
	}
	var applyErr error
	cmds := s.Commands
	if from != nil {
		cmds = s.ResumeCommands
	}
	err = cmds(func(c *sendstream.Command) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := c.Header()
		if rv.meter != nil {
			rv.meter.Add(int64(c.Len()))
		}
		if d.Offset() < skipTo {
			d.Command(hdr[:])
			if o := d.Offset(); o > skipTo || o == skipTo && d.Point().Digest != atDigest {
				applyErr = fmt.Errorf("%s: %w: the stream differs from what the partial receive applied", target, errNoResume)
				return applyErr
			}
			return nil
		}
		if skipTo >= 0 && d.Offset() == skipTo && d.Point().Digest != atDigest {
			applyErr = fmt.Errorf("%s: %w: the stream differs from what the partial receive applied", target, errNoResume)
			return applyErr
		}
		skipTo = -1
		ap.Replay = inFlight
		if err := ap.Command(c); err != nil {
			applyErr = fmt.Errorf("%s: receive failed: %w", target, err)
			return applyErr
		}
		d.Command(hdr[:])
		// A command held back is not in the tree yet: the exact point
		// moves only where the tree is at the commands given.
		if !ap.Holding() {
			prog.Set(d)
			inFlight = false
		}
		return nil
	})
	var se *sendstream.Error
	switch {
	case ctx.Err() != nil:
		return &keptError{ctx.Err()}
	case applyErr != nil:
		return applyErr
	case errors.As(err, &se) && se.Cut:
		return &keptError{fmt.Errorf("%s: %w", rel, err)}
	case err != nil:
		return fmt.Errorf("%s: %w", rel, err)
	case !d.Ended():
		return &keptError{fmt.Errorf("%s: the stream ends before its END", rel)}
	}
	return nil
}

// warm reads the tree of an incremental's new subvolume ahead of the
// receive (btrfs.WarmTree) on its own descriptor, until the returned
// function stops it and waits for it.
func warm(ctx context.Context, tree receive.Tree) func() {
	r, ok := tree.(interface{ Root() int })
	if !ok {
		return func() {}
	}
	fd, err := unix.FcntlInt(uintptr(r.Root()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer unix.Close(fd)
		// Only a speed-up: the receive reads whatever it needs itself.
		btrfs.WarmTree(ctx, fd)
	}()
	return func() {
		cancel()
		<-done
	}
}

// openDirBeneath opens the directory rel beneath dir, through no symbolic
// link, magic link or mount point.
func openDirBeneath(dir int, rel string) (int, error) {
	if rel = strings.Trim(rel, "/"); rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dir, rel, &how)
		// EAGAIN: a rename raced the lookup; it is safe to retry.
		if err != unix.EINTR && (err != unix.EAGAIN || i >= 16) {
			return fd, err
		}
	}
}

// report prints the received snapshot's record.
func (rv *receiver) report(ctx context.Context, rel string) error {
	recs, err := inventory.List(ctx, location.Location{Scheme: location.Btrfs, Dir: rv.dest, Snapshot: rel}, inventory.Options{})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := rv.records.Write(r); err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
	}
	return nil
}
