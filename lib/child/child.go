// Package child runs the programs buttersink drives — btrfs receive, ssh,
// bss3ls, user filters — the one way: started, their stderr kept (a
// bounded tail, for the error) and optionally passed on, stopped on
// cancellation with SIGTERM and, after a grace period, SIGKILL, and always
// waited for, so that their exit status is never lost.
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
)

// DefaultGrace is how long a cancelled child has between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// tailMax bounds the stderr kept for an error message.
const tailMax = 8 << 10

// Cmd is one child process. Set its fields, then Start and Wait (or Run).
type Cmd struct {
	// Name is what messages call it ("btrfs receive", "filter zstd").
	Name string
	// Argv is the program and its arguments; Argv[0] is looked up in PATH.
	Argv []string
	Dir  string
	// Env is the environment; nil means this process's.
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr, if set, receives the child's stderr as it comes; the tail is
	// kept either way.
	Stderr io.Writer
	// Group puts the child in a process group of its own, signalled as a
	// whole: a shell's children stop with it (filters run by sh -c).
	Group bool
	// Grace is the time between SIGTERM and SIGKILL; DefaultGrace if 0.
	Grace time.Duration

	cmd  *exec.Cmd
	tail tail
	once sync.Once
	err  error
	kill *time.Timer
}

// Command returns a Cmd named name running argv.
func Command(name string, argv ...string) *Cmd {
	return &Cmd{Name: name, Argv: argv}
}

func (c *Cmd) prepare(ctx context.Context) {
	if c.cmd != nil {
		return
	}
	c.cmd = exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	c.cmd.Dir, c.cmd.Env = c.Dir, c.Env
	c.cmd.Stdin, c.cmd.Stdout = c.Stdin, c.Stdout
	if c.Stderr != nil {
		c.cmd.Stderr = io.MultiWriter(&c.tail, c.Stderr)
	} else {
		c.cmd.Stderr = &c.tail
	}
	if c.Group {
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	grace := c.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	c.cmd.Cancel = func() error {
		// exec's own SIGKILL after WaitDelay reaches only the process,
		// not its group: escalate here.
		c.kill = time.AfterFunc(grace, func() { _ = c.signal(syscall.SIGKILL) })
		return c.signal(syscall.SIGTERM)
	}
	c.cmd.WaitDelay = grace + time.Second
}

// StdinPipe is exec.Cmd's, to be called before Start.
func (c *Cmd) StdinPipe(ctx context.Context) (io.WriteCloser, error) {
	c.prepare(ctx)
	c.cmd.Stdin = nil
	return c.cmd.StdinPipe()
}

// StdoutPipe is exec.Cmd's, to be called before Start.
func (c *Cmd) StdoutPipe(ctx context.Context) (io.ReadCloser, error) {
	c.prepare(ctx)
	c.cmd.Stdout = nil
	return c.cmd.StdoutPipe()
}

// Start starts the child; cancelling ctx stops it.
func (c *Cmd) Start(ctx context.Context) error {
	c.prepare(ctx)
	if err := c.cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return &NotFoundError{Name: c.Name, Program: c.Argv[0]}
		}
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
}

func (c *Cmd) signal(sig syscall.Signal) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	if c.Group {
		return syscall.Kill(-c.cmd.Process.Pid, sig)
	}
	return c.cmd.Process.Signal(sig)
}

// Kill stops the child at once (SIGKILL, to its group with Group). Wait
// must still be called.
func (c *Cmd) Kill() { _ = c.signal(syscall.SIGKILL) }

// Wait waits for the child once and returns nil or its *ExitError; later
// calls return the same.
func (c *Cmd) Wait() error {
	c.once.Do(func() {
		err := c.cmd.Wait()
		if c.kill != nil {
			// Its group is gone; its ID may be someone else's soon.
			c.kill.Stop()
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

func (e *ExitError) Error() string {
	why := fmt.Sprintf("exit status %d", e.Code)
	if e.Signal != 0 {
		why = "killed by signal " + strings.ToUpper(unixSignalName(e.Signal))
	}
	if line := LastLine(e.Stderr); line != "" {
		return fmt.Sprintf("%s: %s: %s", e.Name, why, line)
	}
	return fmt.Sprintf("%s: %s", e.Name, why)
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
