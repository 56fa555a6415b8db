// Package harness gives integration tests real systems to run against:
// btrfs filesystems on loop files, the built commands, and (in sibling
// files) MinIO and sshd. Everything it makes is torn down by t.Cleanup,
// also when the test fails.
//
// A prerequisite that is missing (root, loop devices, a server binary)
// skips the test on a developer's machine and fails it when CI=true.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI, where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips (or, in CI, fails) the test when ok is false.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("prerequisite missing in CI: %s", what)
	}
	t.Skipf("prerequisite missing: %s", what)
}

// RequireRoot needs root, for loop devices and btrfs ioctls.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "root (loop devices, mount, btrfs ioctls)")
}

// RequireCommand needs an executable on PATH and returns its path.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, name+" on PATH")
	return p
}

// Btrfs makes a btrfs filesystem of sizeMiB on a loop file, mounts it and
// returns the mount point. It is unmounted and removed at cleanup.
func Btrfs(t testing.TB, sizeMiB int) string {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "mkfs.btrfs")
	dir, err := os.MkdirTemp("", "bs-btrfs-")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Allocate the image up front: a host disk that runs out of room
	// under a sparse image shows up mid-test as a btrfs forced read-only,
	// far from its cause. -K keeps mkfs from punching the blocks out again.
	if out, err := exec.Command("fallocate", "-l", strconv.Itoa(sizeMiB)+"MiB", img).CombinedOutput(); err != nil {
		t.Fatalf("allocate a %d MiB image in %s: %v: %s", sizeMiB, dir, err, out)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", "-f", "-K", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		Require(t, false, fmt.Sprintf("a loop device (losetup: %v: %s)", err, out))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mount", "-t", "btrfs", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", dev, err, out)
	}
	t.Cleanup(func() { Unmount(t, mnt) })
	// A filesystem that failed under a test says why in the kernel log;
	// show it with the failure (cleanups run before the unmount above).
	t.Cleanup(func() {
		if t.Failed() {
			logKernel(t, mnt, dev)
		}
	})
	return mnt
}

// logKernel logs the state of a failed test's filesystem: its mount
// options (ro after an error), the host's free space and the kernel's
// latest btrfs and loop messages.
func logKernel(t testing.TB, mnt, dev string) {
	opts, _ := exec.Command("findmnt", "-n", "-o", "OPTIONS", mnt).CombinedOutput()
	df, _ := exec.Command("df", "-h", os.TempDir()).CombinedOutput()
	msgs, _ := exec.Command("sh", "-c", "dmesg | grep -iE 'btrfs|loop|I/O error' | tail -n 20").CombinedOutput()
	t.Logf("filesystem %s on %s: options %s\n%s\nkernel:\n%s", mnt, dev, strings.TrimSpace(string(opts)), df, msgs)
}

// Unmount unmounts mnt, retrying while it is busy, lazily as a last resort.
func Unmount(t testing.TB, mnt string) {
	var out []byte
	var err error
	for i := 0; i < 20; i++ {
		if out, err = exec.Command("umount", mnt).CombinedOutput(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("umount %s: %v: %s; detaching lazily", mnt, err, out)
	exec.Command("umount", "-l", mnt).Run()
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Root is the module root (the directory holding go.mod).
func Root() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if d == filepath.Dir(d) {
			panic("harness: go.mod not found above " + dir)
		}
	}
}

// Main runs a test package's tests and then removes what Bin built, which
// would otherwise stay behind in the temporary directory after every run
// (150 MB each). Call it from the package's TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// Bin builds every command once per test binary and returns the
// directory holding them (the buttersink script included).
func Bin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "bs-bin-")
		if buildErr != nil {
			return
		}
		root := Root()
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
			return
		}
		// The multi-call binaries make their commands' links and write
		// the buttersink script, as for a user of go install.
		links := exec.Command(filepath.Join(binDir, "bs"), "--install-links", binDir)
		if out, err := links.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("bs --install-links: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Result is what a shell script run printed and how it ended.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Sh runs script with bash -euo pipefail, the built commands first on
// PATH and env added to the environment.
func Sh(t testing.TB, script string, env ...string) Result {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+Bin(t)+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %q: %v", script, err)
		}
		r.Code = ee.ExitCode()
	}
	return r
}

// MustSh is Sh that fails the test on a non-zero exit.
func MustSh(t testing.TB, script string, env ...string) Result {
	t.Helper()
	r := Sh(t, script, env...)
	if r.Code != 0 {
		t.Fatalf("%s\nexit %d\nstdout:\n%s\nstderr:\n%s", script, r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// Ext4 makes an ext4 filesystem of sizeMiB on a loop file, mounts it and
// returns its mount point; cleanup unmounts it. A filesystem without
// reflinks: a plain-directory mirror on it shares data by hard links.
func Ext4(t testing.TB, sizeMiB int) string {
	t.Helper()
	RequireRoot(t)
	RequireCommand(t, "mkfs.ext4")
	dir, err := os.MkdirTemp("", "bs-ext4-")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("fallocate", "-l", strconv.Itoa(sizeMiB)+"MiB", img).CombinedOutput(); err != nil {
		t.Fatalf("allocate a %d MiB image in %s: %v: %s", sizeMiB, dir, err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		Require(t, false, fmt.Sprintf("a loop device (losetup: %v: %s)", err, out))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mount", "-t", "ext4", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v: %s", dev, err, out)
	}
	t.Cleanup(func() { Unmount(t, mnt) })
	return mnt
}

// Tmpfs mounts a tmpfs of sizeMiB and returns its mount point; cleanup
// unmounts it.
func Tmpfs(t testing.TB, sizeMiB int) string {
	t.Helper()
	RequireRoot(t)
	mnt, err := os.MkdirTemp("", "bs-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(mnt) })
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(sizeMiB)+"m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { Unmount(t, mnt) })
	return mnt
}
