package bsrm

import (
	"path"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

func loc(t testing.TB, s string) location.Location {
	l, err := location.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const (
	u1 = "0f4e8a52-4a3b-4b5c-9d6e-7f8091a2b3c4"
	u2 = "1a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9"
)

func mustUUID(t testing.TB, s string) uuid.UUID {
	u, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCheck(t *testing.T) {
	dirs := []location.Location{loc(t, "/backup/"), loc(t, "s3://bkt/host/"), loc(t, "ssh://h:22/b/"), loc(t, "file:///store/")}
	key := "home.1/" + u1 + ".full.ct5.bs1"
	tests := []struct {
		dst, path, key, uuid, err string
		rel                       string
	}{
		{dst: "/backup/", path: "home.1", rel: "home.1"},
		{dst: "/backup/sub/", path: "x/y", rel: "sub/x/y"},
		{dst: "s3://bkt/host/", path: "home.1", key: key, rel: key},
		{dst: "s3://bkt/host/deeper/", path: "home.1", key: key, rel: "deeper/" + key},
		{dst: "file:///store/a/", path: "home.1", key: key, rel: "a/" + key},
		{dst: "ssh://h:22/b/", path: "s", rel: "s"},
		{dst: "/backupx/", path: "s", err: "not within"},
		{dst: "/", path: "backup/s", err: "not within"},
		{dst: "/backup/../etc/", path: "s", err: "not within"},
		{dst: "s3://other/host/", path: "home.1", key: key, err: "not within"},
		{dst: "s3://bkt/hostile/", path: "home.1", key: key, err: "not within"},
		{dst: "file:///storex/", path: "home.1", key: key, err: "not within"},
		{dst: "ssh://h:23/b/", path: "s", err: "not within"},
		{dst: "ssh://g:22/b/", path: "s", err: "not within"},
		{dst: "/backup/", path: "../etc", err: "'..' component"},
		{dst: "/backup/", path: "a/../../etc", err: "'..' component"},
		{dst: "/backup/", path: "/etc", err: "absolute"},
		{dst: "/backup/", path: "", err: "empty"},
		{dst: "/backup/", path: ".", err: "'.' component"},
		{dst: "/backup/", path: "a//b", err: "empty component"},
		{dst: "/backup/", path: "a\x00b", err: "NUL"},
		{dst: "/backup", path: "s", err: "not a directory"},
		{dst: "gopher://x/", path: "s", err: "unknown scheme"},
		// No UUID: refused, never "whatever is there".
		{dst: "/backup/", path: "home.1", uuid: "-", err: "no uuid"},
		{dst: "s3://bkt/host/", path: "home.1", key: key, uuid: "-", err: "no uuid"},
		// Keys: stored streams of the step's snapshot only.
		{dst: "s3://bkt/host/", path: "home.1", key: "../x", err: "'..' component"},
		{dst: "s3://bkt/host/", path: "home.1", key: "home.1/../../other/" + u1 + ".full.ct5.bs1", err: "'..' component"},
		{dst: "s3://bkt/host/", path: "home.1", key: "home.1/notes.txt", err: "not a stored stream"},
		{dst: "file:///store/", path: "home.1", key: ".bs-lock", err: "not a stored stream"},
		{dst: "s3://bkt/host/", path: "home.1", key: "home.1/" + u1 + ".full.ct5.bs1.partial", err: "not a stored stream"},
		{dst: "s3://bkt/host/", path: "home.1", key: "home.1/" + u1 + ".full.ct5.bs1", uuid: u2, err: "the step names"},
		{dst: "s3://bkt/host/", path: "home.2", key: key, err: "the step names"},
		{dst: "s3://bkt/host/", path: "home.1", key: "", err: "empty"},
	}
	for _, tc := range tests {
		u := mustUUID(t, u1)
		if tc.uuid == "-" {
			u = uuid.UUID{}
		} else if tc.uuid != "" {
			u = mustUUID(t, tc.uuid)
		}
		s := plan.Step{Op: plan.OpDelete, Dst: tc.dst, Snapshot: snapshot.Snapshot{Path: tc.path, Key: tc.key, UUID: u}}
		_, rel, err := check(&s, dirs)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s %q %q: %v, want %q", tc.dst, tc.path, tc.key, err, tc.err)
		}
		if err == nil && rel != tc.rel {
			t.Errorf("%s %q %q: rel %q, want %q", tc.dst, tc.path, tc.key, rel, tc.rel)
		}
	}
}

// FuzzCheck: whatever a step says, an accepted one has a UUID, deletes
// inside an allowed directory, and in an object store names a stored
// stream of its snapshot.
func FuzzCheck(f *testing.F) {
	k := "home.1/" + u1 + ".full.ct5.bs1"
	for _, s := range [][4]string{
		{"/backup/", "a", "", u1}, {"/backup/x/", "../../y", "", u1}, {"/", "backup/z", "", u1},
		{"/backup/../etc/", "p", "", u1}, {"/backup/", "a/./b", "", u1}, {"/backup/", "a", "", ""},
		{"s3://bkt/host/", "home.1", k, u1}, {"s3://bkt/host/", "home.1", "../" + k, u1},
		{"file:///store/x/", "home.1", k, u1}, {"file:///store/", "home.1", "home.1/x", u1},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	dirs := []location.Location{loc(f, "/backup/"), loc(f, "s3://bkt/host/"), loc(f, "file:///store/")}
	f.Fuzz(func(t *testing.T, dst, p, key, id string) {
		u, _ := uuid.Parse(id)
		s := plan.Step{Op: plan.OpDelete, Dst: dst, Snapshot: snapshot.Snapshot{Path: p, Key: key, UUID: u}}
		scope, rel, err := check(&s, dirs)
		if err != nil {
			return
		}
		if u.IsZero() {
			t.Fatalf("accepted a step without uuid: %q %q %q", dst, p, key)
		}
		l, err := location.Parse(dst)
		if err != nil {
			t.Fatalf("accepted unparsable dst %q", dst)
		}
		name := p
		if l.IsObjectStore() {
			name = key
			k, err := objkey.ParseKey(key)
			if err != nil || k.UUID != u || k.Path != p {
				t.Fatalf("accepted key %q for %q %s: %v", key, p, u, err)
			}
		}
		if names.Snapshot(rel) != nil || path.Clean(rel) != rel {
			t.Fatalf("dst %q path %q key %q: unclean rel %q", dst, p, key, rel)
		}
		full := path.Join(l.Dir, name)
		if want := path.Join(scope.Dir, rel); full != want {
			t.Fatalf("dst %q path %q key %q: rel %q in %s is %s, not %s", dst, p, key, rel, scope.Dir, want, full)
		}
		top := scope.Dir
		if top != "" {
			top += "/"
		}
		if !strings.HasPrefix(full, top) || full == scope.Dir {
			t.Fatalf("dst %q path %q key %q deletes %s, outside %s", dst, p, key, full, scope.DirString())
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
