// How bsplan works: it lists the source and the destination (or
// reads saved listings), plans with lib/plan and prints the steps as JSON
// Lines, with a one-line summary on stderr.

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/plan/measure"
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
	Remote           remote.Flags
	Objects          objstore.Options
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
	srcRecs, err := load(ctx, env, src.AsDir(), o.SrcList, o)
	if err != nil {
		return err
	}
	dstRecs, err := load(ctx, env, dst, o.DstList, o)
	if errors.Is(err, fs.ErrNotExist) && dst.Scheme == location.Btrfs && o.DstList == "" {
		return hint.Wrap(err, "create the destination directory first (mkdir -p "+dst.Dir+")")
	}
	if err != nil {
		return err
	}
	if src.Scheme == location.Btrfs && !o.Estimate {
		opts.Measure = &measure.Sender{Dir: src.Dir}
		if env.ShowProgress() {
			var last time.Time
			opts.Progress = func(done, total int) {
				if now := time.Now(); now.Sub(last) > 200*time.Millisecond || done == total {
					last = now
					fmt.Fprintf(env.Stderr, "\r%s: measuring %d/%d snapshots\x1b[K", env.Name, done, total)
				}
			}
		}
	}
	res, err := plan.Plan(ctx, srcRecs, dstRecs, opts)
	if opts.Progress != nil {
		fmt.Fprint(env.Stderr, "\r\x1b[K") // blank the line before any message
	}
	if err != nil {
		if o.SrcList != "" && strings.Contains(err.Error(), "no such snapshot") {
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

// load lists loc, or reads a saved listing (bsls JSON Lines; "-" is stdin).
func load(ctx context.Context, env *cli.Env, loc location.Location, file string, o Options) ([]snapshot.Snapshot, error) {
	if file == "" {
		return inventory.List(ctx, loc, inventory.Options{Remote: o.Remote, Objects: o.Objects})
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
