package plan

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/snapshot"
)

func TestPlanTable(t *testing.T) {
	tests := []struct {
		name     string
		src, dst string
		objects  bool   // destination is an object store
		one      string // one-snapshot mode: this name
		del      bool
		maxChain int
		retained string // keys under retention
		want     string
	}{
		{name: "empty destination", src: "a b c", want: "+a +b<a +c<b"},
		{name: "empty source", src: "", dst: "a", want: ""},
		{name: "in sync", src: "a b c", dst: "a b c", want: ""},
		{name: "destination ahead", src: "a b", dst: "a b c!", want: ""},
		{name: "destination ahead, delete", src: "a b", dst: "a b c!", del: true, want: "-c"},
		{name: "gap filled from nearest", src: "a b c d", dst: "a d", want: "+b<a +c<b"},
		{name: "diverged with common ancestor", src: "a b c", dst: "a x!", want: "+b<a +c<b"},
		{name: "diverged, delete", src: "a b c", dst: "a x!", del: true, want: "+b<a +c<b -x"},
		{name: "name alone never correlates", src: "a b", dst: "a? b?", want: "+a +b<a"},
		{name: "restored at source correlates with native destination", src: "r=a s", dst: "a!", want: "+s<r"},
		{name: "received destination correlates with native source", src: "a b", dst: "a", want: "+b<a"},
		{name: "received both sides from a third", src: "a=z b", dst: "z", want: "+b<a"},
		{name: "snapshots of snapshots", src: "a b<a c<b", dst: "a", want: "+b<a +c<b"},
		{name: "unrelated directories send full", src: "x/a y/b", want: "+x/a +y/b"},
		{name: "same directory, unrelated ancestry: full on estimate", src: "a<- b<-", want: "+a +b"},
		{name: "nested paths kept", src: "home/a home/b root/a", dst: "home/a", want: "+home/b<home/a +root/a"},
		{name: "one snapshot", src: "a b c", dst: "a", one: "c", want: "+c<a"},
		{name: "one snapshot present", src: "a b c", dst: "a c", one: "c", want: ""},
		{name: "one snapshot, delete keeps source directory", src: "a b c", dst: "a b x!", one: "c", del: true, want: "+c<b -x"},
		// Equal diff estimates: the shorter chain wins.
		{name: "objects, empty", src: "a b c", objects: true, want: "+a +b<a +c<a"},
		{name: "objects, broken chain repaired by sending its parent", src: "a b c", dst: "b<a", objects: true, want: "+a +c<a"},
		{name: "objects, broken chain", src: "a b c", dst: "b<x", objects: true, want: "+a +b<a +c<a"},
		{name: "objects, chain present", src: "a b c", dst: "a b<a", objects: true, want: "+c<a"},
		{name: "objects, long chain avoided", src: "a@1 b@200 c@400 d@600", dst: "a b<a c<b", objects: true, maxChain: 3, want: "+d<b"},
		// From c the diff would be over a quarter of a full stream: more
		// than a parent two links below a full may serve.
		{name: "objects, large diffs from near the top", src: "a@1 b@20000 c@40000 d@60000", dst: "a b<a c<b", objects: true, want: "+d<b"},
		{name: "objects, max chain forces full", src: "a@1 b@20000 c@40000 d@60000", dst: "a b<a c<b", objects: true, maxChain: 1, want: "+d"},
		{name: "objects, delete keeps chain of kept", src: "c", dst: "a b<a c<b", objects: true, del: true, want: ""},
		{name: "objects, delete children first", src: "a", dst: "a b<a c<b", objects: true, del: true, want: "-c_b -b_a"},
		{name: "objects, delete all", src: "", dst: "a b<a c<b", objects: true, del: true, want: "-c_b -b_a -a_full"},
		{name: "delete spares a send's parent", src: "a", dst: "a", del: true, want: ""},
		{name: "objects, retained kept with its chain", src: "", dst: "a b<a c<b", objects: true, del: true, retained: "c_b", want: ""},
		{name: "objects, retained middle kept with its chain", src: "", dst: "a b<a c<b", objects: true, del: true, retained: "b_a", want: "-c_b"},
		{name: "objects, retained full kept", src: "", dst: "a b<a c<b", objects: true, del: true, retained: "a_full", want: "-c_b -b_a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := parseSrc(t, tc.src)
			dst := parseDst(t, tc.dst, src, tc.objects)
			opts := Options{Src: mustLoc(t, "/src/"+tc.one), Dst: mustLoc(t, "/dst/"), Delete: tc.del, MaxChain: tc.maxChain}
			for _, k := range strings.Fields(tc.retained) {
				if opts.Retained == nil {
					opts.Retained = map[string]bool{}
				}
				opts.Retained[k] = true
			}
			if tc.objects {
				opts.Dst = mustLoc(t, "s3://bucket/dst/")
			}
			for i := range src {
				src[i].Referenced = u64(1 << 30)
			}
			res, err := Plan(context.Background(), src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(res.Steps); got != tc.want {
				t.Errorf("plan\n got %q\nwant %q", got, tc.want)
			}
			checkPlan(t, src, dst, opts, res)
		})
	}
}

func TestPlanFullWhenCheaper(t *testing.T) {
	// b grew from nothing to 1 GiB: the diff from a is as big as b, and
	// the estimate says so through the qgroup sizes.
	src := parseSrc(t, "a#1000 b#1000000000")
	src[1].Exclusive = u64(999999000)
	dst := parseDst(t, "a", src, false)
	res, err := Plan(context.Background(), src, dst, Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "/d/")})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(res.Steps); got != "+b<a" {
		// A related diff is never worse than full plus overhead, so it
		// still wins, with the size estimated near the full size.
		t.Fatalf("got %q", got)
	}
	if res.Steps[0].Size < 999999000 {
		t.Errorf("size %d underestimates the change", res.Steps[0].Size)
	}
	// Measured sizes decide: a diff measured bigger than the full stream loses.
	m := measureFunc(func(e Edge) int64 {
		if e.Parent == nil {
			return 500
		}
		return 900
	})
	res, err = Plan(context.Background(), src, dst, Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "s3://bkt/d/"), Measure: m})
	if err != nil {
		t.Fatal(err)
	}
	if got := render(res.Steps); got != "+a +b" {
		t.Fatalf("got %q", got)
	}
	if !res.Steps[1].Exact || res.Steps[1].Size != 500 {
		t.Errorf("step %+v: want exact size 500", res.Steps[1])
	}
}

func TestPlanClones(t *testing.T) {
	src := parseSrc(t, "a b c d")
	dst := parseDst(t, "a b d", src, false)
	res, err := Plan(context.Background(), src, dst, Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "/d/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 1 || len(res.Steps[0].Clones) == 0 {
		t.Fatalf("want one send with clone sources, got %+v", res.Steps)
	}
	res, err = Plan(context.Background(), src, parseDst(t, "a b d", src, true), Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "file:///d/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps[0].Clones) != 0 {
		t.Errorf("object store send has clone sources: %+v", res.Steps[0].Clones)
	}
}

func TestPlanRestore(t *testing.T) {
	// Objects a (full), b<a, c<b and a second, full object of c.
	mk := func(name, parent string, size int64) snapshot.Snapshot {
		o := snapshot.Snapshot{Kind: snapshot.KindObject, Path: name, UUID: uid(name), Size: i64(size), Key: name + "_" + parent}
		if parent != "" {
			o.SendParentUUID = uid(parent)
		}
		return o
	}
	objs := []snapshot.Snapshot{mk("a", "", 1000), mk("b", "a", 10), mk("c", "b", 10), mk("c", "", 1500), mk("x", "gone", 5)}
	tests := []struct {
		name, one, dst string
		want           string
		unrestorable   int
	}{
		{name: "all", want: "+a +b<a +c<b", unrestorable: 1},
		{name: "one pulls its chain", one: "c", want: "+a +b<a +c<b"},
		{name: "parent at destination", one: "c", dst: "b", want: "+c<b"},
		{name: "broken", one: "x", want: "", unrestorable: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := parseDst(t, tc.dst, nil, false)
			opts := Options{Src: mustLoc(t, "s3://bkt/p/"+tc.one), Dst: mustLoc(t, "/d/")}
			res, err := Plan(context.Background(), objs, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(res.Steps); got != tc.want {
				t.Errorf("got %q want %q", got, tc.want)
			}
			if len(res.Unrestorable) != tc.unrestorable {
				t.Errorf("unrestorable %v", res.Unrestorable)
			}
			for _, s := range res.Steps {
				if s.Parent != nil && s.Parent.EffectiveUUID() != s.Snapshot.SendParentUUID {
					t.Errorf("step %s: parent %v is not the stream's parent", s.Snapshot.Key, s.Parent.EffectiveUUID())
				}
			}
		})
	}
	// Copies between stores move the same objects: each snapshot from an
	// object whose parent the destination store has or gets first;
	// MaxChain is the longest chain the destination then holds.
	copies := []struct {
		name  string
		dst   []snapshot.Snapshot
		want  string
		chain int
	}{
		{"to an empty store", nil, "+a +b<a +c<b", 3},
		{"chain start there", []snapshot.Snapshot{mk("a", "", 1000), mk("b", "a", 10)}, "+c<b", 3},
		{"a full copy there", []snapshot.Snapshot{mk("c", "", 1500)}, "+a +b<a", 2},
	}
	for _, tc := range copies {
		t.Run("copy "+tc.name, func(t *testing.T) {
			res, err := Plan(context.Background(), objs, tc.dst, Options{Src: mustLoc(t, "s3://bkt/p/"), Dst: mustLoc(t, "file:///d/")})
			if err != nil {
				t.Fatal(err)
			}
			if got := render(res.Steps); got != tc.want {
				t.Errorf("got %q want %q", got, tc.want)
			}
			if res.MaxChain != tc.chain {
				t.Errorf("MaxChain %d, want %d", res.MaxChain, tc.chain)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	src := parseSrc(t, "a b")
	_, err := Plan(context.Background(), src, nil, Options{Src: mustLoc(t, "/s/zz"), Dst: mustLoc(t, "/d/")})
	var ns *NoSuchSnapshotError
	if !errors.As(err, &ns) || err.Error() != "/s/zz: no such snapshot" {
		t.Errorf("missing one snapshot: %v", err)
	}
	if _, err := Plan(context.Background(), src, nil, Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "/d/"), Prune: true}); err == nil {
		t.Error("prune without schedule accepted")
	}
}

func TestSummary(t *testing.T) {
	r := &Result{Steps: []Step{
		{Op: OpSend, Size: 1 << 30, Exact: true},
		{Op: OpSend, Parent: &snapshot.Snapshot{}, Size: 1 << 29, Exact: true},
		{Op: OpDelete},
	}}
	if got, want := r.Summary(), "2 to send: 1 full, 1 incremental, 1.5 GiB; 1 to delete"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	r.Steps[1].Exact = false
	if got := r.Summary(); !strings.Contains(got, "~1.5 GiB") {
		t.Errorf("estimate not marked: %q", got)
	}
	r.Steps[1].Size = 0
	if got := r.Summary(); !strings.Contains(got, "size unknown") {
		t.Errorf("unknown size not said: %q", got)
	}
}

type measureFunc func(Edge) int64

func (f measureFunc) Measure(_ context.Context, edges []Edge) ([]int64, error) {
	out := make([]int64, len(edges))
	for i, e := range edges {
		out[i] = f(e)
	}
	return out, nil
}

func TestDeleteSteps(t *testing.T) {
	tests := []struct {
		dst, doomed string
		objects     bool
		want        string
		spared      int
	}{
		{dst: "a b<a c<b", doomed: "c", objects: true, want: "-c_b"},
		{dst: "a b<a c<b", doomed: "b c", objects: true, want: "-c_b -b_a"},
		{dst: "a b<a c<b", doomed: "a", objects: true, want: "", spared: 1},
		{dst: "a b<a c<b", doomed: "a b", objects: true, want: "", spared: 2},
		{dst: "a b<a c<b c", doomed: "b", objects: true, want: "", spared: 1}, // c_b, which stays, needs it
		{dst: "a b c", doomed: "a c", want: "-a -c"},
		{dst: "a x/b x", doomed: "x x/b", want: "-x/b -x"}, // nested first
	}
	for _, tc := range tests {
		dst := parseDst(t, tc.dst, nil, tc.objects)
		if tc.objects {
			for i := range dst { // tell the two objects of c apart
				if dst[i].Path == "c" && dst[i].SendParentUUID.IsZero() {
					dst[i].Key = "c_full"
				}
			}
		}
		doomed := map[string]bool{}
		for _, d := range strings.Fields(tc.doomed) {
			doomed[d] = true
		}
		dir := mustLoc(t, "/d/")
		if tc.objects {
			dir = mustLoc(t, "file:///d/")
		}
		steps, spared := DeleteSteps(dir, dst, func(r *snapshot.Snapshot) bool { return doomed[r.Path] })
		if got := render(steps); got != tc.want || len(spared) != tc.spared {
			t.Errorf("%s minus %s: got %q spared %d, want %q spared %d", tc.dst, tc.doomed, got, len(spared), tc.want, tc.spared)
		}
		for _, s := range steps {
			if s.Reason != ReasonNamed || s.Dst != dir.DirString() {
				t.Errorf("step %+v", s)
			}
		}
	}
}
