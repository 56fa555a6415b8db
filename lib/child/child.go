// Package child runs the programs buttersink drives — btrfs receive, ssh,
// bss3ls, user filters — the one way: started, their stderr kept (a
// bounded tail, for the error), passed on and read line by line if asked,
// stopped on cancellation with SIGTERM and, after a grace period, SIGKILL,
// and always waited for, so that their exit status is never lost.
//
// It is the only package that imports os/exec (a test checks).
package child

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultGrace is how long a cancelled child has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// tailMax bounds the stderr kept for an error message.
const tailMax = 8 << 10

// Cmd is one child process. Set its fields, then Start and Wait (or Run).
// Wait must be called once Start succeeded.
type Cmd struct {
	// Name is what messages call it ("btrfs receive", "filter zstd").
	Name string
	// Argv is the program and its arguments; Argv[0] is looked up in PATH.
	Argv []string
	Dir  string
	// Env is the environment; nil means this process's.
	Env []string
	// Stdin and Stdout are handed to the child as they are when they are
	// *os.File (no copy through this process), else copied.
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr, if set, receives the child's stderr as it comes; the tail is
	// kept either way.
	Stderr io.Writer
	// StderrLine, if set, is called with each line of the child's stderr,
	// without its line end and cut at MaxLine bytes, from one goroutine;
	// the last line, even unterminated, before Wait returns.
	StderrLine func(line string)
	// Group puts the child in a process group of its own, signalled as a
	// whole: a shell's children stop with it (filters run by sh -c).
	Group bool
	// Grace is the time between SIGTERM and SIGKILL; DefaultGrace if 0.
	Grace time.Duration

	cmd   *exec.Cmd
	tail  tail
	lines *LineWriter
	once  sync.Once
	err   error

	// mu guards the signals against the reaping of the child: until
	// exited is set the child is at most a zombie, so its pid (and
	// process group ID) cannot be anyone else's.
	mu     sync.Mutex
	exited bool
	kill   *time.Timer
	waited chan struct{}
}

// Command returns a Cmd named name running argv.
func Command(name string, argv ...string) *Cmd {
	return &Cmd{Name: name, Argv: argv}
}

// LookPath is exec.LookPath: where the program name is in PATH.
func LookPath(name string) (string, error) { return exec.LookPath(name) }

func (c *Cmd) prepare() {
	if c.cmd != nil {
		return
	}
	c.cmd = exec.Command(c.Argv[0], c.Argv[1:]...)
	c.cmd.Dir, c.cmd.Env = c.Dir, c.Env
	c.cmd.Stdin, c.cmd.Stdout = c.Stdin, c.Stdout
	w := []io.Writer{&c.tail}
	if c.Stderr != nil {
		w = append(w, c.Stderr)
	}
	if c.StderrLine != nil {
		c.lines = NewLineWriter(c.StderrLine)
		w = append(w, c.lines)
	}
	if len(w) == 1 {
		c.cmd.Stderr = &c.tail
	} else {
		c.cmd.Stderr = io.MultiWriter(w...)
	}
	if c.Group {
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	// Once the child has exited, what it started may still hold its
	// output open: wait that long for it, then close the pipes.
	c.cmd.WaitDelay = c.grace() + time.Second
}

func (c *Cmd) grace() time.Duration {
	if c.Grace == 0 {
		return DefaultGrace
	}
	return c.Grace
}

// StdinPipe is exec.Cmd's, to be called before Start.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) {
	c.prepare()
	c.cmd.Stdin = nil
	return c.cmd.StdinPipe()
}

// StdoutPipe is exec.Cmd's, to be called before Start: read it to its end
// before Wait, which closes it.
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) {
	c.prepare()
	c.cmd.Stdout = nil
	return c.cmd.StdoutPipe()
}

// Start starts the child; cancelling ctx stops it: SIGTERM, then SIGKILL
// after the grace period.
func (c *Cmd) Start(ctx context.Context) error {
	c.prepare()
	if err := c.cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return &NotFoundError{Name: c.Name, Program: c.Argv[0]}
		}
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	c.waited = make(chan struct{})
	if done := ctx.Done(); done != nil {
		go func() {
			select {
			case <-done:
				c.Stop()
			case <-c.waited:
			}
		}()
	}
	return nil
}

// Stop asks the child to end (SIGTERM, to its group with Group) and kills
// it if it has not after the grace period. Wait must still be called.
func (c *Cmd) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kill != nil || !c.signalLocked(syscall.SIGTERM) {
		return
	}
	c.kill = time.AfterFunc(c.grace(), c.Kill)
}

// Kill stops the child at once (SIGKILL, to its group with Group). It is
// safe from any goroutine, and does nothing once the child has exited.
// Wait must still be called.
func (c *Cmd) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signalLocked(syscall.SIGKILL)
}

// signalLocked sends sig unless the child has exited; it reports whether
// the child was signalled.
func (c *Cmd) signalLocked(sig syscall.Signal) bool {
	if c.cmd == nil || c.cmd.Process == nil || c.exited {
		return false
	}
	if c.Group {
		return syscall.Kill(-c.cmd.Process.Pid, sig) == nil
	}
	return c.cmd.Process.Signal(sig) == nil
}

// awaitExit blocks until the child has exited, without reaping it, and
// then stops all signalling: its pid is free once it is reaped.
func (c *Cmd) awaitExit() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	c.mu.Lock()
	c.exited = true
	if c.kill != nil {
		c.kill.Stop()
	}
	c.mu.Unlock()
}

// Wait waits for the child once and returns nil or its *ExitError; later
// calls return the same.
func (c *Cmd) Wait() error {
	c.once.Do(func() {
		if c.cmd == nil || c.cmd.Process == nil {
			c.err = fmt.Errorf("%s: not started", c.Name)
			return
		}
		c.awaitExit()
		err := c.cmd.Wait()
		close(c.waited)
		if c.lines != nil {
			c.lines.Flush()
		}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			e := &ExitError{Name: c.Name, Code: ee.ExitCode(), Stderr: c.tail.String()}
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				e.Signal = ws.Signal()
			}
			c.err = e
		case errors.Is(err, exec.ErrWaitDelay):
			// It exited, but something it started kept its output open.
		default:
			c.err = fmt.Errorf("%s: %w", c.Name, err)
		}
	})
	return c.err
}

// Run starts the child and waits for it.
func (c *Cmd) Run(ctx context.Context) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	return c.Wait()
}

// StderrTail is the end of what the child wrote to stderr.
func (c *Cmd) StderrTail() string { return c.tail.String() }

// ExitError is a child that failed: its exit code (-1 when killed), the
// signal that killed it, and the end of its stderr.
type ExitError struct {
	Name   string
	Code   int
	Signal syscall.Signal
	Stderr string
}

// Status says how the child ended: "exit status 3", "killed by signal KILL".
func (e *ExitError) Status() string {
	if e.Signal != 0 {
		return "killed by signal " + strings.ToUpper(unixSignalName(e.Signal))
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *ExitError) Error() string {
	if line := LastLine(e.Stderr); line != "" {
		return fmt.Sprintf("%s: %s: %s", e.Name, e.Status(), line)
	}
	return fmt.Sprintf("%s: %s", e.Name, e.Status())
}

// NotFoundError is a program that is not installed.
type NotFoundError struct{ Name, Program string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s: %s not found", e.Name, e.Program) }

func unixSignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGKILL:
		return "kill"
	case syscall.SIGTERM:
		return "term"
	case syscall.SIGINT:
		return "int"
	case syscall.SIGPIPE:
		return "pipe"
	case syscall.SIGSEGV:
		return "segv"
	}
	return fmt.Sprintf("%d", int(s))
}

// LastLine is the last non-empty line of s, trimmed.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// tail keeps the last tailMax bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailMax; over > 0 {
		// Keep whole lines where one starts within the kept part.
		cut := over
		if i := strings.IndexByte(string(t.buf[over:]), '\n'); i >= 0 && i < len(t.buf)-over-1 {
			cut = over + i + 1
		}
		t.buf = append(t.buf[:0], t.buf[cut:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
