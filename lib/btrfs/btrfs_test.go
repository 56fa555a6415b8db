package btrfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
