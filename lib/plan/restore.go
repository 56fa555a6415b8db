package plan

import (
	"math"
	"sort"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// planRestore plans receiving objects (s3 or file source) into subvolumes.
// An object's parent is fixed by its stream, so the choice is which object
// of each snapshot to fetch: the one whose chain down to something the
// destination has (or a full stream) reads the fewest bytes. Ancestors the
// chain needs are restored too, even when not selected. It returns the
// paths of selected snapshots no chain can restore.
func (pl *planner) planRestore() ([]string, error) {
	objects := make(map[uuid.UUID][]*node)
	for _, n := range pl.src {
		if n.snap.IsObject() && !n.snap.UUID.IsZero() {
			objects[n.snap.UUID] = append(objects[n.snap.UUID], n)
		}
	}
	// atDst finds the destination subvolume with effective UUID u.
	atDst := func(u uuid.UUID) int { return pl.dst.find(&snapshot.Snapshot{UUID: u}) }

	const (
		unseen = iota
		active
		done
	)
	type choice struct {
		state byte
		bytes int64 // total bytes to fetch; math.MaxInt64 when impossible
		obj   *node
		depth int
	}
	memo := make(map[uuid.UUID]*choice)
	var solve func(u uuid.UUID) *choice
	solve = func(u uuid.UUID) *choice {
		c := memo[u]
		if c == nil {
			c = &choice{}
			memo[u] = c
		}
		if c.state != unseen {
			return c // done, or a cycle: active holds bytes = MaxInt64
		}
		c.state, c.bytes = active, math.MaxInt64
		for _, o := range objects[u] {
			total, depth := objectBytes(o.snap), 0
			if p := o.snap.SendParentUUID; !p.IsZero() && atDst(p) < 0 {
				pc := solve(p)
				if pc.bytes == math.MaxInt64 {
					continue
				}
				total, depth = total+pc.bytes, pc.depth+1
			}
			if c.obj == nil || total < c.bytes || total == c.bytes && o.snap.Key < c.obj.snap.Key {
				c.bytes, c.obj, c.depth = total, o, depth
			}
		}
		if c.obj == nil {
			c.bytes = math.MaxInt64
		}
		c.state = done
		return c
	}

	var unrestorable []string
	picked := make(map[uuid.UUID]*choice)
	for _, n := range pl.src {
		u := n.snap.UUID
		if !n.selected || !n.snap.IsObject() || u.IsZero() || n.present || atDst(u) >= 0 || picked[u] != nil {
			continue
		}
		c := solve(u)
		if c.obj == nil {
			unrestorable = append(unrestorable, n.snap.Path)
			continue
		}
		for c != nil && picked[c.obj.snap.UUID] == nil {
			picked[c.obj.snap.UUID] = c
			p := c.obj.snap.SendParentUUID
			if p.IsZero() || atDst(p) >= 0 {
				break
			}
			c = memo[p]
		}
	}
	order := make([]*choice, 0, len(picked))
	for _, c := range picked {
		order = append(order, c)
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].depth != order[j].depth {
			return order[i].depth < order[j].depth
		}
		return nodeLess(order[i].obj, order[j].obj)
	})
	for _, c := range order {
		o := c.obj
		step := Step{Op: OpSend, Src: pl.opts.Src.DirString(), Dst: pl.opts.Dst.DirString(),
			Snapshot: *o.snap, Clones: []snapshot.Snapshot{}, Size: objectBytes(o.snap), Exact: o.snap.Size != nil}
		if p := o.snap.SendParentUUID; !p.IsZero() {
			// The parent as it exists at the destination, so that the
			// receiver can check it; or, restored earlier in this plan,
			// the object it is restored from. Either way its effective
			// UUID is the stream's parent UUID.
			if d := atDst(p); d >= 0 {
				step.Parent = &pl.dst.recs[d]
				pl.usedAtDst[d] = true
			} else {
				step.Parent = picked[p].obj.snap
			}
		}
		pl.steps = append(pl.steps, step)
	}
	return unrestorable, nil
}
