package plan

import (
	"fmt"
	"sort"
	"time"

	"github.com/buttersink/buttersink/lib/schedule"
	"github.com/buttersink/buttersink/lib/uuid"
)

// entry is one snapshot the schedule weighs: a selected source snapshot,
// or a destination snapshot the source no longer has (all its records).
type entry struct {
	time time.Time
	n    *node
	dsts []int
}

// scheduleSends applies the policy: it picks each snapshot's parent by
// calendar period, marks what is kept (and what kept snapshots' chains
// need), records what the destination may prune, and returns the sends in
// order.
//
// Parent rule: a snapshot that is the earliest of its period in the
// longest frame (e.g. the first of the year) is sent in full; one that is
// earliest in frame f but not in the frame before is sent relative to the
// earliest snapshot of its period in that frame before (the first of the
// month relative to the first of the year, the first of the day relative
// to the first of the month); any other relative to the earliest of its
// period in the shortest frame. A restore thus reads at most one stream
// per frame plus the full one. Where the designated parent is gone from
// the source, or its stored chain is already too long, the next longer
// frame's nominal snapshot (finally a full stream) is used, which only
// shortens the chain.
func (pl *planner) scheduleSends(res *Result) []*node {
	policy := pl.opts.Policy
	var entries []entry
	for _, n := range pl.src {
		if n.selected && !n.time.IsZero() {
			entries = append(entries, entry{time: n.time, n: n})
		}
	}
	// Destination snapshots the source does not have still count: they
	// may be nominal snapshots, and the policy decides whether they stay.
	srcIdx := pl.srcIdx
	groups := make(map[uuid.UUID]int)
	for i := range pl.dst.recs {
		r := &pl.dst.recs[i]
		if srcIdx.find(r) >= 0 {
			continue
		}
		t := snapTime(r)
		if t.IsZero() {
			continue // without a time the policy cannot judge it: kept
		}
		e := r.EffectiveUUID()
		if g, ok := groups[e]; ok && !e.IsZero() {
			entries[g].dsts = append(entries[g].dsts, i)
			continue
		}
		groups[e] = len(entries)
		entries = append(entries, entry{time: t, dsts: []int{i}})
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if !a.time.Equal(b.time) {
			return a.time.Before(b.time)
		}
		if a.n != nil && b.n != nil {
			return nodeLess(a.n, b.n)
		}
		return a.n != nil && b.n == nil
	})
	times := make([]time.Time, len(entries))
	for i, e := range entries {
		times[i] = e.time
	}
	cal := schedule.NewCalendar(*policy, times)
	kept := cal.Kept(pl.opts.Now)

	bound := pl.maxChain
	if pl.dstObjects {
		bound = min(bound, policy.MaxChain())
	}
	for i, e := range entries {
		n := e.n
		if n == nil {
			continue
		}
		n.schedChain = 1
		for f := cal.Level(i) - 1; f >= 0; f-- {
			p := entries[cal.Nominal(f, i)].n
			if p == nil || p.snap.EffectiveUUID() == n.snap.EffectiveUUID() {
				continue
			}
			chain := p.schedChain
			if p.present {
				chain = p.chain
			}
			if chain+1 <= bound {
				n.schedParent, n.schedChain = p, chain+1
				break
			}
		}
	}
	pl.prunable = make(map[int]bool)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if kept[i] {
			res.Kept++
		}
		if e.n == nil {
			if !kept[i] {
				for _, d := range e.dsts {
					pl.prunable[d] = true
				}
			}
			continue
		}
		if kept[i] {
			e.n.needed = true
		}
		// A snapshot still to send needs its parent; one already stored
		// needs the chain it was stored with, which planDeletes keeps.
		if e.n.needed && !e.n.present && e.n.schedParent != nil {
			e.n.schedParent.needed = true
		}
		if !e.n.needed {
			pl.dst.all(e.n.snap, func(d int) { pl.prunable[d] = true })
		}
	}
	for _, e := range entries {
		if e.n != nil && e.n.needed {
			pl.dst.all(e.n.snap, func(d int) { delete(pl.prunable, d) })
		}
	}
	if len(entries) > 0 {
		// Never prune the newest snapshot: it is the next send's parent.
		last := entries[len(entries)-1]
		for _, d := range last.dsts {
			delete(pl.prunable, d)
		}
	}
	var order []*node
	for _, e := range entries {
		if e.n != nil && e.n.needed && !e.n.present {
			order = append(order, e.n)
		}
	}
	return order
}

// checkTimes refuses a schedule over snapshots without a time.
func (pl *planner) checkTimes() error {
	for _, n := range pl.src {
		if n.selected && n.time.IsZero() {
			return fmt.Errorf("%s: no creation time; a schedule needs one", n.snap.Path)
		}
	}
	return nil
}
