package plan

import (
	"context"
	"fmt"
	"testing"

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
