package bsrecv

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A stream's directories below a dir:// destination are made there, never
// through a symbolic link to elsewhere.
func TestOpenDirsFollowsNoLink(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "host")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, rel := range []string{"host/", "host/sub/", "a/../host/"} {
		if d, err := openDirs(fd, rel); err == nil {
			unix.Close(d)
			t.Errorf("openDirs(%q) went through the link", rel)
		}
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("made %v elsewhere", ents)
	}
	d, err := openDirs(fd, "a/b/")
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(d)
	if fi, err := os.Lstat(filepath.Join(dir, "a", "b")); err != nil || !fi.IsDir() {
		t.Errorf("a/b not made: %v", err)
	}
}
