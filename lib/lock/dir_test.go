package lock

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
)

// A helper process holding a directory's lock: the test binary itself,
// re-run with BS_LOCK_HOLD=dir. It prints "locked" and then sleeps.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BS_LOCK_HOLD"); dir != "" {
		if _, err := Dir(context.Background(), dir, dir, Options{Owner: "holder"}); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func startHolder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BS_LOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("holder: %q", line)
	}
	return cmd
}

// exitCode is the status cli.Report gives err.
func exitCode(err error) int {
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return -1
}

func TestDirLockedByOther(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir)
	_, err := Dir(context.Background(), dir, "DEST/", Options{Owner: "bsrecv"})
	if exitCode(err) != cli.ExitLocked {
		t.Fatalf("err %v: want exit %d", err, cli.ExitLocked)
	}
	host, _ := os.Hostname()
	want := "DEST/ is locked by " + strconv.Itoa(h.Process.Pid) + " on " + host + " since "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want prefix %q", err, want)
	}
	// --wait with a timeout gives up with 75 too.
	start := time.Now()
	_, err = Dir(context.Background(), dir, "DEST/", Options{Wait: true, Timeout: 300 * time.Millisecond, Poll: 50 * time.Millisecond})
	if exitCode(err) != cli.ExitLocked || time.Since(start) < 300*time.Millisecond {
		t.Errorf("wait with timeout: %v after %s", err, time.Since(start))
	}
	// An interrupted wait ends with the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err = Dir(ctx, dir, "DEST/", Options{Wait: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled wait: %v", err)
	}
}

// A holder killed with SIGKILL releases the lock: the kernel drops the
// flock with its last descriptor; a waiter then gets it.
func TestDirCrashedHolderReleases(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir)
	got := make(chan error, 1)
	go func() {
		l, err := Dir(context.Background(), dir, dir, Options{Wait: true, Poll: 20 * time.Millisecond})
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("got the lock while it was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	h.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lock of a killed holder was not released")
	}
}

func TestDirReleaseAndRetake(t *testing.T) {
	dir := t.TempDir()
	l, err := Dir(context.Background(), dir, dir, Options{Owner: "bss3put"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, Name))
	if h, ok := parseHolder(b); !ok || h.PID != os.Getpid() || h.Owner != "bss3put" {
		t.Errorf("lock file holds %q", b)
	}
	// flock is per open file description: a second take in the same
	// process is refused as well.
	if _, err := Dir(context.Background(), dir, dir, Options{}); exitCode(err) != cli.ExitLocked {
		t.Errorf("second take: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left after release: %v", err)
	}
	l2, err := Dir(context.Background(), dir, dir, Options{})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

// Waiters that race for a lock whose file is removed on release never
// hold it together.
func TestDirMutualExclusion(t *testing.T) {
	dir := t.TempDir()
	var inside, max, total atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				l, err := Dir(context.Background(), dir, dir, Options{Wait: true, Poll: time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				if n > max.Load() {
					max.Store(n)
				}
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				total.Add(1)
				l.Release()
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 || total.Load() != 160 {
		t.Fatalf("%d holders at once, %d rounds", max.Load(), total.Load())
	}
}

// A lock file that is a symbolic link or a FIFO is refused, never
// followed or blocked on.
func TestDirHostileLockFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Symlink(target, filepath.Join(dir, Name))
	if _, err := Dir(context.Background(), dir, "D/", Options{}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("symlink target changed: %q", b)
	}
	dir2 := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir2, Name), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Dir(context.Background(), dir2, "D/", Options{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked on a FIFO lock file")
	}
}

func TestFlagsArgs(t *testing.T) {
	for _, c := range []struct {
		f    Flags
		want string
		wait bool
	}{
		{Flags{}, "", false},
		{Flags{Wait: true}, "--wait", true},
		{Flags{WaitTimeout: 90 * time.Second}, "--wait-timeout 90s", true},
		{Flags{Wait: true, WaitTimeout: time.Minute}, "--wait-timeout 60s", true},
	} {
		if got := strings.Join(c.f.Args(), " "); got != c.want {
			t.Errorf("%+v: args %q, want %q", c.f, got, c.want)
		}
		if o := c.f.Options("x", nil); o.Wait != c.wait || o.Timeout != c.f.WaitTimeout {
			t.Errorf("%+v: options %+v", c.f, o)
		}
	}
}

// A holder whose lock file was removed (by an admin who took it for a
// stale one, or by a stream through the destination directory) and
// taken by a second run must not, when it ends, remove the second run's
// file: a third run would then lock a new one beside the second.
func TestDirReleaseRemovesOnlyItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	a, err := Dir(context.Background(), dir, "DEST/", Options{Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, Name)); err != nil {
		t.Fatal(err)
	}
	b, err := Dir(context.Background(), dir, "DEST/", Options{Owner: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	a.Release()
	if _, err := os.Stat(filepath.Join(dir, Name)); err != nil {
		t.Errorf("the first run's release removed the second's lock file: %v", err)
	}
	if c, err := Dir(context.Background(), dir, "DEST/", Options{Owner: "c"}); exitCode(err) != cli.ExitLocked {
		if c != nil {
			c.Release()
		}
		t.Errorf("a third run while the second holds the lock: %v, want locked", err)
	}
}

// A FIFO or device planted where the lock file goes is refused without
// being opened (opening a device can act: a watchdog starts, a tape
// rewinds); inotify sees every open but O_PATH's.
func TestDirOpensNothingButARegularFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, Name)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(in)
	if _, err := syscall.InotifyAddWatch(in, p, syscall.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	_, err = Dir(context.Background(), dir, "DEST/", Options{Owner: "bsrecv"})
	if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("err %v, want not a regular file", err)
	}
	buf := make([]byte, 4096)
	if n, _ := syscall.Read(in, buf); n > 0 {
		t.Errorf("the FIFO at the lock file's name was opened")
	}
}
