package inventory

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

func id(n int) uuid.UUID {
	var u uuid.UUID
	u[0], u[1], u[2], u[15] = byte(n>>16), byte(n>>8), byte(n), 1
	return u
}

// obj is a stored stream of snapshot n relative to parent p (0: full).
func obj(path string, n, p int, size int64) snapshot.Snapshot {
	r := snapshot.Snapshot{Kind: snapshot.KindObject, Path: path, UUID: id(n), Size: &size}
	if p != 0 {
		r.SendParentUUID = id(p)
	}
	return r
}

// show writes the tree as "path:depth[:broken]" in order, sizes as /size.
func show(recs []snapshot.Snapshot, nodes []Node) string {
	var b []string
	for _, n := range nodes {
		s := fmt.Sprintf("%s:%d", recs[n.Rec].Path, n.Depth)
		if n.ChainSize != nil {
			s += fmt.Sprintf("/%d", *n.ChainSize)
		}
		if n.Broken != "" {
			s += ":" + n.Broken
		}
		b = append(b, s)
	}
	return strings.Join(b, " ")
}

func TestTree(t *testing.T) {
	unknown := obj("d", 4, 3, 0)
	unknown.Size = nil
	sub := func(path string, n, p int) snapshot.Snapshot {
		return snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: path, UUID: id(n), ParentUUID: id(p)}
	}
	tests := []struct {
		name string
		recs []snapshot.Snapshot
		want string
	}{
		{"empty", nil, ""},
		{"one chain", []snapshot.Snapshot{obj("a", 1, 0, 100), obj("b", 2, 1, 10), obj("c", 3, 2, 1)},
			"a:0/100 b:1/110 c:2/111"},
		{"children before parents in the listing", []snapshot.Snapshot{obj("c", 3, 2, 1), obj("b", 2, 1, 10), obj("a", 1, 0, 100)},
			"a:0/100 b:1/110 c:2/111"},
		{"branches in listing order", []snapshot.Snapshot{obj("a", 1, 0, 100), obj("b1", 2, 1, 10), obj("b2", 3, 1, 20), obj("c", 4, 2, 1)},
			"a:0/100 b1:1/110 c:2/111 b2:1/120"},
		{"two fulls", []snapshot.Snapshot{obj("a", 1, 0, 5), obj("x", 9, 0, 7)}, "a:0/5 x:0/7"},
		{"missing parent", []snapshot.Snapshot{obj("b", 2, 1, 10), obj("c", 3, 2, 1)},
			"b:0/10:missing parent c:1/11"},
		{"unknown size ends the chain size", []snapshot.Snapshot{obj("a", 1, 0, 1), obj("b", 2, 1, 1), obj("c", 3, 2, 1), unknown, obj("e", 5, 4, 1)},
			"a:0/1 b:1/2 c:2/3 d:3 e:4"},
		{"duplicate: children attach to the first", []snapshot.Snapshot{obj("a", 1, 0, 100), obj("a", 1, 0, 50), obj("b", 2, 1, 10)},
			"a:0/100 b:1/110 a:0/50"},
		{"duplicate claiming the first as parent", []snapshot.Snapshot{obj("a", 1, 0, 100), obj("a2", 1, 1, 5)},
			"a:0/100 a2:1/105"},
		{"self parent", []snapshot.Snapshot{obj("a", 1, 1, 1)}, "a:0/1:cycle"},
		{"cycle of two", []snapshot.Snapshot{obj("a", 1, 2, 1), obj("b", 2, 1, 1)}, "a:0/1:cycle b:1/2"},
		{"cycle with a tail and a branch", []snapshot.Snapshot{obj("t", 9, 3, 1), obj("a", 1, 3, 1), obj("b", 2, 1, 1), obj("c", 3, 2, 1), obj("f", 8, 0, 1)},
			"f:0/1 a:0/1:cycle b:1/2 c:2/3 t:3/4"},
		{"subvolume with its source unlisted is no broken chain", []snapshot.Snapshot{sub("s1", 1, 7), sub("r2", 2, 1)},
			"s1:0 r2:1"},
		{"zero UUIDs link nothing", []snapshot.Snapshot{{Kind: snapshot.KindObject, Path: "z"}, {Kind: snapshot.KindObject, Path: "y"}}, "z:0 y:0"},
	}
	for _, tt := range tests {
		nodes := Tree(tt.recs)
		if got := show(tt.recs, nodes); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if len(nodes) != len(tt.recs) {
			t.Errorf("%s: %d nodes for %d records", tt.name, len(nodes), len(tt.recs))
		}
	}
}

// TestTreeLong: a chain of many thousands, and as many in a loop, with no
// recursion to overflow and in linear time.
func TestTreeLong(t *testing.T) {
	const n = 100000
	for _, loop := range []bool{false, true} {
		recs := make([]snapshot.Snapshot, n)
		for i := range recs {
			recs[i] = obj(fmt.Sprint(i), i+1, i, 1)
		}
		if loop {
			recs[0].SendParentUUID = id(n)
		}
		start := time.Now()
		nodes := Tree(recs)
		if len(nodes) != n || nodes[n-1].Chain != n || *nodes[n-1].ChainSize != n {
			t.Fatalf("loop %v: %d nodes, last chain %d", loop, len(nodes), nodes[len(nodes)-1].Chain)
		}
		if loop != (nodes[0].Broken == BrokenCycle) {
			t.Errorf("loop %v: first node broken %q", loop, nodes[0].Broken)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("loop %v: %v for %d records", loop, d, n)
		}
	}
}

func TestSummarize(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 12, 1, h, 0, 0, 0, time.UTC) }
	rec := func(path string, stored time.Time, size int64) snapshot.Snapshot {
		return snapshot.Snapshot{Kind: snapshot.KindObject, Path: path, Stored: stored, Size: &size}
	}
	sub := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "snaps/s1", OTime: at(3), CTime: at(9)}
	tests := []struct {
		name string
		recs []snapshot.Snapshot
		want string
	}{
		{"empty", nil, ""},
		{"hosts", []snapshot.Snapshot{rec("host2/home/b", at(1), 5), rec("host1/a", at(2), 1), rec("host1/b", at(1), 2), rec("host2/home/a", at(4), 5)},
			"host1/ 2 3 host1/a 02 | host2/home/ 2 10 host2/home/a 04"},
		{"top level", []snapshot.Snapshot{rec("a", at(1), 1), rec("b", at(1), 1)}, " 2 2 b 01"},
		{"no time: the greatest path", []snapshot.Snapshot{rec("h/b", time.Time{}, 1), rec("h/c", time.Time{}, 1), rec("h/a", time.Time{}, 1)},
			"h/ 3 3 h/c 00"},
		{"subvolume by otime", []snapshot.Snapshot{sub}, "snaps/ 1 - snaps/s1 03"},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range Summarize(tt.recs) {
			size := "-"
			if p.Size != nil {
				size = fmt.Sprint(*p.Size)
			}
			got = append(got, fmt.Sprintf("%s %d %s %s %02d", p.Prefix, p.Snapshots, size, p.Newest, p.Time.Hour()))
		}
		if s := strings.Join(got, " | "); s != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, s, tt.want)
		}
	}
}

// FuzzTree: records whose UUIDs and parents come from keys anyone with
// write access to a store chose. Whatever they claim, every record is
// placed once, a child sits right below its parent, and chains add up.
func FuzzTree(f *testing.F) {
	f.Add([]byte{1, 0, 2, 1, 3, 2})
	f.Add([]byte{1, 2, 2, 1})
	f.Add([]byte{1, 1, 1, 1, 0, 0})
	f.Add([]byte{5, 4, 4, 3, 3, 5, 9, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Two bytes a record: its UUID and its parent's (0: none), from a
		// small set so that duplicates, loops and misses are common.
		var recs []snapshot.Snapshot
		for i := 0; i+1 < len(b) && len(recs) < 512; i += 2 {
			r := obj(fmt.Sprint(i/2), int(b[i]%16), int(b[i+1]%16), int64(b[i]))
			if b[i]%16 == 0 {
				r.UUID = uuid.UUID{}
			}
			if b[i+1]%32 >= 16 {
				r.Kind = snapshot.KindSubvolume
				r.ParentUUID, r.SendParentUUID = r.SendParentUUID, uuid.UUID{}
			}
			recs = append(recs, r)
		}
		nodes := Tree(recs)
		if len(nodes) != len(recs) {
			t.Fatalf("%d nodes for %d records", len(nodes), len(recs))
		}
		seen := make([]bool, len(recs))
		var path []int // the records from the chain's start to the last node
		for _, n := range nodes {
			if seen[n.Rec] {
				t.Fatalf("record %d placed twice", n.Rec)
			}
			seen[n.Rec] = true
			if n.Depth > len(path) || n.Chain != n.Depth+1 {
				t.Fatalf("node %+v after a chain of %d", n, len(path))
			}
			path = append(path[:n.Depth], n.Rec)
			if n.Depth > 0 {
				parent := &recs[path[n.Depth-1]]
				if parent.UUID != ParentOf(&recs[n.Rec]) || parent.UUID.IsZero() {
					t.Fatalf("record %d below %d, which is not its parent", n.Rec, path[n.Depth-1])
				}
			}
		}
	})
}
