package plan

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/schedule"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// BenchmarkPlan10k plans 10,000 snapshots against a destination holding
// 9,900 of them plus 100 it alone has, with -d.
func BenchmarkPlan10k(b *testing.B) {
	var src, dst []snapshot.Snapshot
	for i := 0; i < 10000; i++ {
		s := snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, Path: fmt.Sprintf("home/h.%05d", i),
			CTransID: uint64(100 + 10*i), ParentUUID: uid("live")}
		s.UUID = uid(s.Path)
		src = append(src, s)
		if i < 9900 {
			dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, Path: s.Path,
				UUID: uid("dst:" + s.Path), ReceivedUUID: s.UUID})
		} else {
			dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, Path: fmt.Sprintf("old/%d", i), UUID: uid(fmt.Sprint(i))})
		}
	}
	opts := Options{Src: mustLoc(b, "/src/"), Dst: mustLoc(b, "/dst/"), Delete: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Plan(context.Background(), src, dst, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScheduleYear prints the figures of test/bench/plan.sh's
// plan-year: a year (BENCH_DAYS days) of hourly snapshots of a 1 GiB
// subvolume changing 1 MiB an hour, backed up daily to an object store in
// schedule mode with pruning, and with the default cost-based plan; and
// what a plain incremental chain of every snapshot would store.
func BenchmarkScheduleYear(b *testing.B) {
	days := 365
	if d, err := strconv.Atoi(os.Getenv("BENCH_DAYS")); err == nil && d > 0 {
		days = d
	}
	policy, err := schedule.Parse("1y 3m 30d 24h", time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	figures := func(dst []snapshot.Snapshot) (stored int64, longest int) {
		idx := newRecordIndex(dst, true)
		for i := range dst {
			stored += *dst[i].Size
			longest = max(longest, idx.chain[i])
		}
		return stored, longest
	}
	for b.Loop() {
		sched, _ := simulateYear(b, &policy, 0, days, false)
		plain, src := simulateYear(b, nil, 0, days, false)
		sStored, sChain := figures(sched)
		dStored, dChain := figures(plain)
		// A plain chain: the first snapshot in full, every other one
		// from the one before, all needed by the last.
		cStored := yearSizes.measure(Edge{Snapshot: &src[0]})
		for i := 1; i < len(src); i++ {
			cStored += yearSizes.measure(Edge{Snapshot: &src[i], Parent: &src[i-1]})
		}
		gib := func(n int64) string { return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "GiB" }
		fmt.Printf("bench plan-year: days=%d snapshots=%d schedule_stored=%s schedule_objects=%d schedule_chain=%d plain_stored=%s plain_objects=%d plain_chain=%d ratio=%.3f default_stored=%s default_objects=%d default_chain=%d\n",
			days, len(src), gib(sStored), len(sched), sChain, gib(cStored), len(src), len(src), float64(sStored)/float64(cStored), gib(dStored), len(plain), dChain)
	}
}
