package btrfs

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/test/harness"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestListInfoSnapshotDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a loop btrfs")
	}
	mnt := harness.Btrfs(t, 200)
	run(t, "btrfs", "subvolume", "create", mnt+"/vol")
	os.WriteFile(mnt+"/vol/f", []byte("hello"), 0o644)
	os.MkdirAll(mnt+"/snaps/deep/er", 0o755)
	if err := Snapshot(mnt+"/vol", mnt+"/snaps", "s1", true); err != nil {
		t.Fatal(err)
	}
	if err := Snapshot(mnt+"/snaps/s1", mnt+"/snaps/deep/er", "s2", true); err != nil {
		t.Fatal(err)
	}
	run(t, "btrfs", "subvolume", "create", mnt+"/vol/nested")
	if err := Sync(mnt); err != nil {
		t.Fatal(err)
	}
	subs, err := List(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, s := range subs {
		paths = append(paths, s.Path)
		i, err := Info(filepath.Join(mnt, s.Path))
		if err != nil {
			t.Fatal(err)
		}
		i.Path = s.Path
		if i != s {
			t.Errorf("%s: Info %+v\nList %+v", s.Path, i, s)
		}
	}
	if got, want := strings.Join(paths, " "), "snaps/deep/er/s2 snaps/s1 vol vol/nested"; got != want {
		t.Errorf("List paths %q, want %q", got, want)
	}
	subs, err = List(mnt + "/snaps/deep")
	if err != nil || len(subs) != 1 || subs[0].Path != "er/s2" || !subs[0].ReadOnly {
		t.Errorf("List snaps/deep = %+v, %v", subs, err)
	}
	if err := Delete(mnt + "/snaps/s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mnt + "/snaps/s1"); !os.IsNotExist(err) {
		t.Errorf("s1 still there after Delete: %v", err)
	}
}

func TestSendMatchesBtrfsSend(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a loop btrfs")
	}
	mnt := harness.Btrfs(t, 200)
	run(t, "btrfs", "subvolume", "create", mnt+"/vol")
	os.WriteFile(mnt+"/vol/a", []byte(strings.Repeat("x", 100000)), 0o644)
	if err := Snapshot(mnt+"/vol", mnt, "s1", true); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(mnt+"/vol/b", []byte("second"), 0o644)
	if err := Snapshot(mnt+"/vol", mnt, "s2", true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		name, parent string
		proto        uint32
		args         []string
	}{
		{"full-v1", "", 0, nil},
		{"incremental-v2", mnt + "/s1", 2, []string{"--proto", "2", "-p", mnt + "/s1"}},
	} {
		f, err := os.Create(filepath.Join(dir, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if err := Send(mnt+"/s2", int(f.Fd()), tt.parent, nil, tt.proto, 0); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		f.Close()
		args := append([]string{"send", "-q", "-f", filepath.Join(dir, tt.name+".progs")}, tt.args...)
		run(t, "btrfs", append(args, mnt+"/s2")...)
		got, _ := os.ReadFile(filepath.Join(dir, tt.name))
		want, _ := os.ReadFile(filepath.Join(dir, tt.name+".progs"))
		if len(got) == 0 || string(got) != string(want) {
			t.Errorf("%s: Send wrote %d bytes, btrfs send %d, or they differ", tt.name, len(got), len(want))
		}
	}
	if err := Send(mnt+"/vol", 1, "", nil, 0, 0); err == nil {
		t.Error("Send of a writable subvolume succeeded")
	}
}

func TestFlagsReceivedDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a loop btrfs")
	}
	mnt := harness.Btrfs(t, 200)
	run(t, "btrfs", "subvolume", "create", mnt+"/vol")
	run(t, "btrfs", "subvolume", "create", mnt+"/vol/inner")
	if err := Snapshot(mnt+"/vol", mnt, "ro", true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".", "..", "a/b", strings.Repeat("x", 256)} {
		if err := Snapshot(mnt+"/vol", mnt, name, true); err == nil {
			t.Errorf("Snapshot named %q succeeded", name)
		}
	}
	if err := Snapshot(mnt+"/vol", mnt, "ro", true); err == nil {
		t.Error("Snapshot over an existing name succeeded")
	}

	// Read-only flag: round trip, checked by btrfs property get.
	if ro, err := ReadOnly(mnt + "/ro"); err != nil || !ro {
		t.Fatalf("ReadOnly(ro) = %v, %v", ro, err)
	}
	if err := SetReadOnly(mnt+"/ro", false); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "btrfs", "property", "get", mnt+"/ro", "ro"); strings.TrimSpace(out) != "ro=false" {
		t.Errorf("after SetReadOnly false: %q", out)
	}

	// Received UUID on the now writable subvolume, as receive does.
	u := Subvol{}.UUID
	copy(u[:], "0123456789abcdef")
	if err := SetReceived(mnt+"/ro", u, 4242); err != nil {
		t.Fatal(err)
	}
	if err := SetReadOnly(mnt+"/ro", true); err != nil {
		t.Fatal(err)
	}
	info, err := Info(mnt + "/ro")
	if err != nil {
		t.Fatal(err)
	}
	if info.ReceivedUUID != u || info.STransID != 4242 || info.RTransID == 0 || info.RTime.IsZero() || !info.ReadOnly {
		t.Errorf("after SetReceived: %+v", info)
	}
	show := run(t, "btrfs", "subvolume", "show", mnt+"/ro")
	if !strings.Contains(show, u.String()) || !strings.Contains(show, "readonly") {
		t.Errorf("btrfs subvolume show disagrees:\n%s", show)
	}
	if err := SetReceived(mnt+"/ro", u, 1); err == nil {
		t.Error("SetReceived on a read-only subvolume succeeded")
	}

	// Errors name the object and the fault.
	os.Mkdir(mnt+"/plain", 0o755)
	if _, err := Info(mnt + "/plain"); !errors.Is(err, ErrNotSubvolume) || !strings.HasPrefix(err.Error(), mnt+"/plain: ") {
		t.Errorf("Info(plain dir) = %v", err)
	}
	if _, err := List("/proc"); !errors.Is(err, ErrNotBtrfs) {
		t.Errorf("List(/proc) = %v", err)
	}
	if ok, err := IsSubvolume(mnt + "/plain"); ok || err != nil {
		t.Errorf("IsSubvolume(plain) = %v, %v", ok, err)
	}
	if ok, err := IsSubvolume(mnt + "/vol"); !ok || err != nil {
		t.Errorf("IsSubvolume(vol) = %v, %v", ok, err)
	}

	// Delete: a read-only snapshot goes; one holding a subvolume does not.
	if err := Delete(mnt + "/ro"); err != nil {
		t.Fatal(err)
	}
	if err := Delete(mnt + "/vol"); !errors.Is(err, unix.ENOTEMPTY) {
		t.Errorf("Delete of a subvolume holding one = %v, want ENOTEMPTY", err)
	}
	if err := Delete(mnt + "/plain"); !errors.Is(err, ErrNotSubvolume) {
		t.Errorf("Delete(plain dir) = %v", err)
	}
	if err := Delete(mnt); err == nil {
		t.Error("Delete of the top level succeeded")
	}
	subs, err := List(mnt)
	if err != nil || len(subs) != 2 {
		t.Errorf("after deletes List = %+v, %v", subs, err)
	}

	fi, err := GetFSInfo(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if out := run(t, "btrfs", "filesystem", "show", mnt); !strings.Contains(out, fi.FSID.String()) || fi.NumDevices != 1 || fi.NodeSize == 0 || fi.SectorSize == 0 {
		t.Errorf("GetFSInfo %+v; btrfs filesystem show:\n%s", fi, out)
	}
	if want, err := os.ReadFile("/sys/fs/btrfs/features/send_stream_version"); err == nil {
		if got := SendProtoMax(); strings.TrimSpace(string(want)) != strconv.Itoa(int(got)) {
			t.Errorf("SendProtoMax = %d, sysfs %s", got, want)
		}
	}
	if _, on, err := Qgroups(mnt); on || err != nil {
		t.Errorf("Qgroups with quotas off = %v, %v", on, err)
	}
}

// Signals arriving while the kernel blocks on a full pipe must not make
// the SEND ioctl restart from the beginning (SA_RESTART), which would
// write the stream's start a second time into the same pipe.
func TestSendUnderSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a loop btrfs")
	}
	mnt := harness.Btrfs(t, 300)
	run(t, "btrfs", "subvolume", "create", mnt+"/vol")
	run(t, "dd", "if=/dev/urandom", "of="+mnt+"/vol/big", "bs=1M", "count=32", "status=none")
	if err := Snapshot(mnt+"/vol", mnt, "s", true); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(t.TempDir(), "want")
	run(t, "btrfs", "send", "-q", "-f", want, mnt+"/s")
	wantBytes, _ := os.ReadFile(want)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				// Every thread, the one in the ioctl included.
				tasks, _ := os.ReadDir("/proc/self/task")
				for _, task := range tasks {
					if tid, err := strconv.Atoi(task.Name()); err == nil {
						unix.Tgkill(os.Getpid(), tid, syscall.SIGWINCH)
					}
				}
				time.Sleep(500 * time.Microsecond)
			}
		}
	}()
	go func() {
		for range sigs {
		}
	}()

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := Send(mnt+"/s", p[1], "", nil, 0, 0)
		unix.Close(p[1])
		done <- err
	}()
	r := os.NewFile(uintptr(p[0]), "pipe")
	var got []byte
	buf := make([]byte, 4096) // small reads keep the kernel waiting on a full pipe
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil || len(got) > len(wantBytes) {
			// A restarted send repeats the stream without end: stop it.
			break
		}
	}
	r.Close()
	if err := <-done; err != nil && len(got) <= len(wantBytes) {
		t.Fatal(err)
	}
	if len(got) != len(wantBytes) || string(got) != string(wantBytes) {
		t.Fatalf("stream under signals: %d bytes, btrfs send %d bytes, or they differ", len(got), len(wantBytes))
	}
}
