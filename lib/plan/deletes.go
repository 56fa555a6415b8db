package plan

import (
	"sort"
	"strings"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// Reasons of delete steps.
const (
	ReasonNotInSource = "not in source"
	ReasonPruned      = "pruned"
)

// planDeletes adds delete steps for destination records the source does
// not have (Delete) or the schedule no longer keeps (Prune), except:
//   - records without a UUID (bsrm could not check them);
//   - records this plan's sends use as parent or clone source;
//   - (prune) the newest snapshot;
//   - (object stores) objects under retention (Options.Retained);
//   - (object stores) any object on the restore chain of an object that
//     stays: a kept snapshot must stay restorable.
//
// Objects are deleted children first, so that an interrupted bsrm never
// leaves an object whose parent is gone; subvolumes deepest path first,
// so that nested ones go before the one holding them.
func (pl *planner) planDeletes(res *Result) {
	if !pl.opts.Delete && !pl.opts.Prune {
		return
	}
	recs := pl.dst.recs
	reason := make(map[int]string)
	var srcIdx *recordIndex
	if pl.opts.Delete {
		srcIdx = pl.srcIdx
	}
	for i := range recs {
		r := &recs[i]
		if r.Partial {
			continue // a leftover of a failed receive is bsrecv's to clean
		}
		if r.EffectiveUUID().IsZero() {
			continue // without an identity bsrm could not check it is the one meant
		}
		if pl.dstObjects && pl.opts.Retained[r.Key] {
			continue // no one may delete it yet: it, and so its chain, stays
		}
		if pl.opts.Delete && srcIdx.find(r) < 0 {
			reason[i] = ReasonNotInSource
		} else if pl.opts.Prune && pl.prunable[i] {
			reason[i] = ReasonPruned
		}
	}
	for i := range pl.usedAtDst {
		delete(reason, i)
	}
	pl.steps = append(pl.steps, pl.deleteSteps(reason)...)
}

// Reason of delete steps DeleteSteps makes.
const ReasonNamed = "named"

// DeleteSteps plans deleting the records of recs (the listing of the
// directory dir) that doomed selects, children first, sparing any object
// on the restore chain of an object that stays. It returns the steps and
// the records it spared.
func DeleteSteps(dir location.Location, recs []snapshot.Snapshot, doomed func(*snapshot.Snapshot) bool) ([]Step, []snapshot.Snapshot) {
	objects := dir.IsObjectStore()
	pl := &planner{opts: Options{Dst: dir.AsDir()}, dstObjects: objects, dst: newRecordIndex(recs, objects)}
	reason := make(map[int]string)
	for i := range recs {
		if doomed(&recs[i]) {
			reason[i] = ReasonNamed
		}
	}
	wanted := len(reason)
	steps := pl.deleteSteps(reason)
	var spared []snapshot.Snapshot
	if len(steps) < wanted {
		going := make(map[int]bool)
		for i := range reason {
			going[i] = true
		}
		for i := range recs {
			if doomed(&recs[i]) && !going[i] {
				spared = append(spared, recs[i])
			}
		}
	}
	return steps, spared
}

// deleteSteps turns the records in reason into delete steps, after
// sparing the chains of objects that stay (removing them from reason).
func (pl *planner) deleteSteps(reason map[int]string) []Step {
	recs := pl.dst.recs
	if pl.dstObjects {
		kept := make([]bool, len(recs))
		for i := range recs {
			if _, gone := reason[i]; gone || pl.dst.chain[i] == noChain {
				continue
			}
			for j := i; j >= 0 && !kept[j]; j = pl.dst.via[j] {
				kept[j] = true
				delete(reason, j)
			}
		}
	}
	var del []int
	for i := range reason {
		del = append(del, i)
	}
	sort.Slice(del, func(a, b int) bool {
		i, j := del[a], del[b]
		if pl.dstObjects {
			if pl.dst.chain[i] != pl.dst.chain[j] {
				return pl.dst.chain[i] > pl.dst.chain[j]
			}
			return recs[i].Key < recs[j].Key
		}
		di, dj := strings.Count(recs[i].Path, "/"), strings.Count(recs[j].Path, "/")
		if di != dj {
			return di > dj
		}
		return recs[i].Path < recs[j].Path
	})
	steps := make([]Step, 0, len(del))
	for _, i := range del {
		r := &recs[i]
		step := Step{Op: OpDelete, Dst: pl.opts.Dst.DirString(), Snapshot: *r, Clones: []snapshot.Snapshot{}, Reason: reason[i]}
		if r.IsObject() {
			step.Size, step.Exact = objectBytes(r), r.Size != nil
		} else if r.Exclusive != nil {
			step.Size = int64(*r.Exclusive)
		}
		steps = append(steps, step)
	}
	return steps
}
