package receive

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// TestPlainFiltered: a selective restore appears under its name only at
// EndFiltered, its marker with the filter and the chain's last snapshot;
// it is then no parent, clone source or base for another receive, and
// not the snapshot it holds part of.
func TestPlainFiltered(t *testing.T) {
	m := newMirror(t)
	f := snapshot.Filter{Include: []string{"/a"}}
	fd, err := m.dest.BeginFiltered("part", plainParent, f)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Mkdirat(fd, "a", 0o755)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(m.dir, "part")); err == nil {
		t.Fatal("named before its end")
	}
	if err := m.dest.EndFiltered("part", plainChild, []uuid.UUID{plainParent.UUID}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "part", "a")); err != nil {
		t.Fatal(err)
	}
	mk, err := ReadMarker(m.fd, "part")
	if err != nil || mk.State != StateComplete || mk.Filter == nil || mk.Filter.Include[0] != "/a" || mk.ReceivedUUID != plainChild.UUID || !mk.InPlace {
		t.Fatalf("marker %+v, %v", mk, err)
	}
	if _, err := m.dest.Examine("part", plainChild); err == nil {
		t.Error("Examine took a selective restore for its snapshot")
	}
	if _, err := m.dest.ExamineInPlace("part", ID{UUID: uuid.UUID{9}, CTransID: 9}, &plainChild); err == nil {
		t.Error("ExamineInPlace took a selective restore as a base")
	}
	if _, err := m.dest.BeginInPlace("part", ID{UUID: uuid.UUID{9}, CTransID: 9}, plainChild); err == nil {
		t.Error("BeginInPlace took a selective restore as a base")
	}
	if _, _, err := m.dest.findDir(plainChild); err == nil {
		t.Error("a selective restore found as a parent or clone source")
	}
	if err := m.dest.EndFiltered("part", plainChild, nil); err == nil {
		t.Error("EndFiltered twice")
	}
}
