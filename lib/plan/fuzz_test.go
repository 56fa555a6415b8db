package plan

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/schedule"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// FuzzPlan builds inventories from arbitrary bytes, with UUIDs drawn from
// a small pool so that identities collide, chains loop and records point
// at themselves, as hostile or corrupt listings may. The planner must not
// fail or hang on them, and its plan must apply cleanly.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, false, false, false)
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, true, true, false)
	f.Add([]byte{7, 3, 3, 7, 7, 3, 3, 7, 5, 5, 5, 5, 9, 1, 2, 3, 4}, true, false, true)
	f.Add([]byte{1, 0, 0, 2, 2, 1, 0, 4, 3, 2, 0, 6, 4, 3, 0, 8, 3, 2, 0, 9}, true, true, true)
	policy, err := schedule.Parse("1d 3h", time.UTC)
	if err != nil {
		f.Fatal(err)
	}
	pool := make([]uuid.UUID, 8)
	for i := 1; i < len(pool); i++ { // pool[0] stays zero
		pool[i] = uid(fmt.Sprint("pool", i))
	}
	f.Fuzz(func(t *testing.T, data []byte, objects, del, sched bool) {
		var src, dst, partials []snapshot.Snapshot
		for i := 0; i+4 <= len(data) && i < 4*40; i += 4 {
			a, b, c, d := data[i], data[i+1], data[i+2], data[i+3]
			if d&1 == 0 {
				src = append(src, snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true,
					Path: fmt.Sprintf("d%d/s%d", d>>6, i), UUID: pool[a%8], ParentUUID: pool[b%8], ReceivedUUID: pool[c%8],
					CTransID: uint64(d), CTime: epoch.Add(time.Duration(d) * time.Hour)})
				continue
			}
			if objects {
				dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindObject, Path: fmt.Sprintf("o%d", i),
					UUID: pool[a%8], SendParentUUID: pool[b%8], Size: i64(int64(c)), Key: fmt.Sprintf("k%d", i), CTime: epoch.Add(time.Duration(c) * time.Hour)})
			} else if d&2 != 0 && len(src) > 0 {
				// A partial receive of some source snapshot's path,
				// of a stream that may or may not be the one planned.
				at := src[int(a)%len(src)]
				partials = append(partials, snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: at.Path, UUID: pool[c%8], Partial: true,
					Resume: &snapshot.Resume{Offset: int64(c), UUID: pool[b%8], CTransID: uint64(a >> 4), ParentUUID: pool[c%8], ParentCTransID: uint64(d >> 2)}})
			} else {
				dst = append(dst, snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, Path: fmt.Sprintf("o%d", i),
					UUID: pool[a%8], ReceivedUUID: pool[b%8]})
			}
		}
		opts := Options{Src: mustLoc(t, "/src/"), Dst: mustLoc(t, "/dst/"), Delete: del, Partials: partials}
		if sched {
			opts.Policy, opts.Prune, opts.Now = &policy, del, epoch.Add(200*time.Hour)
		}
		if objects {
			opts.Dst = mustLoc(t, "file:///dst/")
		}
		res, err := Plan(context.Background(), src, dst, opts)
		if err != nil {
			for i := range src {
				if src[i].EffectiveUUID().IsZero() {
					return // refused, as it must be
				}
			}
			t.Fatal(err)
		}
		maxChain := noChain
		if objects {
			maxChain = DefaultObjectMaxChain
		}
		apply(t, dst, res.Steps, objects, maxChain)
		for _, st := range res.Steps {
			if st.Resume == nil {
				continue
			}
			found := false
			for _, p := range partials {
				found = found || p.Path == st.Snapshot.Path && sameStream(&st, p.Resume) && p.Resume.Offset == st.Resume.Offset
			}
			if st.Op != OpSend || !found {
				t.Fatalf("step %s resumes no partial receive of its stream", st.Snapshot.Path)
			}
		}
	})
}
