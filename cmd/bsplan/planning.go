// How bsplan works: it lists the source and the destination (or
// reads saved listings), plans with lib/plan and prints the steps as JSON
// Lines, with a one-line summary on stderr.

package bsplan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/plan/measure"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/schedule"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// Options are bsplan's flags.
type Options struct {
	Src, Dst         string
	SrcList, DstList string
	DryRun           bool
	Delete           bool
	Estimate         bool
	MaxChain         int
	Schedule         string
	TZ               string
	Now              string
	Prune            bool
	// AllowEmptySource lets -d plan deleting every snapshot at the
	// destination when the source has none.
	AllowEmptySource bool
	// NoResume plans every send whole, even of a stream the destination
	// holds in part.
	NoResume bool
	Remote   remote.Flags
	Objects  objstore.Options
	// Stats, when set, is told the longest chain the plan leaves.
	Stats *metrics.Stats
}

// Run plans and prints the steps.
func Run(ctx context.Context, env *cli.Env, o Options) error {
	src, err := location.Parse(o.Src)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	dst, err := location.Parse(o.Dst)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	// The destination is always a directory: DST/name means DST/name/.
	if dst.Snapshot != "" {
		dst.Dir, dst.Snapshot = dst.Path(), ""
	}
	if src.Scheme == dst.Scheme && src.Host == dst.Host && src.Bucket == dst.Bucket && src.Dir == dst.Dir {
		return cli.UsageError("source and destination are the same directory %s", dst.DirString())
	}
	if o.SrcList == "-" && o.DstList == "-" {
		return cli.UsageError("--src-list and --dst-list cannot both read stdin")
	}
	if o.MaxChain < 0 {
		return cli.UsageError("--max-chain %d: want 1 or more (0 = default)", o.MaxChain)
	}
	opts := plan.Options{Src: src, Dst: dst, MaxChain: o.MaxChain, Delete: o.Delete, Prune: o.Prune}
	if o.Prune && o.Schedule == "" {
		return cli.UsageError("--prune needs --schedule")
	}
	if o.Schedule != "" {
		zone, err := timeZone(o.TZ)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		policy, err := schedule.Parse(o.Schedule, zone)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		opts.Policy = &policy
	}
	if o.Now != "" {
		if opts.Now, err = time.Parse(time.RFC3339, o.Now); err != nil {
			return cli.UsageError("--now %q: want a time like 2025-12-31T23:00:00Z", o.Now)
		}
	}
	// One snapshot is planned among its siblings: they are its candidate
	// parents, and with -d what the source has.
	// The source is listed with its writable subvolumes, so that the
	// ones skipped are named.
	srcRecs, err := load(ctx, env, src.AsDir(), o.SrcList, true, o)
	if err != nil {
		return err
	}
	if srcRecs, err = sendable(env, src, dst, srcRecs); err != nil {
		return err
	}
	// A btrfs destination is listed with its writable subvolumes for the
	// partial receives that can be resumed (bsls --all's resume).
	dstRecs, err := load(ctx, env, dst, o.DstList, !dst.IsObjectStore() && !o.NoResume, o)
	switch {
	case errors.Is(err, fs.ErrNotExist) && dst.Scheme == location.Btrfs && o.DstList == "":
		return hint.Wrap(err, "create the destination directory first (mkdir -p "+dst.Dir+")")
	case errors.Is(err, objstore.ErrNoStore) && o.DstList == "":
		// Only a destination store may be missing: bss3put creates
		// it with the first object.
		dstRecs, err = nil, nil
	}
	if err != nil {
		return err
	}
	dstRecs, opts.Partials = partials(dstRecs, o.DstList == "" && !dst.IsObjectStore() && !o.NoResume, o.NoResume)
	if o.Delete && !o.AllowEmptySource && len(srcRecs) == 0 && len(dstRecs) > 0 {
		return hint.Wrap(fmt.Errorf("%s: no snapshots at the source: -d would delete all %d at %s", src.AsDir().DirString(), len(dstRecs), dst.DirString()),
			"check that the source is the right directory and its disk is mounted; --allow-empty-source deletes them anyway")
	}
	if src.Scheme == location.Btrfs && !o.Estimate {
		opts.Measure = &measure.Sender{Dir: src.Dir}
		if m := env.Meter(progress.RolePlan); m != nil {
			defer m.Close()
			opts.Progress = func(done, total int) {
				m.Expect(total, 0)
				m.At(done)
			}
		}
	}
	res, err := plan.Plan(ctx, srcRecs, dstRecs, opts)
	if err == nil && dst.IsObjectStore() && o.DstList == "" {
		var again bool
		if opts.Retained, again, err = retained(ctx, env, dst, res.Steps, o); err == nil && again {
			// Rare (a retention outlasting the schedule): plan again
			// without the objects no one may delete yet, which spares
			// their restore chains too.
			res, err = plan.Plan(ctx, srcRecs, dstRecs, opts)
		}
	}
	if err != nil {
		var noSnap *plan.NoSuchSnapshotError
		if o.SrcList != "" && errors.As(err, &noSnap) {
			return hint.Wrap(err, "the name is matched against the paths in --src-list")
		}
		return err
	}
	for _, p := range res.Unrestorable {
		env.Log.Warn(fmt.Sprintf("%s: cannot be restored: a parent stream of its objects is missing", src.AsDir().DirString()+p))
	}
	for _, st := range res.Steps {
		from := "in full"
		if st.Parent != nil {
			from = "from " + st.Parent.Path
		}
		switch st.Op {
		case plan.OpSend:
			env.Log.Debug("send "+st.Snapshot.Path+" "+from, "size", st.Size, "exact", st.Exact, "clones", len(st.Clones), "chain", st.Chain)
		case plan.OpDelete:
			env.Log.Debug("delete "+st.Snapshot.Path, "key", st.Snapshot.Key, "reason", st.Reason)
		}
	}
	if o.Stats != nil {
		o.Stats.MaxChain = int64(res.MaxChain)
	}
	if !o.DryRun {
		w := jsonl.NewWriter(env.Stdout)
		for i := range res.Steps {
			if err := w.Write(&res.Steps[i]); err != nil {
				return fmt.Errorf("writing steps: %w", err)
			}
		}
	}
	env.Log.Info(res.Summary())
	return nil
}

// load lists loc (with its writable subvolumes if all), or reads a saved
// listing (bsls JSON Lines; "-" is stdin).
func load(ctx context.Context, env *cli.Env, loc location.Location, file string, all bool, o Options) ([]snapshot.Snapshot, error) {
	if file == "" {
		return inventory.List(ctx, loc, inventory.Options{All: all, Remote: o.Remote, Objects: o.Objects, ListObjects: stores.ListStreams})
	}
	r, name := env.Stdin, "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, file
	}
	// Read it whole to size the slice once: records are large, and
	// growing a slice of 10,000 of them copies more than decoding them.
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	recs := make([]snapshot.Snapshot, 0, bytes.Count(data, []byte{'\n'})+1)
	jr := jsonl.NewReader(bytes.NewReader(data), name)
	for {
		recs = append(recs, snapshot.Snapshot{})
		err := jr.Next(&recs[len(recs)-1])
		if err == io.EOF {
			return recs[:len(recs)-1], nil
		}
		if err != nil {
			return nil, err
		}
		if recs[len(recs)-1].Path == "" {
			return nil, fmt.Errorf("%s line %d: record without a path", name, jr.Line())
		}
	}
}

// timeZone is --tz, else $TZ, else the system's zone (named after
// /etc/localtime's target, so the summary can say which).
func timeZone(name string) (*time.Location, error) {
	if name == "" {
		name = strings.TrimPrefix(os.Getenv("TZ"), ":")
	}
	if name == "" {
		if t, err := filepath.EvalSymlinks("/etc/localtime"); err == nil {
			if _, after, ok := strings.Cut(t, "zoneinfo/"); ok {
				name = after
			}
		}
	}
	if name == "" {
		return time.Local, nil
	}
	z, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %v", name, err)
	}
	return z, nil
}

// partials splits a destination listing into the snapshots to plan with
// and the partial receives that can be resumed (none with noResume).
// listedAll: the listing was made with writable subvolumes for that, which
// are dropped as a listing without them would not have had them; a saved
// listing keeps what it holds.
func partials(recs []snapshot.Snapshot, listedAll, noResume bool) (rest, partial []snapshot.Snapshot) {
	rest = recs[:0:0]
	for _, r := range recs {
		switch {
		case r.Filter != nil:
			// Part of a snapshot (a selective restore): no copy of one.
		case r.IsObject() || r.ReadOnly:
			rest = append(rest, r)
		case r.Resume != nil && !noResume:
			partial = append(partial, r)
		case !listedAll:
			rest = append(rest, r)
		}
	}
	return rest, partial
}

// sendable drops the source records that cannot be sent to dst, each
// named in a warning: writable subvolumes (a send needs a read-only
// snapshot; one that is no snapshot at all is named at info level), and, for an object-store destination, snapshots whose path
// is too long for a key once escaped. The snapshot src names is an error
// instead: the plan would have nothing to do.
func sendable(env *cli.Env, src, dst location.Location, recs []snapshot.Snapshot) ([]snapshot.Snapshot, error) {
	prefixLen := 0
	if dst.Scheme == location.S3 && dst.Dir != "" {
		prefixLen = len(dst.Dir) + 1
	}
	out := recs[:0]
	for _, r := range recs {
		where := show(src.AsDir().DirString() + r.Path)
		why, hnt := "", ""
		switch {
		case !r.IsObject() && !r.ReadOnly && r.Partial:
			why = "a writable subvolume that looks like an interrupted receive"
		case !r.IsObject() && !r.ReadOnly:
			why = "a writable subvolume, not a read-only snapshot"
			hnt = "snapshot it read-only and send the snapshot: btrfs subvolume snapshot -r " + where + " DIR/NAME"
		case dst.IsObjectStore():
			if err := objkey.Storable(r.Path, prefixLen); err != nil {
				why = "cannot be stored at " + dst.DirString() + ": " + err.Error()
				if ne, ok := err.(*names.Error); ok {
					why = "cannot be stored at " + dst.DirString() + ": " + ne.Reason
				}
			}
		}
		if why == "" {
			out = append(out, r)
			continue
		}
		if r.Path == src.Snapshot {
			return nil, hint.Wrap(fmt.Errorf("%s: %s", where, why), hnt)
		}
		if hnt != "" {
			why += " (" + hnt + ")"
		}
		msg := fmt.Sprintf("%s: skipped: %s", where, why)
		if !r.IsObject() && !r.ReadOnly && !r.Partial && r.ParentUUID.IsZero() {
			// A subvolume that is no snapshot at all: live data (/home,
			// a pool's @root) that sits in many source directories.
			// Named, but -q quiets it; a writable snapshot is more
			// likely a mistake and warns.
			env.Log.Info(msg)
			continue
		}
		env.Log.Warn(msg)
	}
	return out, nil
}

// show is a path for a message: as it is when it is printable UTF-8,
// else quoted with Go escapes ("b\xff\xfe").
func show(p string) string {
	if utf8.ValidString(p) && !strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return p
	}
	return strconv.Quote(p)
}

// retained returns the keys of the objects steps would delete that are
// under retention (S3 Object Lock), and whether there are any. Only
// those objects are read (a HEAD each): a listing does not show
// retention.
func retained(ctx context.Context, env *cli.Env, dst location.Location, steps []plan.Step, o Options) (map[string]bool, bool, error) {
	var keys []string
	for _, st := range steps {
		if st.Op == plan.OpDelete {
			keys = append(keys, st.Snapshot.Key)
		}
	}
	if len(keys) == 0 {
		return nil, false, nil
	}
	store, err := stores.Open(ctx, dst, o.Objects)
	if err != nil {
		return nil, false, err
	}
	until, err := objstore.RetainedKeys(ctx, store, keys, time.Now())
	if err != nil {
		return nil, false, err
	}
	set := map[string]bool{}
	for k, t := range until {
		set[k] = true
		env.Log.Info(fmt.Sprintf("%s%s: kept, under retention until %s", dst.DirString(), k, t.UTC().Format(time.RFC3339)))
	}
	return set, len(set) > 0, nil
}
