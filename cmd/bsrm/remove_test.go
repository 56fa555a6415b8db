package main

import (
	"path"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/snapshot"
)

func loc(t testing.TB, s string) location.Location {
	l, err := location.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCheck(t *testing.T) {
	dirs := []location.Location{loc(t, "/backup/"), loc(t, "s3://bkt/host/"), loc(t, "ssh://h:22/b/")}
	tests := []struct {
		dst, path, key, err string
	}{
		{dst: "/backup/", path: "home.1"},
		{dst: "/backup/sub/", path: "x/y"},
		{dst: "s3://bkt/host/", key: "home.1/abc"},
		{dst: "s3://bkt/host/deeper/", key: "k"},
		{dst: "ssh://h:22/b/", path: "s"},
		{dst: "/backupx/", path: "s", err: "not within"},
		{dst: "/", path: "backup/s", err: "not within"},
		{dst: "s3://other/host/", key: "k", err: "not within"},
		{dst: "s3://bkt/hostile/", key: "k", err: "not within"},
		{dst: "ssh://h:23/b/", path: "s", err: "not within"},
		{dst: "ssh://g:22/b/", path: "s", err: "not within"},
		{dst: "/backup/", path: "../etc", err: "escapes"},
		{dst: "/backup/", path: "a/../../etc", err: "not clean"},
		{dst: "/backup/", path: "/etc", err: "absolute"},
		{dst: "/backup/", path: "", err: "empty"},
		{dst: "/backup/", path: ".", err: "escapes"},
		{dst: "/backup", path: "s", err: "not a directory"},
		{dst: "s3://bkt/host/", key: "../x", err: "escapes"},
		{dst: "gopher://x/", path: "s", err: "unknown scheme"},
	}
	for _, tc := range tests {
		s := plan.Step{Op: plan.OpDelete, Dst: tc.dst, Snapshot: snapshot.Snapshot{Path: tc.path, Key: tc.key}}
		_, err := check(&s, dirs)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %s%s: %v, want %q", tc.dst, tc.path, tc.key, err, tc.err)
		}
	}
}

// FuzzCheck: whatever a step says, an accepted one deletes inside an
// allowed directory.
func FuzzCheck(f *testing.F) {
	for _, s := range [][2]string{{"/backup/", "a"}, {"/backup/x/", "../../y"}, {"/", "backup/z"}, {"/backup/../etc/", "p"}, {"/backup/", "a/./b"}} {
		f.Add(s[0], s[1])
	}
	dirs := []location.Location{loc(f, "/backup/")}
	f.Fuzz(func(t *testing.T, dst, p string) {
		s := plan.Step{Op: plan.OpDelete, Dst: dst, Snapshot: snapshot.Snapshot{Path: p}}
		if _, err := check(&s, dirs); err != nil {
			return
		}
		l, err := location.Parse(dst)
		if err != nil {
			t.Fatalf("accepted unparsable dst %q", dst)
		}
		full := path.Join(l.Dir, p)
		if !strings.HasPrefix(full, "/backup/") {
			t.Fatalf("dst %q path %q deletes %s", dst, p, full)
		}
	})
}

func TestParseAge(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0s", 0, true},
		{"24h", 24 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"0d", 0, true},
		{"", 0, false},
		{"-1h", 0, false},
		{"-1d", 0, false},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"24", 0, false},
		{"yesterday", 0, false},
	} {
		got, err := ParseAge(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
