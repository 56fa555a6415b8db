package bss3get

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
)

// restoreHint names the flags that turn an archived object into a
// restore request.
const restoreHint = "request a restore: --restore-tier Bulk (or Standard, Expedited) --restore-days 7, then run again once it is done"

// checkArchived reads the state of every S3 object before the first
// byte is written (a HEAD each): a chain of which one object is archived
// fails before it writes the streams before it, and every restore it
// needs is requested at once. See decideRestore.
func (g *getter) checkArchived(ctx context.Context, srcs []source) error {
	var objs []objstore.Object
	var at []source
	for _, src := range srcs {
		if _, ok := src.store.(objstore.Restorer); !ok {
			continue // file:// stores have no archive classes
		}
		o, err := src.store.Stat(ctx, src.key)
		if errors.Is(err, objstore.ErrNotExist) {
			continue // fetch says so, in its turn
		}
		if err != nil {
			return err
		}
		o.Key = src.store.Location().DirString() + src.key // for messages
		objs = append(objs, o)
		at = append(at, src)
		if !o.Meta.StoredPiece() {
			continue
		}
		// Every piece of a set may sit in an archive class, not only
		// the first. A set that is not whole is reported by fetch.
		set, err := objstore.ResolveSet(ctx, src.store, src.key, o)
		if err != nil {
			continue
		}
		k, err := objkey.ParseKey(src.key)
		if err != nil {
			continue
		}
		for i, p := range set.Pieces[1:] {
			pk := k.PieceKey(i + 2)
			p.Key = src.store.Location().DirString() + pk
			objs = append(objs, p)
			at = append(at, source{store: src.store, key: pk})
		}
	}
	d := decideRestore(objs, g.opts.RestoreTier, g.opts.RestoreDays, time.Now())
	if d.err == nil {
		return nil
	}
	for _, i := range d.request {
		r := at[i].store.(objstore.Restorer)
		if err := r.Restore(ctx, at[i].key, g.opts.RestoreTier, g.opts.RestoreDays); err != nil {
			return err
		}
		g.env.Log.Debug("restore requested", "key", at[i].store.Location().DirString()+at[i].key, "tier", g.opts.RestoreTier, "days", g.opts.RestoreDays)
	}
	return d.err
}

// requestRestores asks for the restore of objects a GET found archived
// (the HEAD did not show it).
func (g *getter) requestRestores(ctx context.Context, srcs []source, objs []objstore.Object, restoring int) error {
	for _, src := range srcs {
		r, ok := src.store.(objstore.Restorer)
		if !ok {
			return fmt.Errorf("%s%s: %w", src.store.Location().DirString(), src.key, objstore.ErrArchived)
		}
		if err := r.Restore(ctx, src.key, g.opts.RestoreTier, g.opts.RestoreDays); err != nil {
			return err
		}
	}
	return comeBack(objs, restoring, g.opts.RestoreTier, g.opts.RestoreDays, time.Now())
}

// restoreDecision is what the objects' states call for: nothing (err
// nil: every object reads now), or restore requests of the objects at
// request and the run's end, err.
type restoreDecision struct {
	request []int
	err     error
}

// decideRestore: with every object readable, go on. Otherwise no stream
// is written, and the run ends:
//   - without a tier, with an archived object: failure (status 1), and
//     a hint naming the flags;
//   - with a tier: a restore request for each archived object, then
//     status 75 (EX_TEMPFAIL) and when to come back;
//   - with restores in progress only: status 75 and when to come back,
//     flags or not (there is nothing to ask for).
func decideRestore(objs []objstore.Object, tier string, days int, now time.Time) restoreDecision {
	var archived []int
	restoring := 0
	for i, o := range objs {
		switch objstore.ArchiveStateOf(o) {
		case objstore.Archived:
			archived = append(archived, i)
		case objstore.Restoring:
			restoring++
		}
	}
	switch {
	case len(archived) == 0 && restoring == 0:
		return restoreDecision{}
	case len(archived) > 0 && tier == "":
		o := objs[archived[0]]
		more := ""
		if n := len(archived) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		return restoreDecision{err: hint.Wrap(fmt.Errorf("%s: %w: storage class %s%s", o.Key, objstore.ErrArchived, className(o), more), restoreHint)}
	}
	var req []objstore.Object
	for _, i := range archived {
		req = append(req, objs[i])
	}
	if len(req) == 0 {
		// Only restores in progress: the class still says when.
		for _, o := range objs {
			if objstore.ArchiveStateOf(o) == objstore.Restoring {
				req = append(req, objstore.Object{StorageClass: o.StorageClass})
			}
		}
		return restoreDecision{err: comeBack(req, 0, tier, days, now)}
	}
	return restoreDecision{request: archived, err: comeBack(req, restoring, tier, days, now)}
}

func className(o objstore.Object) string {
	if o.ArchiveStatus != "" {
		return o.StorageClass + " " + o.ArchiveStatus
	}
	return o.StorageClass
}

// comeBack is the end of a run that asked for restores (of requested,
// with restoring more already under way; none asked when tier is ""):
// status 75 and a line saying when the objects should be readable.
func comeBack(requested []objstore.Object, restoring int, tier string, days int, now time.Time) error {
	var wait time.Duration
	for _, o := range requested {
		t := tier
		if t == "" {
			t = "Standard" // unknown: S3's default tier
		}
		wait = max(wait, objstore.RestoreWait(o.StorageClass, t))
	}
	var what []string
	if tier != "" {
		what = append(what, fmt.Sprintf("restore requested of %d archived object(s) (tier %s, readable for %d days)", len(requested), tier, days))
		if restoring > 0 {
			what = append(what, fmt.Sprintf("%d more being restored", restoring))
		}
	} else {
		what = append(what, fmt.Sprintf("%d archived object(s) being restored", len(requested)))
	}
	back := now.Add(wait).UTC().Truncate(time.Minute).Format("2006-01-02 15:04 MST")
	return &cli.ExitError{Code: cli.ExitTempFail, Err: fmt.Errorf("%s; nothing written; run again in about %s (after %s)", strings.Join(what, ", "), fmtWait(wait), back)}
}

func fmtWait(d time.Duration) string {
	if d < time.Hour {
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return fmt.Sprintf("%d hours", int(d.Hours()))
}
