package plan

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/schedule"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// apply executes steps against a destination inventory the way bssend,
// bss3put, bsrecv and bsrm would, checking every dependency as it goes,
// and returns the destination afterwards.
func apply(t testing.TB, dst []snapshot.Snapshot, steps []Step, objects bool, maxChain int) []snapshot.Snapshot {
	t.Helper()
	cur := append([]snapshot.Snapshot(nil), dst...)
	for k, s := range steps {
		idx := newRecordIndex(cur, objects)
		switch s.Op {
		case OpSend:
			if s.Parent != nil && idx.find(s.Parent) < 0 {
				t.Fatalf("step %d %s: parent %s is not at the destination", k, s.Snapshot.Path, s.Parent.Path)
			}
			for _, c := range s.Clones {
				if idx.find(&c) < 0 {
					t.Fatalf("step %d %s: clone source %s is not at the destination", k, s.Snapshot.Path, c.Path)
				}
			}
			if d := idx.find(&s.Snapshot); d >= 0 && (!objects || idx.chain[d] <= maxChain) {
				t.Fatalf("step %d: %s is already at the destination", k, s.Snapshot.Path)
			}
			if objects {
				o := snapshot.Snapshot{Kind: snapshot.KindObject, Path: s.Snapshot.Path, UUID: s.Snapshot.EffectiveUUID(),
					Size: i64(max(s.Size, 1)), Key: fmt.Sprintf("%s_new%d", s.Snapshot.Path, k),
					CTransID: s.Snapshot.CTransID, CTime: s.Snapshot.CTime}
				if s.Parent != nil {
					o.SendParentUUID = s.Parent.EffectiveUUID()
				}
				cur = append(cur, o)
				idx = newRecordIndex(cur, true)
				if c := idx.chain[len(cur)-1]; c > maxChain || c > s.Chain {
					t.Fatalf("step %d %s: chain %d (step says %d), limit %d", k, s.Snapshot.Path, c, s.Chain, maxChain)
				}
			} else {
				cur = append(cur, snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: s.Snapshot.Path, ReadOnly: true,
					UUID: uid(fmt.Sprintf("recv%d:%s", k, s.Snapshot.Path)), ReceivedUUID: s.Snapshot.EffectiveUUID(),
					CTransID: s.Snapshot.CTransID, CTime: s.Snapshot.CTime})
			}
		case OpDelete:
			found := false
			for i := range cur {
				if cur[i].Path == s.Snapshot.Path && cur[i].Key == s.Snapshot.Key && cur[i].UUID == s.Snapshot.UUID {
					cur = append(append([]snapshot.Snapshot(nil), cur[:i]...), cur[i+1:]...)
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("step %d: delete of %s %s: not at the destination", k, s.Snapshot.Path, s.Snapshot.Key)
			}
			if objects {
				// Every other snapshot that was restorable stays so.
				after := newRecordIndex(cur, true)
				for i := range idx.recs {
					r := &idx.recs[i]
					if idx.chain[i] == noChain || r.UUID == s.Snapshot.UUID || r.UUID.IsZero() {
						continue
					}
					if after.find(r) < 0 {
						t.Fatalf("step %d: deleting %s leaves %s unrestorable", k, s.Snapshot.Key, r.Key)
					}
				}
			}
		default:
			t.Fatalf("step %d: op %q", k, s.Op)
		}
	}
	return cur
}

// checkPlan applies a plan and checks that every selected source snapshot
// ends up restorable at the destination and nothing the source has is
// deleted.
func checkPlan(t testing.TB, src, dst []snapshot.Snapshot, opts Options, res *Result) {
	t.Helper()
	objects := opts.Dst.IsObjectStore()
	maxChain := opts.MaxChain
	if maxChain == 0 {
		maxChain = DefaultObjectMaxChain
	}
	if !objects {
		maxChain = noChain
	}
	after := newRecordIndex(apply(t, dst, res.Steps, objects, maxChain), objects)
	for i := range src {
		s := &src[i]
		if opts.Src.Snapshot != "" && s.Path != opts.Src.Snapshot {
			continue
		}
		if opts.Policy != nil && !isNewest(src, s) {
			continue // the schedule decides; the newest must always be there
		}
		if after.find(s) < 0 {
			t.Fatalf("%s is not restorable at the destination after the plan %s", s.Path, render(res.Steps))
		}
	}
	for _, s := range res.Steps {
		if s.Op == OpDelete && s.Reason == ReasonNotInSource {
			for i := range src {
				if snapshot.Correlates(&src[i], &s.Snapshot) {
					t.Fatalf("deletes %s, which the source has as %s", s.Snapshot.Path, src[i].Path)
				}
			}
		}
	}
}

// randomInventories makes a source of related and unrelated snapshots and
// a destination holding some of them, natives, and (objects) chains with
// holes.
func randomInventories(r *rand.Rand, objects bool) (src, dst []snapshot.Snapshot) {
	n := r.Intn(30)
	dirs := []string{"a", "b", "c/d"}
	for i := 0; i < n; i++ {
		dir := dirs[r.Intn(1+r.Intn(len(dirs)))]
		s := snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, Path: fmt.Sprintf("%s/s%d", dir, i),
			CTransID: uint64(10 + i*r.Intn(100)), CTime: epoch.Add(time.Duration(i) * time.Hour)}
		s.UUID = uid(s.Path)
		switch k := r.Intn(10); {
		case k < 6:
			s.ParentUUID = uid("live:" + dir)
		case k < 8 && i > 0:
			s.ParentUUID = src[r.Intn(i)].UUID
		case k < 9:
			s.ReceivedUUID = uid(fmt.Sprintf("elsewhere%d", r.Intn(5)))
		}
		if r.Intn(2) == 0 {
			s.Referenced = u64(uint64(r.Intn(1 << 20)))
			s.Exclusive = u64(uint64(r.Intn(1 << 10)))
		}
		src = append(src, s)
	}
	for i := range src {
		s := &src[i]
		if r.Intn(3) != 0 {
			continue
		}
		if !objects {
			dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: s.Path, ReadOnly: true,
				UUID: uid("dst:" + s.Path), ReceivedUUID: s.EffectiveUUID(), CTime: s.CTime})
			continue
		}
		o := snapshot.Snapshot{Kind: snapshot.KindObject, Path: s.Path, UUID: s.EffectiveUUID(), Size: i64(int64(1 + r.Intn(1000))),
			Key: fmt.Sprintf("%s_%d", s.Path, i), CTime: s.CTime}
		if len(dst) > 0 && r.Intn(4) != 0 {
			o.SendParentUUID = dst[r.Intn(len(dst))].UUID
		} else if r.Intn(8) == 0 {
			o.SendParentUUID = uid("missing") // a broken chain
		}
		dst = append(dst, o)
	}
	for i := 0; i < r.Intn(3); i++ {
		u := uid(fmt.Sprintf("native%d", i))
		if objects {
			dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindObject, Path: fmt.Sprintf("x/n%d", i), UUID: u, Size: i64(7), Key: fmt.Sprintf("n%d", i)})
		} else {
			dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: fmt.Sprintf("x/n%d", i), UUID: u, ReadOnly: true})
		}
	}
	return src, dst
}

func TestPlanProperties(t *testing.T) {
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	r := rand.New(rand.NewSource(1))
	policy, err := schedule.Parse("1d 6h 2M", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for it := 0; it < iterations; it++ {
		objects := r.Intn(2) == 0
		src, dst := randomInventories(r, objects)
		opts := Options{Src: mustLoc(t, "/src/"), Dst: mustLoc(t, "/dst/"), Delete: r.Intn(2) == 0, MaxChain: r.Intn(5)}
		if objects {
			opts.Dst = mustLoc(t, "s3://bucket/dst/")
		}
		if len(src) > 0 && r.Intn(5) == 0 {
			opts.Src.Snapshot = src[r.Intn(len(src))].Path
		}
		if r.Intn(3) == 0 {
			opts.Measure = measureFunc(func(e Edge) int64 {
				if e.Parent == nil {
					return 1 << 20
				}
				d := int64(e.Snapshot.CTransID) - int64(e.Parent.CTransID)
				return 1000 + max(d, -d)*100
			})
		}
		if r.Intn(4) == 0 {
			opts.Policy, opts.Prune, opts.Now = &policy, r.Intn(4) != 0, epoch.Add(time.Duration(r.Intn(40))*time.Hour)
		}
		res, err := Plan(context.Background(), src, dst, opts)
		if err != nil {
			t.Fatalf("iteration %d: %v", it, err)
		}
		t.Run(fmt.Sprint(it), func(t *testing.T) { checkPlan(t, src, dst, opts, res) })
		if t.Failed() {
			for _, x := range src {
				t.Logf("src %s uuid %s recv %s parent %s t %v", x.Path, x.UUID, x.ReceivedUUID, x.ParentUUID, x.CTime)
			}
			for _, x := range dst {
				t.Logf("dst %s key %s uuid %s sendparent %s", x.Path, x.Key, x.UUID, x.SendParentUUID)
			}
			for _, x := range res.Steps {
				t.Logf("step %s %s %s %s", x.Op, x.Snapshot.Path, x.Snapshot.Key, x.Reason)
			}
			t.Fatalf("iteration %d failed: src %d dst %d opts %+v", it, len(src), len(dst), opts)
		}
	}
}

// simulateYear takes hourly snapshots for a year and runs the planner
// every day against an object store, applying each plan.
// With check false the steps are applied without checking each one, which
// is quicker for the benchmark.
func simulateYear(t testing.TB, policy *schedule.Policy, maxChain int, days int, check bool) (dst []snapshot.Snapshot, src []snapshot.Snapshot) {
	diff := measureFunc(yearSizes.measure)
	for day := 0; day < days; day++ {
		for h := 0; h < 24; h++ {
			i := day*24 + h
			s := snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, Path: fmt.Sprintf("home.%05d", i),
				CTransID: uint64(100 + i*7), CTime: epoch.Add(time.Duration(i) * time.Hour)}
			s.UUID, s.ParentUUID = uid(s.Path), uid("live")
			src = append(src, s)
		}
		opts := Options{Src: mustLoc(t, "/src/"), Dst: mustLoc(t, "s3://bucket/b/"), MaxChain: maxChain,
			Policy: policy, Prune: policy != nil, Now: src[len(src)-1].CTime, Measure: diff}
		res, err := Plan(context.Background(), src, dst, opts)
		if err != nil {
			t.Fatal(err)
		}
		limit := maxChain
		if limit == 0 {
			limit = DefaultObjectMaxChain
		}
		if policy != nil {
			limit = policy.MaxChain()
		}
		if check {
			dst = apply(t, dst, res.Steps, true, limit)
		} else {
			dst = applyQuick(dst, res.Steps)
		}
	}
	return dst, src
}

func TestScheduleYear(t *testing.T) {
	days := 365
	if testing.Short() {
		days = 60
	}
	zone, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		zone = time.UTC
	}
	policy, err := schedule.Parse("1y 3m 30d 24h", zone)
	if err != nil {
		t.Fatal(err)
	}
	dst, src := simulateYear(t, &policy, 0, days, true)
	idx := newRecordIndex(dst, true)
	longest := 0
	for i := range dst {
		if idx.chain[i] == noChain {
			t.Fatalf("%s cannot be restored", dst[i].Key)
		}
		longest = max(longest, idx.chain[i])
	}
	if longest > policy.MaxChain() {
		t.Errorf("longest chain %d > %d", longest, policy.MaxChain())
	}
	if idx.find(&src[len(src)-1]) < 0 {
		t.Error("newest snapshot not at the destination")
	}
	// Every snapshot the policy keeps now is restorable; nothing else is
	// stored.
	times := make([]time.Time, len(src))
	for i := range src {
		times[i] = src[i].CTime
	}
	kept := schedule.NewCalendar(policy, times).Kept(src[len(src)-1].CTime)
	nkept := 0
	for i, k := range kept {
		if k {
			nkept++
			if idx.find(&src[i]) < 0 {
				t.Errorf("kept %s is not restorable", src[i].Path)
			}
		}
	}
	// Nothing is stored but kept snapshots and their chains (the first
	// of a year stays while later kept snapshots are diffs from it).
	needed := make([]bool, len(dst))
	for i := range dst {
		if kept[indexBy(src, &dst[i])] {
			for j := i; j >= 0; j = idx.via[j] {
				needed[j] = true
			}
		}
	}
	for i := range dst {
		if !needed[i] {
			t.Errorf("%s (%v) is stored but neither kept nor on a kept chain", dst[i].Key, dst[i].CTime)
			for j := range dst {
				if dst[j].SendParentUUID == dst[i].UUID {
					t.Logf("child %s kept=%v", dst[j].Key, kept[indexBy(src, &dst[j])])
				}
			}
		}
	}
	if nkept < 24 || nkept > 1+3+30+24+1 {
		t.Errorf("%d kept", nkept)
	}
	t.Logf("%d days: %d objects, longest chain %d", days, len(dst), longest)
}

func TestScheduleParents(t *testing.T) {
	policy, _ := schedule.Parse("1y 1m 1d", time.UTC)
	// Snapshots (hours after 2025-01-01): year/month/day nominal at 1,
	// day nominal at 25, plain ones at 2 and 26, month nominal at 31*24+1.
	src := parseSrc(t, "a@1 b@2 c@25 d@26 e@745")
	res, err := Plan(context.Background(), src, nil, Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "file:///d/"),
		Policy: &policy, Now: src[4].CTime.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Kept: a (year), e (month, day, newest). e's parent is the year's
	// nominal a; nothing else is needed.
	if got, want := render(res.Steps), "+a +e<a"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	res, err = Plan(context.Background(), src[:4], nil, Options{Src: mustLoc(t, "/s/"), Dst: mustLoc(t, "file:///d/"),
		Policy: &policy, Now: src[3].CTime})
	if err != nil {
		t.Fatal(err)
	}
	// At d's time the kept set is a (year, month) and c (day), d (newest):
	// c is day nominal → parent month nominal a; d → parent day nominal c.
	if got, want := render(res.Steps), "+a +c<a +d<c"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func indexBy(src []snapshot.Snapshot, r *snapshot.Snapshot) int {
	for i := range src {
		if snapshot.Correlates(&src[i], r) {
			return i
		}
	}
	return -1
}

func isNewest(src []snapshot.Snapshot, s *snapshot.Snapshot) bool {
	for i := range src {
		if src[i].CTime.After(s.CTime) {
			return false
		}
	}
	return true
}

// yearSizes is the size model of simulateYear: a busy subvolume of 1 GiB
// with 1 MiB changing every hour, a diff at most the whole of it.
var yearSizes sizeModel

type sizeModel struct{}

func (sizeModel) measure(e Edge) int64 {
	const full = 1 << 30
	if e.Parent == nil {
		return full
	}
	h := e.Snapshot.CTime.Sub(e.Parent.CTime).Hours()
	return min(full, 4096+int64(max(h, -h)*(1<<20)))
}

// applyQuick applies steps to an object store without checks.
func applyQuick(dst []snapshot.Snapshot, steps []Step) []snapshot.Snapshot {
	gone := make(map[string]bool)
	for k, s := range steps {
		if s.Op == OpDelete {
			gone[s.Snapshot.Key] = true
			continue
		}
		o := snapshot.Snapshot{Kind: snapshot.KindObject, Path: s.Snapshot.Path, UUID: s.Snapshot.EffectiveUUID(),
			Size: i64(max(s.Size, 1)), Key: fmt.Sprintf("%s_q%d", s.Snapshot.Path, k), CTransID: s.Snapshot.CTransID, CTime: s.Snapshot.CTime}
		if s.Parent != nil {
			o.SendParentUUID = s.Parent.EffectiveUUID()
		}
		dst = append(dst, o)
	}
	out := dst[:0]
	for _, o := range dst {
		if !gone[o.Key] {
			out = append(out, o)
		}
	}
	return out
}
