package plan

import (
	"math"
	"path"
	"sort"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// noChain marks an object whose restore chain does not reach a full
// stream: it cannot be restored and counts as absent.
const noChain = math.MaxInt32

// recordIndex finds the records of one location (usually the destination)
// that correlate with a snapshot, and for object stores how long each
// object's restore chain is.
type recordIndex struct {
	recs    []snapshot.Snapshot
	objects bool
	byEff   map[uuid.UUID][]int
	byUUID  map[uuid.UUID][]int
	// chain[i] is the number of objects a restore of recs[i] reads
	// (noChain when it cannot be restored), diffs[i] the bytes of the
	// diffs among them (all but the full stream) and
	// via[i] the parent object the shortest chain goes through (-1 for a
	// full stream). Objects only.
	chain []int
	diffs []int64
	via   []int
	// children lists the objects whose stream is relative to a UUID.
	children map[uuid.UUID][]int
}

func newRecordIndex(recs []snapshot.Snapshot, objects bool) *recordIndex {
	d := &recordIndex{recs: recs, objects: objects,
		byEff: make(map[uuid.UUID][]int, len(recs)), byUUID: make(map[uuid.UUID][]int, len(recs))}
	for i := range recs {
		r := &recs[i]
		if e := r.EffectiveUUID(); !e.IsZero() {
			d.byEff[e] = append(d.byEff[e], i)
		}
		if !r.UUID.IsZero() {
			d.byUUID[r.UUID] = append(d.byUUID[r.UUID], i)
		}
	}
	if objects {
		d.children = make(map[uuid.UUID][]int)
		for i := range recs {
			if p := recs[i].SendParentUUID; recs[i].IsObject() && !p.IsZero() {
				d.children[p] = append(d.children[p], i)
			}
		}
		d.chains()
	}
	return d
}

// chains computes chain, diffs and via for every object: the shortest
// path of send parents down to a full stream, found breadth first from
// the full streams (send-parent links may form cycles).
func (d *recordIndex) chains() {
	n := len(d.recs)
	d.chain = make([]int, n)
	d.diffs = make([]int64, n)
	d.via = make([]int, n)
	var frontier []int
	for i := range d.recs {
		d.chain[i], d.via[i] = noChain, -1
		if r := &d.recs[i]; r.IsObject() && r.SendParentUUID.IsZero() {
			d.chain[i], d.diffs[i] = 1, 0
			frontier = append(frontier, i)
		}
	}
	for level := 1; len(frontier) > 0; level++ {
		var next []int
		for _, p := range frontier {
			for _, c := range d.children[d.recs[p].UUID] {
				diffs := d.diffs[p] + objectBytes(&d.recs[c])
				switch {
				case d.chain[c] == noChain:
					d.chain[c], d.diffs[c], d.via[c] = level+1, diffs, p
					next = append(next, c)
				case d.chain[c] == level+1 && diffs < d.diffs[c]:
					d.diffs[c], d.via[c] = diffs, p
				}
			}
		}
		frontier = next
	}
}

func better(chainA int, bytesA int64, chainB int, bytesB int64) bool {
	return chainA < chainB || chainA == chainB && bytesA < bytesB
}

func objectBytes(r *snapshot.Snapshot) int64 {
	if r.Size != nil {
		return *r.Size
	}
	return 0
}

// all calls fn for every record that correlates with s (a record may be
// reported more than once). In an object store the match is exact: an
// object is the stream of the snapshot whose effective UUID is its UUID,
// and a restore finds a stream's parent by that UUID only.
func (d *recordIndex) all(s *snapshot.Snapshot, fn func(i int)) {
	e := s.EffectiveUUID()
	if e.IsZero() {
		return
	}
	if d.objects {
		for _, i := range d.byEff[e] {
			if d.recs[i].IsObject() {
				fn(i)
			}
		}
		return
	}
	consider := func(list []int) {
		for _, i := range list {
			if snapshot.Correlates(s, &d.recs[i]) {
				fn(i)
			}
		}
	}
	consider(d.byEff[e])
	if !s.UUID.IsZero() && s.UUID != e {
		consider(d.byEff[s.UUID])
	}
	consider(d.byUUID[e])
}

// find returns the destination record that correlates with s (for object
// stores: the restorable one with the shortest chain), or -1.
func (d *recordIndex) find(s *snapshot.Snapshot) int {
	best := -1
	d.all(s, func(i int) {
		r := &d.recs[i]
		if d.objects {
			if !r.IsObject() || d.chain[i] == noChain {
				return
			}
			if best >= 0 && !better(d.chain[i], d.diffs[i], d.chain[best], d.diffs[best]) {
				return
			}
		} else if best >= 0 && r.Path >= d.recs[best].Path {
			return
		}
		best = i
	})
	return best
}

// unionFind groups snapshots into families.
type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int, n)}
	for i := range u.parent {
		u.parent[i] = i
	}
	return u
}

func (u *unionFind) add() int {
	u.parent = append(u.parent, len(u.parent))
	return len(u.parent) - 1
}

func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}

func (u *unionFind) union(a, b int) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		u.parent[ra] = rb
	}
}

// families sets each node's ancestry (snapshots linked by uuid,
// parent_uuid or received_uuid: they share data) and family (ancestry or
// the same directory: worth trying as parents).
func families(nodes []*node) {
	anc := newUnionFind(len(nodes))
	ids := make(map[uuid.UUID]int)
	link := func(i int, u uuid.UUID) {
		if u.IsZero() {
			return
		}
		e, ok := ids[u]
		if !ok {
			e = anc.add()
			ids[u] = e
		}
		anc.union(i, e)
	}
	for i, n := range nodes {
		link(i, n.snap.UUID)
		link(i, n.snap.ParentUUID)
		link(i, n.snap.ReceivedUUID)
		if n.snap.IsObject() {
			link(i, n.snap.SendParentUUID)
		}
	}
	fam := &unionFind{parent: append([]int(nil), anc.parent...)}
	dirs := make(map[string]int)
	for i, n := range nodes {
		n.ancestry = anc.find(i)
		dir := path.Dir(n.snap.Path)
		e, ok := dirs[dir]
		if !ok {
			e = fam.add()
			dirs[dir] = e
		}
		fam.union(i, e)
	}
	for i, n := range nodes {
		n.family = fam.find(i)
	}
}

// sortNodes orders nodes oldest first: by ctransid, then otransid, then path.
func sortNodes(ns []*node) {
	sort.Slice(ns, func(i, j int) bool { return nodeLess(ns[i], ns[j]) })
}

func nodeLess(a, b *node) bool {
	if a.snap.CTransID != b.snap.CTransID {
		return a.snap.CTransID < b.snap.CTransID
	}
	if a.snap.OTransID != b.snap.OTransID {
		return a.snap.OTransID < b.snap.OTransID
	}
	if a.snap.Path != b.snap.Path {
		return a.snap.Path < b.snap.Path
	}
	return a.snap.Key < b.snap.Key
}
