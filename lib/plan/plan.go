// Package plan decides what to send from one location to another and from
// which parent, and what to delete. The planner is pure logic over two
// inventories (lists of snapshot records); where they came from, and how
// sizes are measured, is the caller's business.
package plan

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/schedule"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/units"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Options say what to plan.
type Options struct {
	// Src is the source location as given: Snapshot names the one
	// snapshot to send ("" = every snapshot in the source inventory).
	Src location.Location
	// Dst is the destination directory.
	Dst location.Location
	// MaxChain limits restore chains at object-store destinations;
	// 0 means DefaultObjectMaxChain. It does not apply to btrfs.
	MaxChain int
	// StoreWeight weighs stored against transferred bytes; 0 means
	// DefaultStoreWeight.
	StoreWeight float64
	// Delete plans deleting destination snapshots the source does not have.
	Delete bool
	// Policy, when set, picks parents by calendar period and sends only
	// what it keeps; Prune then deletes what it no longer keeps.
	Policy *schedule.Policy
	Prune  bool
	// Now is the time the policy is applied at.
	Now time.Time
	// Measure, when set, measures the sizes the planner weighs; otherwise
	// sizes are estimated.
	Measure Measurer
	// Partials are the destination's partial receives that can be
	// resumed (records with Resume, from a listing with writable
	// subvolumes); a send of the very stream one of them was receiving
	// resumes it. Never part of dst.
	Partials []snapshot.Snapshot
	// Progress, when set, is told after each snapshot planned for sending
	// how many of how many are done.
	Progress func(done, total int)
	// Retained are the keys of destination objects under retention (S3
	// Object Lock): never deleted, and neither is any object on their
	// restore chains.
	Retained map[string]bool
}

// Result is a plan: its steps in dependency order, and counts for the
// summary.
type Result struct {
	Steps []Step
	// Kept is the number of snapshots the schedule keeps (schedule mode).
	Kept int
	// Unrestorable lists selected objects whose chain is broken.
	Unrestorable []string
	// MaxChain is the longest restore chain at an object-store destination
	// once the steps are carried out (0 for btrfs).
	MaxChain int
	policy   *schedule.Policy
}

// NoSuchSnapshotError is a source location naming a snapshot that is not
// among the source records.
type NoSuchSnapshotError struct{ Src location.Location }

func (e *NoSuchSnapshotError) Error() string { return fmt.Sprintf("%s: no such snapshot", e.Src) }

// node is one source record as the planner sees it.
type node struct {
	snap     *snapshot.Snapshot
	selected bool
	// dst is the index of the correlating destination record, -1 if none.
	dst int
	// present: at the destination (restorable) or sent earlier in the plan.
	present bool
	planned bool
	// chain and diffs describe the restore chain at an object-store
	// destination once present: its length, and the bytes of its diffs.
	chain int
	diffs int64
	// ancestry and family group related snapshots (see families).
	ancestry, family int
	// pos is the node's place in its family, oldest first.
	pos int
	// time is the snapshot's time for the schedule.
	time time.Time
	// schedParent is the parent the schedule gives the node (nil =
	// full), schedChain the chain that makes, and needed whether the
	// schedule keeps it or a kept snapshot to send needs it.
	schedParent *node
	schedChain  int
	needed      bool
	// sentFrom is the parent this plan sends the node from.
	sentFrom *node
}

type planner struct {
	opts        Options
	src         []*node
	dst         *recordIndex
	dstObjects  bool
	maxChain    int
	storeWeight float64
	// avail[family] holds the positions of the family's members present
	// at the destination, sorted.
	members map[int][]*node
	avail   map[int][]int
	steps   []Step
	// usedAtDst marks destination records this plan's sends rely on.
	usedAtDst map[int]bool
	// prunable marks destination records the schedule no longer keeps.
	prunable map[int]bool
	// srcIdx finds source records by identity, indexed like src.
	srcIdx *recordIndex
}

// Plan plans sending src's snapshots to dst. src is the inventory of
// opts.Src's directory (all of it, also when opts.Src names one snapshot:
// the others are candidate parents), dst that of opts.Dst. The steps come
// in dependency order: sends (parents first), then deletes.
func Plan(ctx context.Context, src, dst []snapshot.Snapshot, opts Options) (*Result, error) {
	if opts.Prune && opts.Policy == nil {
		return nil, errors.New("pruning needs a schedule")
	}
	if opts.Policy != nil && opts.Src.IsObjectStore() {
		return nil, errors.New("a schedule applies to sends from btrfs, not to restores")
	}
	pl := &planner{
		opts:        opts,
		dstObjects:  opts.Dst.IsObjectStore(),
		maxChain:    opts.MaxChain,
		storeWeight: opts.StoreWeight,
		members:     make(map[int][]*node),
		avail:       make(map[int][]int),
		usedAtDst:   make(map[int]bool),
	}
	if pl.maxChain <= 0 {
		pl.maxChain = DefaultObjectMaxChain
	}
	if !pl.dstObjects {
		pl.maxChain = noChain
	}
	if pl.storeWeight <= 0 {
		pl.storeWeight = DefaultStoreWeight
	}
	if opts.Now.IsZero() {
		pl.opts.Now = time.Now()
	}
	pl.dst = newRecordIndex(dst, pl.dstObjects)
	found := opts.Src.Snapshot == ""
	for i := range src {
		s := &src[i]
		if s.EffectiveUUID().IsZero() {
			// Without an identity nothing can correlate with it, and a
			// receiver could not tell its stream from any other.
			return nil, fmt.Errorf("%s: source record %q has no uuid", opts.Src.DirString(), s.Path)
		}
		n := &node{snap: s, dst: pl.dst.find(s), time: snapTime(s)}
		n.selected = opts.Src.Snapshot == "" || s.Path == opts.Src.Snapshot
		found = found || n.selected
		if n.dst >= 0 {
			n.present = true
			if pl.dstObjects {
				n.chain, n.diffs = pl.dst.chain[n.dst], pl.dst.diffs[n.dst]
			}
		}
		pl.src = append(pl.src, n)
	}
	if !found {
		return nil, &NoSuchSnapshotError{Src: opts.Src}
	}
	pl.srcIdx = newRecordIndex(src, false)
	res := &Result{policy: opts.Policy}
	var err error
	if opts.Src.IsObjectStore() {
		res.Unrestorable, err = pl.planRestore()
	} else {
		err = pl.planSend(ctx, res)
	}
	if err != nil {
		return nil, err
	}
	pl.planDeletes(res)
	res.Steps = pl.steps
	if pl.dstObjects {
		res.MaxChain = pl.longestChain(res.Steps)
	}
	if !opts.Src.IsObjectStore() && !pl.dstObjects {
		resumeSends(res.Steps, opts.Partials)
	}
	return res, nil
}

// longestChain is the longest restore chain among the objects steps keep
// at the destination and those they send. A copy between stores sends
// objects as they are (no Chain on the step): its chain is its parent's
// there, plus one.
func (pl *planner) longestChain(steps []Step) int {
	gone := make(map[string]bool)
	for _, s := range steps {
		if s.Op == OpDelete {
			gone[s.Snapshot.Key] = true
		}
	}
	longest := 0
	chain := make(map[uuid.UUID]int)
	shortest := func(u uuid.UUID, c int) {
		if old, ok := chain[u]; !ok || c < old {
			chain[u] = c
		}
	}
	for i, c := range pl.dst.chain {
		if c != noChain && !gone[pl.dst.recs[i].Key] {
			longest = max(longest, c)
			shortest(pl.dst.recs[i].UUID, c)
		}
	}
	for _, s := range steps {
		if s.Op != OpSend {
			continue
		}
		c := s.Chain
		if c == 0 {
			if p := s.Snapshot.SendParentUUID; p.IsZero() {
				c = 1
			} else if pc, ok := chain[p]; ok {
				c = pc + 1
			}
		}
		longest = max(longest, c)
		shortest(s.Snapshot.UUID, c)
	}
	return longest
}

func snapTime(s *snapshot.Snapshot) time.Time {
	if !s.CTime.IsZero() {
		return s.CTime
	}
	return s.OTime
}

// planSend plans sending subvolumes (btrfs or ssh source).
func (pl *planner) planSend(ctx context.Context, res *Result) error {
	families(pl.src)
	all := append([]*node(nil), pl.src...)
	sortNodes(all)
	for _, n := range all {
		m := pl.members[n.family]
		n.pos = len(m)
		pl.members[n.family] = append(m, n)
		if n.present {
			pl.avail[n.family] = append(pl.avail[n.family], n.pos)
		}
	}
	var order []*node
	if pl.opts.Policy != nil {
		if err := pl.checkTimes(); err != nil {
			return err
		}
		order = pl.scheduleSends(res)
	} else {
		for _, n := range all {
			if n.selected && !n.present {
				order = append(order, n)
			}
		}
	}
	for i, n := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n.present {
			continue // an object whose chain an earlier send completed
		}
		if err := pl.send(ctx, n); err != nil {
			return err
		}
		if pl.opts.Progress != nil {
			pl.opts.Progress(i+1, len(order))
		}
	}
	return nil
}

// candidatesPerSide bounds the parents weighed on each side (older and
// newer) of a snapshot, and walkLimit how far past unusable ones to look.
const (
	candidatesPerSide = 2
	walkLimit         = 64
	// measuredAncestors bounds the chain ancestors measured for one
	// snapshot, on top of the nearest candidates.
	measuredAncestors = 2
)

// candidates returns the usable parents nearest to n in its family:
// present at the destination or sent earlier, with room in their chain;
// the first near of them are the nearest, the rest chain ancestors.
func (pl *planner) candidates(n *node) ([]*node, int) {
	if pl.opts.Policy != nil {
		if n.schedParent != nil && n.schedParent.present && n.schedParent.chain < pl.maxChain {
			return []*node{n.schedParent}, 1
		}
		return nil, 0
	}
	members, avail := pl.members[n.family], pl.avail[n.family]
	at := sort.SearchInts(avail, n.pos)
	var out []*node
	seen := make(map[*node]bool)
	add := func(c *node) bool {
		if c == n || !c.present || seen[c] || c.chain >= pl.maxChain || c.snap.EffectiveUUID() == n.snap.EffectiveUUID() {
			return false
		}
		seen[c] = true
		out = append(out, c)
		return true
	}
	var nearest *node
	side := func(start, step int) {
		found := 0
		for i, walked := start, 0; i >= 0 && i < len(avail) && found < candidatesPerSide && walked < walkLimit; i, walked = i+step, walked+1 {
			c := members[avail[i]]
			if nearest == nil && c != n {
				nearest = c
			}
			if add(c) {
				found++
			}
		}
	}
	side(at-1, -1)
	side(at, 1)
	near := len(out)
	if pl.dstObjects && nearest != nil {
		// The chain ancestors of the nearest older snapshot: a diff from
		// one of them is bigger but makes a shorter chain.
		for c, k := pl.chainParent(nearest), 0; c != nil && k < pl.maxChain; c, k = pl.chainParent(c), k+1 {
			add(c)
		}
	}
	return out, near
}

// reach is the largest diff a snapshot whose restore chain has the given
// length may be the parent of, at an object store without a schedule: as
// much as a full stream for a full stream, half of that one link down,
// and so on. Choosing the cheapest parent one snapshot at a time
// otherwise fills the nearest chains and then diffs every new snapshot
// from ever older ones, which adds up to many full streams (a simulated
// year of hourly snapshots: 583 GiB stored, 191 GiB with this rule); with
// it the parents form a tree whose deeper links carry smaller changes.
func reach(full int64, chain int) int64 {
	return full >> min(chain-1, 62)
}

// weigh is the cost of sending a diff of the given size from c, for a
// snapshot whose full stream has the given size: +Inf where c may not be
// its parent (reach).
func (pl *planner) weigh(c *node, diff, full int64) float64 {
	if pl.dstObjects && pl.opts.Policy == nil && diff > reach(full, c.chain) {
		return math.Inf(1)
	}
	return pl.cost(diff, c.chain+1, c.diffs+diff)
}

// chainParent is the source snapshot whose stream c's object at the
// destination is relative to, or nil.
func (pl *planner) chainParent(c *node) *node {
	if c.planned || c.dst < 0 || !pl.dstObjects {
		return c.sentFrom
	}
	via := pl.dst.via[c.dst]
	if via < 0 {
		return nil
	}
	for _, i := range pl.srcIdx.byEff[pl.dst.recs[via].UUID] { // objects match exactly
		if pl.src[i].present {
			return pl.src[i]
		}
	}
	return nil
}

// send chooses how to send n: in full or from the cheapest candidate.
func (pl *planner) send(ctx context.Context, n *node) error {
	cands, near := pl.candidates(n)
	sizes := make([]size, len(cands)+1)
	sizes[0] = estimateFull(n.snap)
	related := false
	for i, c := range cands {
		sizes[i+1] = estimateDiff(n, c)
		related = related || c.ancestry == n.ancestry
	}
	if pl.opts.Measure != nil && len(cands) > near+measuredAncestors {
		// Measure the nearest candidates and only the chain ancestors the
		// estimates rank best.
		type ranked struct {
			c    *node
			sz   size
			cost float64
		}
		var r []ranked
		for i, c := range cands[near:] {
			sz := sizes[near+i+1]
			r = append(r, ranked{c, sz, pl.weigh(c, sz.bytes, sizes[0].bytes)})
		}
		sort.SliceStable(r, func(i, j int) bool { return r[i].cost < r[j].cost })
		cands, sizes = cands[:near], sizes[:near+1]
		for _, x := range r[:measuredAncestors] {
			cands, sizes = append(cands, x.c), append(sizes, x.sz)
		}
	}
	if pl.opts.Measure != nil && !(n.snap.IsObject()) {
		// A diff from a related snapshot is never much larger than the
		// full stream, so the full one is measured only where its size
		// decides: no related parent, or a chain penalty to weigh.
		var edges []Edge
		var which []int
		if !related || pl.dstObjects {
			edges, which = append(edges, Edge{Snapshot: n.snap}), append(which, 0)
		}
		for i, c := range cands {
			edges, which = append(edges, Edge{Snapshot: n.snap, Parent: c.snap}), append(which, i+1)
		}
		got, err := pl.opts.Measure.Measure(ctx, edges)
		if err != nil {
			return err
		}
		for k, i := range which {
			sizes[i] = size{bytes: got[k], report: got[k], exact: true}
		}
	}
	best, bestCost := -1, pl.cost(sizes[0].bytes, 1, 0)
	for i, c := range cands {
		sz := sizes[i+1]
		if cost := pl.weigh(c, sz.bytes, sizes[0].bytes); cost < bestCost {
			best, bestCost = i, cost
		}
	}
	step := Step{Op: OpSend, Src: pl.opts.Src.DirString(), Dst: pl.opts.Dst.DirString(), Snapshot: *n.snap, Clones: []snapshot.Snapshot{}}
	if best < 0 {
		step.Size, step.Exact = sizes[0].report, sizes[0].exact
		n.chain, n.diffs = 1, 0
	} else {
		p := cands[best]
		sz := sizes[best+1]
		step.Parent = p.snap
		step.Size, step.Exact = sz.report, sz.exact
		n.chain, n.diffs, n.sentFrom = p.chain+1, p.diffs+sz.bytes, p
		pl.use(p)
		if !pl.dstObjects {
			// Clone sources let the stream share extents with other
			// related snapshots the destination has. Object stores get
			// none: every clone source would be one more object a
			// restore depends on.
			for i, c := range cands {
				if i != best && c.ancestry == n.ancestry {
					step.Clones = append(step.Clones, *c.snap)
					pl.use(c)
				}
			}
		}
	}
	n.present, n.planned = true, true
	pl.markAvail(n)
	// Other source snapshots with the same identity (a read-only
	// snapshot of a received one keeps its received UUID) arrive with it:
	// those that correlate with what the destination will hold, a record
	// whose received UUID (object: UUID) is n's effective UUID.
	arrive := func(i int) {
		if m := pl.src[i]; !m.present {
			m.present, m.chain, m.diffs = true, n.chain, n.diffs
			pl.markAvail(m)
		}
	}
	if pl.dstObjects {
		for _, i := range pl.srcIdx.byEff[n.snap.EffectiveUUID()] {
			arrive(i) // objects match exactly
		}
	} else {
		arrived := snapshot.Snapshot{ReceivedUUID: n.snap.EffectiveUUID()}
		pl.srcIdx.all(&arrived, arrive)
	}
	pl.steps = append(pl.steps, step)
	if pl.dstObjects {
		pl.steps[len(pl.steps)-1].Chain = n.chain
		pl.repair(n.snap.EffectiveUUID(), n.chain, n.diffs, -1)
	}
	return nil
}

// repair completes the chains of stored objects whose parent stream was
// missing and is now being sent: they become restorable and need no
// second copy. (A chain longer than MaxChain counts as restorable, as a
// stored one does; such an object is only never used as a parent.)
//
// via is the stored parent object (-1: the one being sent), which keeps
// the repaired chain safe from deletes.
func (pl *planner) repair(parent uuid.UUID, chain int, diffs int64, via int) {
	d := pl.dst
	for _, o := range d.children[parent] {
		if d.chain[o] != noChain {
			continue
		}
		d.chain[o], d.diffs[o], d.via[o] = chain+1, diffs+objectBytes(&d.recs[o]), via
		for _, i := range pl.srcIdx.byEff[d.recs[o].UUID] { // objects match exactly
			if m := pl.src[i]; !m.present {
				m.present, m.dst, m.chain, m.diffs = true, o, d.chain[o], d.diffs[o]
				pl.markAvail(m)
			}
		}
		pl.repair(d.recs[o].UUID, d.chain[o], d.diffs[o], o)
	}
}

// use records that a send relies on c at the destination.
func (pl *planner) use(c *node) {
	if c.dst >= 0 {
		pl.usedAtDst[c.dst] = true
	}
}

func (pl *planner) markAvail(n *node) {
	a := pl.avail[n.family]
	i := sort.SearchInts(a, n.pos)
	a = append(a, 0)
	copy(a[i+1:], a[i:])
	a[i] = n.pos
	pl.avail[n.family] = a
}

// Summary is the one line bsplan logs, e.g. "5 to send: 2 full,
// 3 incremental, 1.4 GiB; 1 to delete".
func (r *Result) Summary() string {
	var full, incr, del, resumed int
	var bytes, received int64
	exact, known := true, true
	for _, s := range r.Steps {
		switch s.Op {
		case OpSend:
			if s.Parent == nil {
				full++
			} else {
				incr++
			}
			bytes += s.Size
			exact = exact && s.Exact
			if s.Resume != nil {
				resumed++
				received += s.Resume.Offset
			}
			known = known && (s.Exact || s.Size > 0)
		case OpDelete:
			del++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d to send", full+incr)
	if full+incr > 0 {
		fmt.Fprintf(&b, ": %d full, %d incremental, ", full, incr)
		switch {
		case !known:
			b.WriteString("size unknown")
		case !exact:
			b.WriteString("~" + units.Bytes(bytes))
		default:
			b.WriteString(units.Bytes(bytes))
		}
		if resumed > 0 {
			fmt.Fprintf(&b, " (%d resumed, %s of it already received)", resumed, units.Bytes(received))
		}
	}
	fmt.Fprintf(&b, "; %d to delete", del)
	if r.policy != nil {
		fmt.Fprintf(&b, "; schedule %q in %s keeps %d", r.policy.String(), r.policy.Zone, r.Kept)
	}
	if len(r.Unrestorable) > 0 {
		fmt.Fprintf(&b, "; %d cannot be restored", len(r.Unrestorable))
	}
	return b.String()
}
