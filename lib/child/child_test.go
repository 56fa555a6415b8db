package child

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitStatusAndStderr(t *testing.T) {
	var fwd bytes.Buffer
	c := Command("demo", "sh", "-c", "echo first >&2; echo 'demo: error: broken' >&2; exit 3")
	c.Stderr = &fwd
	err := c.Run(context.Background())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Signal != 0 {
		t.Fatalf("got %#v", err)
	}
	if got, want := err.Error(), "demo: exit status 3: demo: error: broken"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if fwd.String() != "first\ndemo: error: broken\n" {
		t.Errorf("forwarded %q", fwd.String())
	}
	if c.Wait() != err {
		t.Error("a second Wait lost the status")
	}
}

func TestSuccessAndNotFound(t *testing.T) {
	var out bytes.Buffer
	c := Command("echo", "echo", "hi")
	c.Stdout = &out
	if err := c.Run(context.Background()); err != nil || out.String() != "hi\n" {
		t.Fatalf("%v %q", err, out.String())
	}
	err := Command("nothing", "/nonexistent/program-x").Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nothing:") {
		t.Fatalf("got %v", err)
	}
	err = Command("nothing", "program-that-is-not-installed-x").Run(context.Background())
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("got %#v", err)
	}
}

func TestStderrTailBounded(t *testing.T) {
	c := Command("loud", "sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line $i >&2; i=$((i+1)); done; exit 1")
	err := c.Run(context.Background())
	if len(c.StderrTail()) > tailMax || !strings.HasSuffix(c.StderrTail(), "line 1999\n") {
		t.Fatalf("tail %d bytes: %q", len(c.StderrTail()), c.StderrTail()[len(c.StderrTail())-20:])
	}
	if !strings.HasPrefix(c.StderrTail(), "line ") {
		t.Errorf("tail starts mid-line: %q", c.StderrTail()[:20])
	}
	if !strings.HasSuffix(err.Error(), ": line 1999") {
		t.Errorf("error %q", err)
	}
}

// A cancelled child gets SIGTERM; one that ignores it is killed after the
// grace period; with Group, so is what it started.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pidFile := filepath.Join(dir, "pid")
	c := Command("stubborn", "sh", "-c", "trap '' TERM; sleep 60 & echo $! > "+pidFile+"; wait")
	c.Group = true
	c.Grace = 200 * time.Millisecond
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(pidFile); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	err := c.Wait()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	b, _ := os.ReadFile(pidFile)
	var pid int
	for _, ch := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(ch-'0')
	}
	time.Sleep(50 * time.Millisecond)
	if pid == 0 || alive(pid) {
		t.Errorf("grandchild %d survived", pid)
	}

	ctx, cancel = context.WithCancel(context.Background())
	c = Command("polite", "sleep", "60")
	c.Start(ctx)
	cancel()
	if err := c.Wait(); !errors.As(err, &ee) || ee.Signal != syscall.SIGTERM {
		t.Fatalf("got %v", err)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}
