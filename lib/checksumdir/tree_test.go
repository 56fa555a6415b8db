package checksumdir

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestScanSparseAndLinks: holes fed as zeros give the hash of the full
// content, wherever the holes are; hard links are hashed once.
func TestScanSparseAndLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int64, at ...int64) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		for i, off := range at {
			if _, err := f.WriteAt([]byte{byte('a' + i), 'x', 'y'}, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("hole-start", 8<<20, 5<<20)
	write("hole-end", 8<<20, 0)
	write("holes-between", 9<<20+7, 0, 3<<20, 9<<20+4)
	write("all-hole", 3<<20)
	write("dense", 3<<20+1, 0, 1<<20, 2<<20, 3<<20-2)
	write("empty", 0)
	if err := os.Link(filepath.Join(dir, "dense"), filepath.Join(dir, "dense-link")); err != nil {
		t.Fatal(err)
	}
	tree, err := Scan(context.Background(), dir, Options{Jobs: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree.Entries) != 7 || tree.Files != 6 {
		t.Errorf("%d entries, %d files hashed; want 7 and 6 (one per inode)", len(tree.Entries), tree.Files)
	}
	for _, e := range tree.Entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(b); e.sum.sum != want {
			t.Errorf("%s: sum %x, want %x", e.Path, e.sum.sum, want)
		}
	}
}

// TestScanNotADirectory: the top must be a directory.
func TestScanNotADirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, nil, 0o644)
	if _, err := Scan(context.Background(), f, Options{}, nil); err == nil || err.Error() != f+": not a directory" {
		t.Errorf("Scan(file) error = %v", err)
	}
	if _, err := Scan(context.Background(), f+"/nope", Options{}, nil); err == nil {
		t.Errorf("Scan(missing) succeeded")
	}
}

// TestScanPortable: with Portable every directory has link count 1
// (whatever the filesystem counts), other entries keep theirs.
func TestScanPortable(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/f"), nil, 0o644)
	os.Link(filepath.Join(dir, "a/f"), filepath.Join(dir, "a/g"))
	for _, portable := range []bool{false, true} {
		tree, err := Scan(context.Background(), dir, Options{Portable: portable}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tree.Entries {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, e.Path), &st); err != nil {
				t.Fatal(err)
			}
			want := uint64(st.Nlink)
			if portable && e.IsDir() {
				want = 1
			}
			if e.Nlink != want {
				t.Errorf("portable %v: %s has link count %d, want %d", portable, e.Path, e.Nlink, want)
			}
		}
	}
}
