package child

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// StderrLine sees each line once, whatever the write boundaries, the last
// one even unterminated, before Wait returns; Stderr still gets it all.
func TestStderrLine(t *testing.T) {
	var lines []string
	var fwd bytes.Buffer
	long := strings.Repeat("y", MaxLine+100)
	c := Command("lines", "sh", "-c", `printf 'one\r\n\ntwo\n'"$0"'\nlast' >&2`, long)
	c.Stderr = &fwd
	c.StderrLine = func(l string) { lines = append(lines, l) }
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "", "two", long[:MaxLine], "last"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q", lines)
	}
	if fwd.Len() != len("one\r\n\ntwo\n")+len(long)+len("\nlast") {
		t.Errorf("forwarded %d bytes", fwd.Len())
	}
}

// lineRef is what a LineWriter must emit for input: its lines, cut at
// MaxLine, without "\r\n".
func lineRef(input string) []string {
	var out []string
	pieces := strings.Split(input, "\n")
	for i, p := range pieces {
		if i == len(pieces)-1 && p == "" {
			break
		}
		if len(p) > MaxLine {
			p = p[:MaxLine]
		}
		out = append(out, strings.TrimSuffix(p, "\r"))
	}
	return out
}

func FuzzLineWriter(f *testing.F) {
	f.Add("a\nb\r\nc", 1)
	f.Add("\n\n\r\n", 2)
	f.Add(strings.Repeat("x", MaxLine)+"\n"+strings.Repeat("z", MaxLine+1), 7)
	f.Add(strings.Repeat("x", 3*MaxLine)+"\r\nend\n", 4096)
	f.Fuzz(func(t *testing.T, input string, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var got []string
		w := NewLineWriter(func(l string) { got = append(got, l) })
		for i := 0; i < len(input); i += chunk {
			w.Write([]byte(input[i:min(i+chunk, len(input))]))
		}
		w.Flush()
		want := lineRef(input)
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// Signals after the child exited go nowhere: its pid may be another
// process's by then. Kill and Stop race with Wait safely (go test -race).
func TestSignalsAfterExit(t *testing.T) {
	for i := 0; i < 20; i++ {
		c := Command("quick", "true")
		c.Group = i%2 == 0
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		go c.Kill()
		go c.Stop()
		err := c.Wait()
		var ee *ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("got %v", err)
		}
		if !c.exited {
			t.Fatal("not marked exited")
		}
		before := c.kill
		c.Kill()
		c.Stop()
		if c.kill != before {
			t.Fatal("a kill timer armed after exit")
		}
	}
}

func TestExitErrorStatus(t *testing.T) {
	for _, c := range []struct {
		e    ExitError
		want string
	}{
		{ExitError{Name: "btrfs receive", Code: 1, Stderr: "ERROR: x\n\n"}, "btrfs receive: exit status 1: ERROR: x"},
		{ExitError{Name: "ssh", Code: -1, Signal: syscall.SIGKILL}, "ssh: killed by signal KILL"},
		{ExitError{Name: "f", Code: -1, Signal: syscall.SIGUSR1}, "f: killed by signal 10"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}

// Only this package runs children: every other one uses it.
func TestOnlyChildImportsOsExec(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/buttersink/buttersink/...").CombinedOutput()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("go list: %v: %s", err, out)
		}
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && !strings.HasSuffix(f[0], "/lib/child") && !strings.HasPrefix(f[0], "github.com/buttersink/buttersink/test") && slices.Contains(f[1:], "os/exec") {
			t.Errorf("%s imports os/exec: run children with lib/child", f[0])
		}
	}
}
