// How bssend works: it runs the kernel's send for each snapshot
// named on the command line or by a plan step on stdin and writes the
// streams, back to back, to stdout.
//
// Bytes are copied as little as possible. When nothing needs to see them
// (no progress, no summary, no path rewrite) and stdout is a blocking pipe,
// the kernel writes straight into it. Otherwise it writes into a pipe of
// ours that is spliced to stdout at stdout's position (a copy through a
// reused buffer only when stdout cannot take a splice, e.g. a file opened
// with O_APPEND), counting bytes on the way.
//
// A job with a resume point (a plan step's "resume", or --resume) reads
// the kernel's stream up to the point instead, and sends the rest as a
// resumed stream, or, when the stream turns out to differ, a new send's
// whole stream (resumeOut).

package bssend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/uuid"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/lib/sendstream"
)

// Options are bssend's flags and arguments.
type Options struct {
	// Snapshots are the subvolumes to send; none means plan steps on stdin.
	Snapshots []string
	Parent    string
	Clones    []string
	// Proto is the send protocol; 0 means the kernel's highest.
	Proto      uint32
	Compressed bool
	NoData     bool
	// NoPrefetch turns off reading ahead of the kernel's send.
	NoPrefetch bool
	// Resume is the resume point of the one snapshot named (--resume).
	Resume *plan.Resume
	// Remote reaches ssh:// sources (lib/remote).
	Remote remote.Flags
}

// job is one stream to send.
type job struct {
	path   string // the subvolume sent
	parent string
	clones []string
	label  string // its name in messages and progress
	// rename is the PATH the stream's first command should carry
	// ("" = the basename the kernel writes).
	rename string
	size   int64
	// ssh is the step of a pull: the send runs on the source's host.
	ssh *plan.Step
	// dir is a plan step's source directory, which every subvolume the
	// step names must resolve below; uuids are what the step says they
	// are (zero: not said, e.g. clone sources of old plans).
	dir   string
	uuids map[string]uuid.UUID
	// resume: send the rest of the stream from this point, if the
	// stream is the one the point was taken from.
	resume *plan.Resume
}

type sender struct {
	env   *cli.Env
	proto uint32
	flags btrfs.SendFlags
	out   int  // stdout's descriptor
	block bool // stdout is in blocking mode
	// direct: the kernel may write into stdout itself.
	direct bool
	// splice is cleared once stdout refuses a splice.
	splice bool
	// unhurried: no reader waits on stdout (not a pipe or socket, e.g.
	// /dev/null), so the copy may let the kernel's pipe fill first.
	unhurried bool
	meter     *progress.Meter
	buf       []byte
	opts      Options
}

// Run sends the snapshots of opts, or of the plan steps on env.Stdin.
func Run(ctx context.Context, env *cli.Env, opts Options) error {
	if cli.IsTerminal(env.Stdout) {
		return hint.Wrap(errors.New("stdout is a terminal; refusing to write a binary send stream"),
			"pipe it into bsrecv or btrfs receive, or redirect it to a file")
	}
	s := &sender{env: env, proto: opts.Proto, out: int(env.Stdout.Fd()), splice: true, opts: opts}
	max := btrfs.SendProtoMax()
	if s.proto == 0 {
		s.proto = max
	}
	if s.proto > max {
		return cli.UsageError("--proto %d: the kernel offers send protocol 1 to %d", s.proto, max)
	}
	if opts.Compressed {
		if s.proto < 2 {
			return cli.UsageError("--compressed-data needs --proto 2 or higher")
		}
		s.flags |= btrfs.Compressed
	}
	if opts.NoData {
		s.flags |= btrfs.NoFileData
	}
	fl, err := unix.FcntlInt(uintptr(s.out), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	s.block = fl&unix.O_NONBLOCK == 0
	var st unix.Stat_t
	if err := unix.Fstat(s.out, &st); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	// The kernel may write into a pipe itself, and nothing else: into a
	// regular file it writes from offset 0, whatever the descriptor's
	// position (every send of a run, and of an earlier run, overwriting
	// the one before), and leaves that position where it was; character
	// devices such as /dev/null it refuses (EINVAL). Anything but a pipe
	// goes through a pipe of ours, spliced (or copied) to stdout at its
	// position, which moves on.
	s.direct = s.block && st.Mode&unix.S_IFMT == unix.S_IFIFO
	s.unhurried = st.Mode&unix.S_IFMT != unix.S_IFIFO && st.Mode&unix.S_IFMT != unix.S_IFSOCK
	if st.Mode&unix.S_IFMT == unix.S_IFIFO {
		// A 1 MiB pipe (the default limit for users) instead of 64 KiB
		// lets the kernel and the reader downstream move larger pieces
		// with far fewer wake-ups; a pipe that stays small works too.
		unix.FcntlInt(uintptr(s.out), unix.F_SETPIPE_SZ, 1<<20)
	}

	var jobs []job
	if opts.Resume != nil && len(opts.Snapshots) != 1 {
		return cli.UsageError("--resume needs exactly one SNAPSHOT argument")
	}
	if len(opts.Snapshots) > 0 {
		jobs = argJobs(opts)
	} else {
		if opts.Parent != "" || len(opts.Clones) > 0 {
			return cli.UsageError("-p and -c need SNAPSHOT arguments; plan steps name their own parent and clones")
		}
		if cli.IsTerminal(env.Stdin) {
			return hint.Wrap(cli.UsageError("no snapshot arguments and stdin is a terminal"),
				"name snapshots (bssend SNAPSHOT...) or pipe bsplan into bssend")
		}
		if jobs, err = planJobs(env, env.Stdin); err != nil {
			return err
		}
	}
	// Check every source before the first byte goes out.
	for _, j := range jobs {
		if err := checkSource(j); err != nil {
			return err
		}
	}
	if len(opts.Snapshots) > 0 && opts.Parent == "" && len(opts.Clones) > 0 {
		if err := pickParents(jobs); err != nil {
			return err
		}
	}
	if s.meter = env.Meter(progress.RoleSource); s.meter == nil && env.Verbose > 0 {
		s.meter = progress.New(env.Name)
	}
	if s.meter != nil {
		defer s.meter.Close()
		var size int64
		for _, j := range jobs {
			size += j.size
		}
		s.meter.Expect(len(jobs), size)
	}
	start := time.Now()
	var total int64
	for _, j := range jobs {
		n, err := s.send(ctx, j)
		total += n
		if err != nil {
			return err
		}
		env.Log.Debug("sent", "snapshot", j.label, "bytes", n)
	}
	if s.meter != nil {
		s.meter.Close()
	}
	if env.Verbose > 0 {
		env.Log.Info("sent " + progress.Summary(len(jobs), "snapshot", total, time.Since(start)))
	}
	return nil
}

func argJobs(opts Options) []job {
	var jobs []job
	for _, p := range opts.Snapshots {
		jobs = append(jobs, job{path: p, parent: opts.Parent, clones: opts.Clones, label: p, resume: opts.Resume})
	}
	return jobs
}

// pickParents gives each job a parent among its clone sources, as btrfs
// send does with -c and no -p: after each snapshot, the snapshot itself
// becomes a clone source of the next ones, and each is sent incrementally
// from the parent btrfs.SendParent picks, or not at all.
func pickParents(jobs []job) error {
	var sent []string
	for i := range jobs {
		j := &jobs[i]
		j.clones = append(append([]string(nil), j.clones...), sent...)
		k, err := btrfs.SendParent(j.path, j.clones)
		if errors.Is(err, btrfs.ErrNoParent) {
			return hint.Wrap(err, "name the parent with -p, or leave out -c for a full stream")
		}
		if err != nil {
			return err
		}
		j.parent = j.clones[k]
		sent = append(sent, j.path)
	}
	return nil
}

// planJobs reads the send steps on stdin, skipping delete steps (bsrm's
// part of a plan, so one plan can be fed to both). Every line is checked
// before anything is sent. No steps is an empty plan: nothing to send.
func planJobs(env *cli.Env, stdin io.Reader) ([]job, error) {
	r := jsonl.NewReader(stdin, "stdin")
	var jobs []job
	for {
		var st plan.Step
		err := r.Next(&st)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if st.Op == plan.OpDelete {
			env.Log.Debug("skipping a delete step", "snapshot", st.Snapshot.Path)
			continue
		}
		j, err := stepJob(st)
		if err != nil {
			return nil, fmt.Errorf("stdin line %d: %w", r.Line(), err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// stepJob turns a send step into a job, by the scheme of its source.
func stepJob(st plan.Step) (job, error) {
	switch st.Op {
	case plan.OpSend:
	default:
		return job{}, fmt.Errorf("unknown op %q", st.Op)
	}
	if st.Parent == nil && len(st.Clones) > 0 {
		// The kernel would send it in full with those clone sources, a
		// remote bssend -c (as btrfs send -c) from a parent it picks:
		// the step means different streams to the two. bsplan gives
		// clone sources to incremental sends only.
		return job{}, hint.Wrap(fmt.Errorf("snapshot %s: clone sources without a parent", st.Snapshot.Path),
			"a send step names its parent when it has clone sources; plan with bsplan")
	}
	loc, err := location.Parse(st.Src)
	if err != nil {
		return job{}, err
	}
	switch loc.Scheme {
	case location.Btrfs:
		return localJob(st, loc.Path())
	case location.SSH:
		return sshJob(st, loc)
	case location.S3, location.File:
		return job{}, hint.Wrap(fmt.Errorf("%s: source is an object store", loc.DirString()), "use bss3get to read streams from an object store")
	}
	return job{}, fmt.Errorf("%s: unknown scheme", st.Src)
}

// sshJob is the hook for sends from a remote host (ssh:// sources).
func sshJob(st plan.Step, loc location.Location) (job, error) {
	return job{ssh: &st, label: st.Snapshot.Path, size: st.Size}, nil
}

func localJob(st plan.Step, dir string) (job, error) {
	rel, err := relPath(st.Snapshot.Path)
	if err != nil {
		return job{}, err
	}
	if st.Resume != nil && st.Resume.Offset < 0 {
		return job{}, fmt.Errorf("snapshot %s: resume offset %d", st.Snapshot.Path, st.Resume.Offset)
	}
	j := job{path: path.Join(dir, rel), label: rel, size: st.Size, dir: dir, uuids: map[string]uuid.UUID{}, resume: st.Resume}
	j.uuids[j.path] = st.Snapshot.UUID
	if strings.Contains(rel, "/") {
		j.rename = rel
	}
	if st.Parent != nil {
		p, err := relPath(st.Parent.Path)
		if err != nil {
			return job{}, fmt.Errorf("parent: %w", err)
		}
		j.parent = path.Join(dir, p)
		j.uuids[j.parent] = st.Parent.UUID
	}
	for _, c := range st.Clones {
		p, err := relPath(c.Path)
		if err != nil {
			return job{}, fmt.Errorf("clone: %w", err)
		}
		j.clones = append(j.clones, path.Join(dir, p))
		j.uuids[path.Join(dir, p)] = c.UUID
	}
	return j, nil
}

// relPath checks a snapshot path relative to a step's source directory.
func relPath(p string) (string, error) {
	if err := names.Snapshot(p); err != nil {
		return "", err
	}
	return p, nil
}

// checkSource refuses what the kernel would refuse later, or worse, what
// would need the source changed: send needs read-only subvolumes, and
// bssend never toggles the flag.
func checkSource(j job) error {
	if j.ssh != nil {
		return nil // the remote bssend checks its own sources
	}
	var realDir string
	if j.dir != "" {
		var err error
		if realDir, err = filepath.EvalSymlinks(j.dir); err != nil {
			return err
		}
	}
	for _, p := range append([]string{j.path, j.parent}, j.clones...) {
		if p == "" {
			continue
		}
		if err := within(p, j.dir, realDir); err != nil {
			return err
		}
		info, err := btrfs.Info(p)
		if err != nil {
			if errors.Is(err, btrfs.ErrNotSubvolume) || errors.Is(err, btrfs.ErrNotBtrfs) {
				return hint.Wrap(err, "bssend sends read-only btrfs snapshots")
			}
			return err
		}
		if !info.ReadOnly {
			return hint.Wrap(fmt.Errorf("%s: not read-only; send needs a read-only snapshot", p),
				"make one with: btrfs subvolume snapshot -r SUBVOLUME SNAPSHOT")
		}
		if want := j.uuids[p]; !want.IsZero() && info.UUID != want {
			return hint.Wrap(fmt.Errorf("%s: is snapshot %s, not %s as the plan step says", p, info.UUID.Canonical(), want.Canonical()),
				"the source changed since the plan was made: run bsplan again")
		}
	}
	return nil
}

// within refuses a plan step's path that leads out of its source
// directory dir (resolved: realDir) through a symbolic link ("" dir: named
// on the command line, where the user's path is taken as given).
func within(p, dir, realDir string) error {
	if dir == "" {
		return nil
	}
	rp, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(realDir, rp); err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s: leads out of %s (through a symbolic link)", p, dir)
	}
	return nil
}

// send sends one job and returns the bytes written (when counted).
func (s *sender) send(ctx context.Context, j job) (int64, error) {
	if j.ssh != nil {
		if s.meter == nil {
			// ssh writes into stdout itself: no copy through here.
			return 0, remote.Send(ctx, remote.Stdio{Stdin: s.env.Stdin, Stdout: s.env.Stdout, Stderr: s.env.Stderr, Log: s.env.Log, Quiet: s.env.Quiet, Verbose: s.env.Verbose}, s.opts.Remote, *j.ssh, s.env.Stdout, s.remoteArgs()...)
		}
		s.meter.Start(j.label, j.size)
		w := &meteredWriter{w: s.env.Stdout, s: s}
		err := remote.Send(ctx, remote.Stdio{Stdin: s.env.Stdin, Stdout: s.env.Stdout, Stderr: s.env.Stderr, Log: s.env.Log, Quiet: s.env.Quiet, Verbose: s.env.Verbose}, s.opts.Remote, *j.ssh, w, s.remoteArgs()...)
		return w.n, err
	}
	if !s.opts.NoPrefetch && !s.opts.NoData {
		defer s.prefetch(ctx, j)()
	}
	if j.resume != nil {
		r := j
		r.size = max(j.size-j.resume.Offset, 0)
		n, err := s.sendPiped(ctx, r, s.resumeOut)
		if !errors.Is(err, errStreamDiffers) {
			return n, err
		}
		s.env.Log.Warn(j.label + ": the stream differs from the one partly received; sending it whole")
	}
	if s.meter == nil && j.rename == "" && s.direct {
		return 0, s.sendDirect(ctx, j)
	}
	return s.sendPiped(ctx, j, s.copyOut)
}

// errStreamDiffers: the kernel's stream is not the one a resume point was
// taken from (another digest there, or no command boundary, or shorter,
// or the point is past its END).
var errStreamDiffers = errors.New("the stream differs from the one partly received")

// resumeOut is copyOut for a job with a resume point: it reads the
// kernel's stream up to the point, checking only its command boundaries
// and its resume digest (lib/resume), and, when they match, writes the
// resumed stream: the head with the resume flag, the RESUME command, and
// the kernel's bytes from the point on, moved as copyOut moves them.
// Nothing is written when they do not match (errStreamDiffers): the
// caller sends the stream whole, from a new send (the kernel's output is
// the same every time), as the bytes read are not kept.
func (s *sender) resumeOut(pr int, j job, room int) (int64, error) {
	head, _, _, err := sendstream.ReadHead(fdReader(pr))
	if err != nil {
		return 0, fmt.Errorf("%s: reading the kernel's stream: %w", j.label, err)
	}
	if j.rename != "" {
		if head, err = sendstream.RewriteHead(head, j.rename); err != nil {
			return 0, err
		}
	}
	d, err := resume.NewDigester(head[:sendstream.HeaderLen])
	if err != nil {
		return 0, err
	}
	if s.buf == nil {
		s.buf = make([]byte, 1<<20)
	}
	want := j.resume
	skipped, err := io.CopyBuffer(d, io.LimitReader(fdReader(pr), want.Offset), s.buf)
	if err != nil {
		return 0, fmt.Errorf("%s: reading the kernel's stream: %w", j.label, err)
	}
	if p := d.Point(); skipped != want.Offset || !d.AtBoundary() || d.Ended() || p.Offset != want.Offset || p.Digest != want.Digest {
		return 0, errStreamDiffers
	}
	prefix, err := sendstream.AppendResumed(nil, head, sendstream.ResumeFrom{Offset: want.Offset, Digest: want.Digest})
	if err != nil {
		return 0, err
	}
	if err := s.write(prefix); err != nil {
		return 0, err
	}
	s.count(len(prefix))
	n, err := s.pump(pr, room)
	return int64(len(prefix)) + n, err
}

// sendDirect lets the kernel write into stdout. On SIGINT the ioctl cannot
// be stopped from here (stdout is not ours to close); returning ends the
// process, which ends the ioctl.
func (s *sender) sendDirect(ctx context.Context, j job) error {
	done := make(chan error, 1)
	go func() { done <- btrfs.Send(j.path, s.out, j.parent, j.clones, s.proto, s.flags) }()
	select {
	case err := <-done:
		if errors.Is(err, unix.EPIPE) {
			return brokenPipe(j)
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// remoteArgs are the stream flags a pull passes to the remote bssend.
func (s *sender) remoteArgs() []string {
	var a []string
	if s.opts.Proto != 0 {
		a = append(a, "--proto", strconv.FormatUint(uint64(s.opts.Proto), 10))
	}
	if s.opts.Compressed {
		a = append(a, "--compressed-data")
	}
	if s.opts.NoData {
		a = append(a, "--no-data")
	}
	return a
}

func brokenPipe(j job) error {
	return fmt.Errorf("output closed (broken pipe) while sending %s", j.label)
}

// sendPiped runs the kernel's send into a pipe of ours and moves its bytes
// to stdout, as btrfs send does: blocking splices (or reads and writes) on
// a goroutine of their own, never a poll on the pipe. A pipe once polled
// makes the kernel's send wake its reader on every write, and a send
// stream is hundreds of thousands of small writes.
//
// Closing the pipe's read end is what stops the kernel early, once the
// copy has failed. On SIGINT neither the ioctl nor a blocked splice can be
// stopped from here; returning ends the process, which ends both.
func (s *sender) sendPiped(ctx context.Context, j job, copyOut func(pr int, j job, room int) (int64, error)) (int64, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	pr, pw := p[0], p[1]
	// A bigger pipe means fewer wake-ups; the default size works too.
	room, err := unix.FcntlInt(uintptr(pr), unix.F_SETPIPE_SZ, 1<<20)
	if err != nil {
		room, _ = unix.FcntlInt(uintptr(pr), unix.F_GETPIPE_SZ, 0)
	}
	sent := make(chan error, 1)
	go func() {
		err := btrfs.Send(j.path, pw, j.parent, j.clones, s.proto, s.flags)
		unix.Close(pw)
		sent <- err
	}()
	if s.meter != nil {
		s.meter.Start(j.label, j.size)
	}
	type result struct {
		n   int64
		err error
	}
	copied := make(chan result, 1)
	go func() {
		n, err := copyOut(pr, j, room)
		copied <- result{n, err}
	}()
	var r result
	select {
	case r = <-copied:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n, copyErr := r.n, r.err
	unix.Close(pr)
	var sendErr error
	select {
	case sendErr = <-sent:
	case <-ctx.Done():
		return n, ctx.Err()
	}
	switch {
	case errors.Is(copyErr, unix.EPIPE):
		return n, brokenPipe(j)
	case ctx.Err() != nil:
		return n, ctx.Err()
	case sendErr != nil && !(copyErr != nil && errors.Is(sendErr, unix.EPIPE)):
		return n, sendErr
	case copyErr != nil:
		return n, copyErr
	}
	return n, nil
}

// copyOut moves what the kernel writes into pr (a pipe holding room
// bytes) to stdout until the kernel closes its end, rewriting the first
// command's path on the way when the job asks for it. It blocks in the
// kernel, waiting for data or for room downstream.
func (s *sender) copyOut(pr int, j job, room int) (int64, error) {
	var n int64
	if j.rename != "" {
		head, _, _, err := sendstream.ReadHead(fdReader(pr))
		if err != nil {
			return 0, fmt.Errorf("%s: reading the kernel's stream: %w", j.label, err)
		}
		if head, err = sendstream.RewriteHead(head, j.rename); err != nil {
			return 0, err
		}
		if err := s.write(head); err != nil {
			return 0, err
		}
		n += int64(len(head))
		s.count(len(head))
	}
	m, err := s.pump(pr, room)
	return n + m, err
}

// pump moves the rest of what the kernel writes into pr to stdout.
func (s *sender) pump(pr int, room int) (int64, error) {
	var n int64
	pace := pacer{room: room, last: time.Now()}
	yielded := pace.last
	for {
		// Through the scheduler now and then: a goroutine that only
		// enters and leaves system calls keeps one schedule tick, and
		// after 10 ms on one tick Go's sysmon takes its P away at every
		// call, waking threads for nothing, thousands of times a second.
		if now := time.Now(); now.Sub(yielded) > 5*time.Millisecond {
			runtime.Gosched()
			yielded = now
		}
		var m int
		var err error
		if s.splice && s.block {
			m, err = s.spliceOnce(pr)
			if err == unix.EINVAL && m == 0 {
				s.splice = false // stdout takes no splice (e.g. O_APPEND)
				continue
			}
		} else {
			m, err = s.copyOnce(pr)
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
		n += int64(m)
		s.count(m)
		if s.unhurried {
			pace.nap(m)
		}
	}
}

// A pacer spaces the drains of a pipe that nobody downstream waits for.
// The kernel's send writes a command at a time, often a few dozen bytes;
// a reader blocked on the pipe is woken for nearly every one of them, and
// each wake-up costs the sending thread too. Napping instead until the
// pipe is about a quarter full, at the rate it has just been filled, at
// most a millisecond, turns tens of thousands of wake-ups into a few
// thousand without letting the pipe fill up. A drain of a quarter or more
// means the writer is the faster side (or stdout the slower): no nap then.
type pacer struct {
	room int       // bytes the pipe holds
	last time.Time // when the last drain ended
}

// nap follows a drain of m bytes.
func (p *pacer) nap(m int) {
	now := time.Now()
	d := now.Sub(p.last)
	p.last = now
	if p.room < 256<<10 || m <= 0 || m >= p.room/4 {
		return // a small pipe would fill during a nap; a fast writer would wait
	}
	wait := time.Millisecond
	if d < time.Second {
		wait = min(wait, time.Duration(int64(d)*int64(p.room/4)/int64(m)))
	}
	if wait < 50*time.Microsecond {
		return // not worth a nap
	}
	ts := unix.NsecToTimespec(int64(wait))
	unix.Nanosleep(&ts, nil) // an interruption only shortens the nap
}

// meteredWriter counts a pulled stream's bytes into the progress meter.
type meteredWriter struct {
	w io.Writer
	s *sender
	n int64
}

func (m *meteredWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	m.n += int64(n)
	m.s.count(n)
	return n, err
}

func (s *sender) count(n int) {
	if s.meter != nil {
		s.meter.Add(int64(n))
	}
}

// spliceOnce moves up to 1 MiB from pr to stdout, waiting for data in pr
// and for room in stdout; 0 is the end of the stream, EINVAL a stdout that
// takes no splice.
func (s *sender) spliceOnce(pr int) (int, error) {
	for {
		m, err := unix.Splice(pr, nil, s.out, nil, 1<<20, unix.SPLICE_F_MOVE)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EINVAL {
			return 0, err
		}
		if err != nil {
			return 0, outputError(err)
		}
		return int(m), nil
	}
}

// copyOnce is the fallback: one read into a reused buffer, then write.
func (s *sender) copyOnce(pr int) (int, error) {
	if s.buf == nil {
		s.buf = make([]byte, 1<<20)
	}
	m, err := fdReader(pr).Read(s.buf)
	if err == io.EOF {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m, s.write(s.buf[:m])
}

// write writes all of b to stdout, through Go's poller when stdout is
// non-blocking.
func (s *sender) write(b []byte) error {
	if _, err := s.env.Stdout.Write(b); err != nil {
		return outputError(err)
	}
	return nil
}

func outputError(err error) error {
	if errors.Is(err, unix.EPIPE) {
		return unix.EPIPE
	}
	// os.File names itself ("write /dev/stdout: ..."): one prefix is enough.
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("writing stdout: %w", err)
}

// fdReader reads a blocking descriptor.
type fdReader int

func (f fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}
