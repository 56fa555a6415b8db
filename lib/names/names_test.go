package names

import (
	"errors"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	long := strings.Repeat("a", ComponentMax+1)
	for _, c := range []struct {
		check func(string) error
		in    string
		ok    bool
	}{
		{Snapshot, "home.1", true},
		{Snapshot, "host1/home.1", true},
		{Snapshot, "caf\xe9", true},
		{Snapshot, "", false},
		{Snapshot, "/etc", false},
		{Snapshot, "..", false},
		{Snapshot, "a/../b", false},
		{Snapshot, "a/./b", false},
		{Snapshot, "a//b", false},
		{Snapshot, "a/", false},
		{Snapshot, "a\x00b", false},
		{Snapshot, long, false},
		{Snapshot, strings.Repeat("a/", 3000), false},
		{StreamPath, "", true},
		{StreamPath, "dir/file", true},
		{StreamPath, "../x", false},
		{StreamPath, "/x", false},
		{StreamPath, "x/..", false},
		{Component, "a", true},
		{Component, "a/b", false},
		{Component, ".", false},
		{Component, "", false},
		{Component, long, false},
		{func(s string) error { return Key(s, 0) }, "home.1/u.bs1", true},
		{func(s string) error { return Key(s, 0) }, "caf\xe9", false},
		{func(s string) error { return Key(s, 0) }, "a\nb", false},
		{func(s string) error { return Key(s, 0) }, "../a", false},
		{func(s string) error { return Key(s, 1000) }, strings.Repeat("ü", 20), false},
		{func(s string) error { return Key(s, 900) }, strings.Repeat("ü", 20), true},
	} {
		err := c.check(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%q: got %v, want ok=%v", c.in, err, c.ok)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("%q: error %v is not a *Error", c.in, err)
		}
	}
}

// FuzzStreamPath checks the promise the receivers rely on: an accepted
// path, joined to a directory and cleaned, stays below it.
func FuzzStreamPath(f *testing.F) {
	for _, s := range []string{"", "a", "a/b", "../a", "a/../../b", "/a", "a//b", ".", "a/.", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if StreamPath(p) != nil {
			return
		}
		for _, c := range strings.Split(p, "/") {
			if p != "" && (c == "" || c == "." || c == "..") {
				t.Fatalf("accepted %q with component %q", p, c)
			}
		}
		if strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 || len(p) > PathMax {
			t.Fatalf("accepted %q", p)
		}
		if Snapshot(p) != nil && p != "" {
			t.Fatalf("stream path %q accepted, snapshot path refused: the rules differ", p)
		}
	})
}
