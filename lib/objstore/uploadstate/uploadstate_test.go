package uploadstate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const obj = "s3://b/p/vol/k"

func rec(id string) Record {
	return Record{Object: obj, UploadID: id, Recipients: "r", AgeHeader: []byte("hdr"), AgeFileKey: []byte("0123456789abcdef")}
}

// TestSaveLoad: a record is written mode 0600 in a 0700 directory, read
// back for its own upload only, and removed with its upload or its
// object.
func TestSaveLoad(t *testing.T) {
	base := t.TempDir()
	t.Setenv("XDG_STATE_HOME", base)
	// Removing makes no directory (uploads without age keep no record).
	Remove(obj, "id1")
	RemoveObject(obj)
	if _, err := os.Stat(filepath.Join(base, "buttersink")); !os.IsNotExist(err) {
		t.Errorf("removing made the directory: %v", err)
	}
	if err := Save(rec("id1")); err != nil {
		t.Fatal(err)
	}
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v", fi.Mode())
	}
	path := filepath.Join(dir, name(obj, "id1"))
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record: %v %v", fi, err)
	}
	r, err := Load(obj, "id1")
	if err != nil || string(r.AgeFileKey) != "0123456789abcdef" || r.Recipients != "r" {
		t.Fatalf("Load = %+v, %v", r, err)
	}
	if _, err := Load(obj, "id2"); !errors.Is(err, ErrNotExist) {
		t.Errorf("another upload's record: %v", err)
	}
	if _, err := Load(obj+"x", "id1"); !errors.Is(err, ErrNotExist) {
		t.Errorf("another object's record: %v", err)
	}
	// A record copied over another upload's name is not that upload's.
	b, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(dir, name(obj, "id2")), b, 0o600)
	if _, err := Load(obj, "id2"); err == nil || !strings.Contains(err.Error(), "another upload") {
		t.Errorf("record of id1 under id2's name: %v", err)
	}
	Remove(obj, "id1")
	if _, err := Load(obj, "id1"); !errors.Is(err, ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	Save(rec("id3"))
	RemoveObject(obj)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("after RemoveObject: %d records left", len(ents))
	}
}

// TestHostileRecords: a link, a record others can read, one of another
// user, a FIFO: Load refuses them without following or blocking; Save
// replaces what is in its place without writing through it.
func TestHostileRecords(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name(obj, "id"))
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(obj, "id"); err == nil || errors.Is(err, ErrNotExist) {
		t.Errorf("link: %v", err)
	}
	if err := Save(rec("id")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
	if fi, _ := os.Lstat(path); !fi.Mode().IsRegular() {
		t.Errorf("the link is still there")
	}
	os.Chmod(path, 0o644)
	if _, err := Load(obj, "id"); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("mode 0644: %v", err)
	}
	os.Chmod(path, 0o600)
	if os.Geteuid() == 0 {
		os.Chown(path, 65534, 65534)
		if _, err := Load(obj, "id"); err == nil || !strings.Contains(err.Error(), "this user") {
			t.Errorf("another user's record: %v", err)
		}
		// The directory of another user is refused as a whole.
		os.Chown(dir, 65534, 65534)
		if _, err := Dir(); err == nil {
			t.Error("another user's directory taken")
		}
		os.Chown(dir, 0, 0)
	}
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(obj, "id"); err == nil {
		t.Error("FIFO taken")
	}
	os.Remove(path)
	os.Chmod(dir, 0o777)
	if _, err := Dir(); err == nil {
		t.Error("world-writable directory taken")
	}
	os.Chmod(dir, 0o700)
	// A directory that is a link is refused.
	base := t.TempDir()
	t.Setenv("XDG_STATE_HOME", base)
	os.MkdirAll(filepath.Join(base, "buttersink"), 0o700)
	os.Symlink(dir, filepath.Join(base, "buttersink", "uploads"))
	if _, err := Dir(); err == nil {
		t.Error("a linked directory taken")
	}
}

// FuzzParse: whatever a record file holds, parse returns a record only
// for the upload asked for.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"format":"bs-upload1","object":"s3://b/p/vol/k","upload_id":"id","recipients":"r","age_header":"aGRy","age_file_key":"MDEyMzQ1Njc4OWFiY2RlZg=="}`))
	f.Add([]byte(`{"format":"bs-upload1","object":"s3://b/p/vol/k","upload_id":"other"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parse(b, obj, "id")
		if err == nil && (r.Object != obj || r.UploadID != "id" || r.Format != Format) {
			t.Errorf("parse = %+v", r)
		}
	})
}
