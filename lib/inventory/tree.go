package inventory

import (
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Node is one snapshot placed in its restore chain: the full stream (or
// subvolume with no listed parent) it starts from and the incrementals
// down to it.
type Node struct {
	// Rec indexes the records Tree was given.
	Rec int
	// Depth is the number of snapshots above this one in its chain (0:
	// the chain starts here); Chain is Depth+1, the streams a restore of
	// this snapshot reads.
	Depth, Chain int
	// Parent is the parent the record claims (zero: none).
	Parent uuid.UUID
	// ChainSize is the stored size of the whole chain down to here, nil
	// when a size on the way is unknown.
	ChainSize *int64
	// Children is the number of snapshots listed whose parent this is.
	Children int
	// Last is set when no later sibling follows (for drawing).
	Last bool
	// Broken says why a node starts a chain although it claims a parent:
	// BrokenMissing (a stored stream whose parent is not in the
	// listing: it cannot be restored from here alone) or BrokenCycle.
	Broken string
}

// Why a chain is broken.
const (
	BrokenMissing = "missing parent"
	// BrokenCycle marks where Tree cut a loop of claimed parents (keys
	// are written by anyone with access to the store).
	BrokenCycle = "cycle"
)

// ParentOf is the snapshot a record is restored on top of: an object's
// send parent; a subvolume's or directory's parent UUID (for a received
// snapshot, the local snapshot its incremental stream was applied to).
func ParentOf(s *snapshot.Snapshot) uuid.UUID {
	if s.IsObject() {
		return s.SendParentUUID
	}
	return s.ParentUUID
}

// Tree arranges recs as their restore chains, in depth-first order: each
// chain's start, then its children in the order of recs. Every record
// appears exactly once, whatever the records claim: a record whose UUID
// another one already has is a duplicate that starts no chain of its own
// children (theirs attach to the first), a loop of parents is cut at its
// first record, a missing parent starts a chain. It walks with its own
// stack, so chains of any length are safe.
func Tree(recs []snapshot.Snapshot) []Node {
	n := len(recs)
	first := make(map[uuid.UUID]int, n)
	for i := range recs {
		if id := recs[i].UUID; !id.IsZero() {
			if _, ok := first[id]; !ok {
				first[id] = i
			}
		}
	}
	parent := make([]int, n)
	broken := make([]string, n)
	children := make([][]int, n)
	for i := range recs {
		parent[i] = -1
		p := ParentOf(&recs[i])
		if p.IsZero() {
			continue
		}
		j, ok := first[p]
		switch {
		case !ok:
			if recs[i].IsObject() {
				broken[i] = BrokenMissing
			}
		case j == i:
			broken[i] = BrokenCycle
		default:
			parent[i] = j
			children[j] = append(children[j], i)
		}
	}
	out := make([]Node, 0, n)
	done := make([]bool, n)
	walk := func(root int) {
		type frame struct {
			i, depth int
			size     *int64
			last     bool
		}
		stack := []frame{{root, 0, nil, true}}
		for len(stack) > 0 {
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if done[f.i] {
				continue
			}
			done[f.i] = true
			r := &recs[f.i]
			var size *int64
			if r.Size != nil && *r.Size >= 0 && (f.depth == 0 || f.size != nil) {
				s := *r.Size
				if f.size != nil {
					s += *f.size
				}
				size = &s
			}
			kids := children[f.i]
			out = append(out, Node{Rec: f.i, Depth: f.depth, Chain: f.depth + 1, Parent: ParentOf(r),
				ChainSize: size, Children: len(kids), Last: f.last, Broken: broken[f.i]})
			for k := len(kids) - 1; k >= 0; k-- {
				if !done[kids[k]] {
					stack = append(stack, frame{kids[k], f.depth + 1, size, k == len(kids)-1})
				}
			}
		}
	}
	for i := range recs {
		if parent[i] < 0 && !done[i] {
			walk(i)
		}
	}
	// What is left hangs from a loop of parents: walk up from it to the
	// loop and cut the loop at its first record.
	seen := make([]int, n) // the walk (i+1) that passed a record
	for i := range recs {
		if done[i] {
			continue
		}
		j := i
		for seen[j] != i+1 && !done[j] {
			seen[j] = i + 1
			j = parent[j]
		}
		if done[j] {
			// Cannot happen (a walked chain takes its descendants), but
			// a record must never be lost.
			j = i
		} else {
			start := j
			for k := parent[j]; k != start; k = parent[k] {
				j = min(j, k)
			}
		}
		broken[j] = BrokenCycle
		walk(j)
	}
	return out
}
