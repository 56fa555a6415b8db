package bsrecv

import "testing"

func TestParentViewWhere(t *testing.T) {
	v := &parentView{log: []logEntry{
		{from: "a", to: "b"},
		{from: "b/x", gone: true, stash: "1"},
		{from: "d", gone: true},
		{from: "o257-5-0", to: "c"},
		{from: "c", to: "a"},
	}}
	for _, c := range []struct {
		in, out string
		stashed bool
	}{
		{"a/y", "b/y", false},
		{"a/x", "1", true},
		{"a", "b", false},
		{"ab", "ab", false},
		{"d", "", false},
		{"o257-5-0/f", "a/f", false},
		{"z", "z", false},
	} {
		if p, s := v.where(c.in); p != c.out || s != c.stashed {
			t.Errorf("where(%q) = %q, %v; want %q, %v", c.in, p, s, c.out, c.stashed)
		}
	}
}

func TestParentViewChanged(t *testing.T) {
	v := &parentView{written: map[devIno][]span{}}
	k := devIno{1, 2}
	v.wrote(k, 0, 10)
	v.wrote(k, 10, 10)
	v.wrote(k, 100, 0)
	for _, c := range []struct {
		off, n uint64
		want   bool
	}{
		{0, 1, true}, {19, 1, true}, {20, 80, false}, {50, 60, true}, {200, 0, true}, {20, 0, true}, {25, 5, false},
	} {
		if got := v.changed(k, c.off, c.n); got != c.want {
			t.Errorf("changed(%d, %d) = %v", c.off, c.n, got)
		}
	}
	if v.changed(devIno{1, 3}, 0, 0) {
		t.Error("an inode never written changed")
	}
	for i := range uint64(2 * maxSpans) {
		v.wrote(devIno{9, 9}, 1000+i*10, 1)
	}
	if n := len(v.written[devIno{9, 9}]); n > maxSpans {
		t.Errorf("%d spans kept", n)
	}
}

func TestOrphanName(t *testing.T) {
	for s, want := range map[string]bool{
		"o257-5-0": true, "o257-5-0/x/y": true, "o1-2-3": true, "x/o257-5-0": false,
		"o257-5": false, "o257-5-0-1": false, "oa-5-0": false, "o257--0": false, "orange": false,
	} {
		if orphan(s) != want {
			t.Errorf("orphan(%q) = %v", s, !want)
		}
	}
}
