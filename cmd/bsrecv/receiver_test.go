package bsrecv

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/mnt/plain", "/mnt/plain"},
		{`/mnt/with\040space`, "/mnt/with space"},
		{`/mnt/tab\011and\134backslash`, "/mnt/tab\tand\\backslash"},
		{`/mnt/not\9escape`, `/mnt/not\9escape`},
		{`/mnt/end\04`, `/mnt/end\04`},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCtxReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	r := newCtxReader(ctx, pr)
	defer r.Close()
	go pw.Write([]byte("abc"))
	p := make([]byte, 10)
	if n, err := r.Read(p); n != 3 || err != nil || string(p[:3]) != "abc" {
		t.Fatalf("read %d %v %q", n, err, p[:n])
	}
	// A read blocked on a silent writer ends with the context.
	done := make(chan error)
	go func() { _, err := r.Read(p); done <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read not interrupted")
	}
	if _, err := r.Read(p); err != context.Canceled {
		t.Fatalf("read after cancel: %v", err)
	}
	pw.Close()
}

func TestWalkDirs(t *testing.T) {
	dest := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dest, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel    string
		create bool
		made   int
		err    string
	}{
		{"a/b/", false, 0, ""},
		{"a/b/", true, 2, ""},
		{"a/b/", true, 0, ""},
		{"a/c/", true, 1, ""},
		{"link/", false, 0, "link: not a directory"},
		{"link/x/", true, 0, "link: not a directory"},
		{"file/x/", true, 0, "file: not a directory"},
		{"", true, 0, ""},
	}
	for _, tt := range tests {
		made, err := walkDirs(dest, tt.rel, tt.create)
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) || len(made) != tt.made {
			t.Errorf("walkDirs(%q, %v) = %v, %v; want %d made, error %q", tt.rel, tt.create, made, err, tt.made, tt.err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("created outside the destination: %v", entries)
	}
}
