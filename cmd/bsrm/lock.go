package bsrm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// stepDir is the destination directory a delete step names (checked
// already by check).
func stepDir(s *plan.Step) location.Location {
	l, _ := location.Parse(s.Dst)
	return l.AsDir()
}

// lock takes the writers' lock of each destination directory in ds (see
// lib/lock), in one order so that two bsrm never wait for each other. A
// dry run takes none; ssh:// directories are locked by the remote bsrm.
// It returns the context to delete with and the function that releases
// the locks, replacing *err with the loss of a lock.
func (r *remover) lock(ctx context.Context, ds []location.Location) (context.Context, func(*error), error) {
	seen := map[string]bool{}
	var uniq []location.Location
	for _, d := range ds {
		if k := d.DirString(); !seen[k] && !d.IsRemote() {
			seen[k] = true
			uniq = append(uniq, d)
		}
	}
	if r.opts.DryRun {
		uniq = nil
	}
	sort.Slice(uniq, func(i, j int) bool { return uniq[i].DirString() < uniq[j].DirString() })
	var held []*lock.Lock
	unlock := func(err *error) {
		for i := len(held) - 1; i >= 0; i-- {
			if lost := held[i].Lost(); lost != nil {
				*err = lost
			}
			if rerr := held[i].Release(); rerr != nil && *err == nil {
				*err = rerr
			}
		}
	}
	opts := r.opts.Lock.Options(r.env.Name, r.env.Log)
	for _, d := range uniq {
		l, err := r.lockDir(ctx, d, opts)
		if err != nil {
			unlock(&err)
			return ctx, nil, err
		}
		held = append(held, l)
		ctx = l.Context()
	}
	return ctx, unlock, nil
}

func (r *remover) lockDir(ctx context.Context, d location.Location, opts lock.Options) (*lock.Lock, error) {
	if d.IsObjectStore() {
		st, err := r.store(ctx, d)
		if err != nil {
			return nil, err
		}
		return objstore.Lock(ctx, st, opts, false)
	}
	if _, err := os.Stat(d.Dir); errors.Is(err, fs.ErrNotExist) {
		// Nothing there to delete, nor to protect.
		return lock.None(ctx), nil
	}
	return lock.Dir(ctx, d.Dir, d.DirString(), opts)
}

// spare drops, from the delete steps of object stores, every stored
// stream that a stream staying in the store is a diff from (one under
// retention stays): the plan may
// be older than an upload that finished while bsrm waited for the lock.
// It lists each store again, under the lock.
func (r *remover) spare(ctx context.Context, steps []checked) ([]checked, error) {
	byDir := map[string][]int{}
	var order []string
	for i := range steps {
		d := stepDir(&steps[i].Step)
		if !d.IsObjectStore() {
			continue
		}
		k := d.DirString()
		if _, ok := byDir[k]; !ok {
			order = append(order, k)
		}
		byDir[k] = append(byDir[k], i)
	}
	drop := map[int]bool{}
	for _, k := range order {
		idx := byDir[k]
		d := stepDir(&steps[idx[0]].Step)
		recs, err := inventory.List(ctx, d, inventory.Options{Remote: r.opts.Remote, Objects: r.opts.Objects})
		if err != nil {
			return nil, err
		}
		doomed := map[string]int{}
		var rels []string
		for _, i := range idx {
			doomed[steps[i].Snapshot.Key] = i
			rels = append(rels, steps[i].rel)
		}
		// An object under retention stays (deleteObject reports it
		// kept), and so must its restore chain.
		st, err := r.store(ctx, steps[idx[0]].scope)
		if err != nil {
			return nil, err
		}
		until, err := objstore.RetainedKeys(ctx, st, rels, time.Now())
		if err != nil {
			return nil, err
		}
		retained := map[string]bool{}
		for _, i := range idx {
			if _, ok := until[steps[i].rel]; ok {
				retained[steps[i].Snapshot.Key] = true
			}
		}
		_, spared := plan.DeleteSteps(d, recs, func(s *snapshot.Snapshot) bool {
			_, ok := doomed[s.Key]
			return ok && !retained[s.Key]
		})
		for _, s := range spared {
			i := doomed[s.Key]
			drop[i] = true
			r.env.Log.Warn(fmt.Sprintf("%s: kept: a stream that stays (stored since the plan was made, or under retention) is a diff from it", d.DirString()+s.Key))
		}
	}
	if len(drop) == 0 {
		return steps, nil
	}
	var out []checked
	for i, s := range steps {
		if !drop[i] {
			out = append(out, s)
		}
	}
	return out, nil
}
