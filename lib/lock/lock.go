// Package lock serialises the runs that write to one destination, so that
// two runs never destroy each other's work: bsrecv (btrfs directory),
// bss3put and bsrm (btrfs directory, file:// store, s3:// prefix) take the
// destination's lock for the whole run. Readers (bsls, bsplan, bssend,
// bss3get) take none.
//
// A directory (btrfs, or a file:// store) is locked with flock(2) on the
// file Name inside it: the kernel drops the lock when its holder dies, so
// a crashed run never leaves it held; over ssh the remote command takes
// it. The holder removes the file before letting go (a waiter that got
// the flock of a removed file opens the name again); it is never a
// subvolume, nor a stream key.
//
// An S3 prefix is locked by the object Name under it, created with a
// conditional write (If-None-Match: *) and holding its holder's command,
// PID, host and start time. The holder rewrites it (If-Match: its ETag)
// every TTL/4; a lock not rewritten for TTL — by the server's clock, so
// that the hosts' clocks do not matter — belongs to a crashed run and may
// be taken over, again by a write conditional on the ETag seen, so that of
// two takers one wins. A holder whose rewrite fails because the lock was
// taken over has lost it: its run's context is cancelled and the run ends
// with that error. Release deletes the object (conditional on its ETag
// where the server supports it, after checking the ETag is still ours).
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/hint"
)

// Name is the lock file in a locked directory and the lock object's key
// under a locked prefix. It parses as no stream key (objstore.ParseKey
// rejects it), so listings skip it.
const Name = ".buttersink.lock"

// Holder is who holds a lock: what a lock file or object holds (JSON).
type Holder struct {
	// Owner is the command, e.g. "bsrecv".
	Owner   string    `json:"owner"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	// TTL (object locks) is how long the lock lasts without a refresh.
	TTL int64 `json:"ttl_seconds,omitempty"`
	// Token is random per acquisition, Refreshes counts rewrites: every
	// write of the object has a new body, hence a new ETag.
	Token     string `json:"token,omitempty"`
	Refreshes int    `json:"refreshes,omitempty"`
	// Boot names the kernel boot and PID namespace the holder runs in:
	// a run with the same Boot can tell whether PID is still alive.
	Boot string `json:"boot,omitempty"`
}

// bootID is this process's Boot: the kernel's boot id and the PID
// namespace ("" when either is unknown). Read when first needed, not at
// start: bsls shares a binary with bsrecv and starts often.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b)) + "/" + ns
})

// dead reports whether h is a process that has ended, as this process
// can tell only in the same boot and PID namespace.
func (h Holder) dead() bool {
	if h.Boot == "" || h.Boot != bootID() || h.PID <= 0 {
		return false
	}
	return unix.Kill(h.PID, 0) == unix.ESRCH
}

func newHolder(owner string, ttl time.Duration) Holder {
	host, _ := os.Hostname()
	var b [8]byte
	rand.Read(b[:])
	h := Holder{Owner: owner, PID: os.Getpid(), Host: host, Started: time.Now().UTC().Truncate(time.Second), Token: hex.EncodeToString(b[:]), Boot: bootID()}
	if ttl > 0 {
		h.TTL = int64(ttl / time.Second)
	}
	return h
}

func (h Holder) body() []byte {
	b, _ := json.Marshal(h)
	return append(b, '\n')
}

// parseHolder reads a holder record. Whoever can write the destination
// can write it: one with a control character in a field that messages
// show (a terminal escape, a forged second line) is unknown.
func parseHolder(b []byte) (Holder, bool) {
	var h Holder
	if len(b) > 4096 || json.Unmarshal(b, &h) != nil || h.PID <= 0 {
		return Holder{}, false
	}
	for _, f := range []string{h.Owner, h.Host, h.Token, h.Boot} {
		if strings.ContainsFunc(f, unicode.IsControl) {
			return Holder{}, false
		}
	}
	return h, true
}

// LockedError is the error of a run that found its destination locked.
type LockedError struct {
	Dest   string
	Holder Holder
	// Known is false when the holder could not be read (being written).
	Known bool
}

// ExitCode is cli.ExitLocked (EX_TEMPFAIL): try again later.
func (e *LockedError) ExitCode() int { return 75 }

func (e *LockedError) Error() string {
	if !e.Known {
		return e.Dest + " is locked by another run"
	}
	host := e.Holder.Host
	if host == "" {
		host = "an unknown host"
	}
	return fmt.Sprintf("%s is locked by %d on %s since %s", e.Dest, e.Holder.PID, host, e.Holder.Started.Local().Format(time.RFC3339))
}

// locked is the error a command returns: exit status 75 and a hint.
func locked(dest string, h Holder, known bool, waited bool) error {
	err := error(&LockedError{Dest: dest, Holder: h, Known: known})
	if waited {
		err = hint.Wrap(err, "it is still running: give a longer --wait-timeout, or none")
	} else {
		err = hint.Wrap(err, "give --wait to wait for it")
	}
	return err
}

// ErrLost is the cause of a lock's context when the lock was taken over.
var ErrLost = errors.New("lock lost")

// Options tune taking a lock.
type Options struct {
	// Owner is the command taking it.
	Owner string
	// Wait makes Take wait for the lock instead of failing with status 75;
	// Timeout (with Wait, 0 = none) bounds the wait.
	Wait    bool
	Timeout time.Duration
	// Poll is the interval between tries while waiting (default 200ms for
	// a directory, 2s for an object).
	Poll time.Duration
	// TTL is an object lock's lifetime without refresh (default 2 minutes).
	TTL time.Duration
	// Log gets debug lines (nil: none).
	Log *slog.Logger
}

func (o *Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Flags are the lock flags of every writing command. Embed it in the
// command's flag struct.
type Flags struct {
	Wait        bool          `name:"wait" help:"If another run holds the destination's lock, wait for it instead of exiting with status 75."`
	WaitTimeout time.Duration `name:"wait-timeout" placeholder:"DURATION" help:"With --wait, give up (status 75) after DURATION, e.g. 30m; implies --wait."`
}

// Options are the lock options the flags give.
func (f Flags) Options(owner string, log *slog.Logger) Options {
	return Options{Owner: owner, Wait: f.Wait || f.WaitTimeout > 0, Timeout: f.WaitTimeout, Log: log}
}

// Args are the flags again, for the same command run over ssh.
func (f Flags) Args() []string {
	var a []string
	if f.Wait && f.WaitTimeout == 0 {
		a = append(a, "--wait")
	}
	if f.WaitTimeout > 0 {
		a = append(a, "--wait-timeout", strconv.FormatInt(int64(f.WaitTimeout/time.Second), 10)+"s")
	}
	return a
}

// Lock is a held lock.
type Lock struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	release func() error
	done    chan struct{}
}

func newLock(parent context.Context) *Lock {
	ctx, cancel := context.WithCancelCause(parent)
	return &Lock{ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// Context is the run's context while the lock is held: it is cancelled
// with cause ErrLost (wrapped) if the lock is taken over.
func (l *Lock) Context() context.Context { return l.ctx }

// Lost returns why the lock was lost, or nil.
func (l *Lock) Lost() error {
	if c := context.Cause(l.ctx); c != nil && errors.Is(c, ErrLost) {
		return c
	}
	return nil
}

// Release gives the lock up. It is safe to call more than once.
func (l *Lock) Release() error {
	select {
	case <-l.done:
		return nil
	default:
	}
	close(l.done)
	err := l.release()
	l.cancel(context.Canceled)
	return err
}

// Hold takes a lock with take, runs fn with the lock's context and
// releases the lock. If the lock was lost meanwhile, that is the error.
func Hold(ctx context.Context, take func(context.Context) (*Lock, error), fn func(context.Context) error) error {
	l, err := take(ctx)
	if err != nil {
		return err
	}
	err = fn(l.Context())
	lost := l.Lost()
	rerr := l.Release()
	switch {
	case lost != nil:
		return lost
	case err != nil:
		return err
	}
	return rerr
}

// waiter paces the tries of a lock while waiting.
type waiter struct {
	opts     Options
	deadline time.Time
}

func newWaiter(opts Options, poll time.Duration) *waiter {
	if opts.Poll <= 0 {
		opts.Poll = poll
	}
	w := &waiter{opts: opts}
	if opts.Timeout > 0 {
		w.deadline = time.Now().Add(opts.Timeout)
	}
	return w
}

// next waits for the next try: false when there is none (no --wait, or
// the timeout passed); ctx's error when cancelled.
func (w *waiter) next(ctx context.Context) (bool, error) {
	if !w.opts.Wait {
		return false, nil
	}
	d := w.opts.Poll
	if !w.deadline.IsZero() {
		left := time.Until(w.deadline)
		if left <= 0 {
			return false, nil
		}
		d = min(d, left)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return true, nil
	}
}

// None is a lock that holds nothing: for a destination that does not
// exist yet and that the run will not create.
func None(ctx context.Context) *Lock {
	l := newLock(ctx)
	l.release = func() error { return nil }
	return l
}
