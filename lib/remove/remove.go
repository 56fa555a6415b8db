// Package remove is bsrm: it deletes snapshots (subvolumes or stored
// streams) named by plan delete steps on stdin, or named on the command
// line, and prints one JSON line per deletion. With --incomplete it
// discards the incomplete uploads of object stores instead (incomplete.go).
//
// bsrm deletes only inside the locations it is given: a step whose
// destination is not within one of them, or whose snapshot path climbs out
// with "..", is refused, and then nothing at all is deleted. Steps are
// checked before the first deletion; they run in the order given (bsplan
// orders children before parents) and the first failure stops the rest.
package remove

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Options are bsrm's flags.
type Options struct {
	// Locations: DIR/ allows steps within DIR (read from stdin);
	// DIR/NAME deletes that snapshot.
	Locations []string
	DryRun    bool
	// Incomplete, when set, is an age (ParseAge): instead of reading
	// steps, discard the incomplete uploads older than it in the
	// object-store directories of Locations.
	Incomplete string
	Remote     remote.Flags
	Objects    objstore.Options
	// Lock says whether to wait for the destinations' locks.
	Lock lock.Flags
}

// Result is one output line.
type Result struct {
	Op   string    `json:"op"`
	Dst  string    `json:"dst"`
	Path string    `json:"path"`
	Key  string    `json:"key,omitempty"`
	UUID uuid.UUID `json:"uuid"`
	// Status is "deleted", "absent" (already gone) or "dry-run".
	Status string `json:"status"`
}

// Run deletes.
func Run(ctx context.Context, env *cli.Env, o Options) (rerr error) {
	var dirs, named []location.Location
	for _, a := range o.Locations {
		l, err := location.Parse(a)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		if l.Snapshot == "" {
			dirs = append(dirs, l)
		} else {
			named = append(named, l)
		}
	}
	if o.Incomplete != "" {
		age, err := ParseAge(o.Incomplete)
		if err != nil {
			return cli.UsageError("--incomplete: %v", err)
		}
		if len(named) > 0 {
			return cli.UsageError("--incomplete takes store directories (s3://bucket/prefix/, file:///dir/), not %s", named[0])
		}
		return incomplete(ctx, env, dirs, age, o)
	}
	if len(dirs) > 0 && len(named) > 0 {
		return cli.UsageError("give either directories (DIR/, steps on stdin) or snapshots (DIR/NAME), not both")
	}
	r := &remover{env: env, opts: o, stores: make(map[string]objstore.Store), out: jsonl.NewWriter(env.Stdout)}
	var steps []checked
	var err error
	if len(named) > 0 {
		var ds []location.Location
		for _, l := range named {
			ds = append(ds, l.AsDir())
		}
		var unlock func(*error)
		if ctx, unlock, err = r.lock(ctx, ds); err != nil {
			return err
		}
		defer unlock(&rerr)
		steps, err = namedSteps(ctx, named, o)
	} else {
		if cli.IsTerminal(env.Stdin) {
			return hint.Wrap(cli.UsageError("no delete steps on stdin"), "pipe bsplan -d output in, or name snapshots as DIR/NAME")
		}
		steps, err = readSteps(env.Stdin, dirs, env)
		if err == nil {
			var ds []location.Location
			for _, s := range steps {
				ds = append(ds, stepDir(&s.Step))
			}
			var unlock func(*error)
			if ctx, unlock, err = r.lock(ctx, ds); err != nil {
				return err
			}
			defer unlock(&rerr)
			steps, err = r.spare(ctx, steps)
		}
	}
	if err != nil {
		return err
	}
	deleted := 0
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.delete(ctx, &steps[i].Step, steps[i].scope); err != nil {
			return err
		}
		deleted++
	}
	summary(env, o.DryRun, "deleted", "would delete", deleted, "snapshots")
	return nil
}

// summary tells, with -v or -n, how many things were done or, with -n,
// would be.
func summary(env *cli.Env, dryRun bool, did, would string, n int, what string) {
	if env.Verbose == 0 && !dryRun {
		return
	}
	verb := did
	if dryRun {
		verb = would
	}
	env.Log.Info(fmt.Sprintf("%s %d %s", verb, n, what))
}

// checked is a delete step and the allowed directory it is within.
type checked struct {
	plan.Step
	scope location.Location
}

// readSteps reads plan steps, keeps the delete steps and checks every one
// against the allowed directories before anything is deleted.
func readSteps(in io.Reader, dirs []location.Location, env *cli.Env) ([]checked, error) {
	jr := jsonl.NewReader(in, "stdin")
	var steps []checked
	for {
		var s plan.Step
		err := jr.Next(&s)
		if err == io.EOF {
			return steps, nil
		}
		if err != nil {
			return nil, err
		}
		switch s.Op {
		case plan.OpDelete:
		case plan.OpSend:
			env.Log.Debug("skipping send step", "line", jr.Line(), "path", s.Snapshot.Path)
			continue
		default:
			return nil, fmt.Errorf("stdin line %d: unknown op %q", jr.Line(), s.Op)
		}
		scope, err := check(&s, dirs)
		if err != nil {
			return nil, hint.Wrap(fmt.Errorf("stdin line %d: %w", jr.Line(), err), "nothing was deleted; bsrm deletes only within the directories on its command line")
		}
		steps = append(steps, checked{s, scope})
	}
}

// check refuses a step outside the allowed directories; it returns the
// directory the step is within.
func check(s *plan.Step, dirs []location.Location) (location.Location, error) {
	var none location.Location
	dst, err := location.Parse(s.Dst)
	if err != nil {
		return none, fmt.Errorf("step dst: %v", err)
	}
	if dst.Snapshot != "" {
		return none, fmt.Errorf("step dst %q is not a directory (no trailing slash)", s.Dst)
	}
	name := s.Snapshot.Path
	if dst.IsObjectStore() {
		name = s.Snapshot.Key
	}
	if err := checkRelative(name); err != nil {
		return none, fmt.Errorf("%s: %v", dst.DirString()+name, err)
	}
	for _, d := range dirs {
		if within(dst, d) {
			return d, nil
		}
	}
	return none, fmt.Errorf("refusing to delete %s: not within %s", dst.DirString()+name, listDirs(dirs))
}

// checkRelative accepts a clean relative path that stays below its
// directory.
func checkRelative(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.HasPrefix(p, "/"):
		return errors.New("absolute path")
	case strings.ContainsAny(p, "\x00\n"):
		return errors.New("control character in path")
	case path.Clean(p) != p:
		return errors.New("path is not clean")
	case p == ".." || strings.HasPrefix(p, "../") || p == ".":
		return errors.New("path escapes its directory")
	}
	return nil
}

// within reports whether the directory l is d or below it.
func within(l, d location.Location) bool {
	if l.Scheme != d.Scheme || l.Host != d.Host || l.Port != d.Port || l.User != d.User || l.Bucket != d.Bucket {
		return false
	}
	if d.Dir == "/" || d.Dir == "" || l.Dir == d.Dir {
		return true
	}
	return strings.HasPrefix(l.Dir, d.Dir+"/")
}

func listDirs(dirs []location.Location) string {
	var s []string
	for _, d := range dirs {
		s = append(s, d.DirString())
	}
	if len(s) == 0 {
		return "any location given"
	}
	return strings.Join(s, ", ")
}

// namedSteps lists each named snapshot's directory and plans deleting it:
// for an object store every stored stream of the snapshot, unless another
// snapshot's restore chain needs one.
func namedSteps(ctx context.Context, named []location.Location, o Options) ([]checked, error) {
	var steps []checked
	for _, l := range named {
		if err := checkRelative(l.Snapshot); err != nil {
			return nil, cli.UsageError("%s: %v", l, err)
		}
		dir := l.AsDir()
		recs, err := inventory.List(ctx, dir, inventory.Options{Remote: o.Remote, Objects: o.Objects})
		if err != nil {
			return nil, err
		}
		found := false
		s, spared := plan.DeleteSteps(dir, recs, func(r *snapshot.Snapshot) bool {
			if r.Path == l.Snapshot {
				found = true
				return true
			}
			return false
		})
		if !found {
			return nil, fmt.Errorf("%s: no such read-only snapshot", l)
		}
		if len(spared) > 0 {
			return nil, hint.Wrap(fmt.Errorf("%s: refusing to delete %s: other stored snapshots are diffs from it", l, spared[0].Key),
				"delete the snapshots that depend on it first, or plan with bsplan -d")
		}
		for _, x := range s {
			steps = append(steps, checked{x, dir})
		}
	}
	return steps, nil
}

type remover struct {
	env    *cli.Env
	opts   Options
	stores map[string]objstore.Store
	out    *jsonl.Writer
}

// delete carries out one checked step, within scope.
func (r *remover) delete(ctx context.Context, s *plan.Step, scope location.Location) error {
	dst, err := location.Parse(s.Dst)
	if err != nil {
		return err
	}
	res := Result{Op: plan.OpDelete, Dst: dst.DirString(), Path: s.Snapshot.Path, Key: s.Snapshot.Key, UUID: s.Snapshot.UUID}
	switch dst.Scheme {
	case location.Btrfs:
		res.Status, err = r.deleteSubvolume(dst, s, scope)
	case location.S3, location.File:
		res.Status, err = r.deleteObject(ctx, dst, s)
	case location.SSH:
		// The remote bsrm checks the snapshot and prints the result line.
		return remote.Remove(ctx, r.env, r.opts.Remote, []plan.Step{*s}, r.opts.DryRun, r.opts.Lock.Args()...)
	default:
		err = fmt.Errorf("%s: unknown scheme", dst)
	}
	if err != nil {
		return err
	}
	if res.Status == "deleted" {
		r.env.Log.Debug("deleted", "path", dst.DirString()+s.Snapshot.Path, "key", s.Snapshot.Key)
	}
	return r.out.Write(&res)
}

// deleteSubvolume deletes the read-only subvolume the step names, after
// checking that the path still holds that very snapshot.
func (r *remover) deleteSubvolume(dst location.Location, s *plan.Step, scope location.Location) (string, error) {
	p := path.Join(dst.Dir, s.Snapshot.Path)
	// A symbolic link below the allowed directory must not lead out of it.
	if real, err := filepath.EvalSymlinks(p); err == nil {
		top, err := filepath.EvalSymlinks(scope.Dir)
		if err != nil {
			return "", err
		}
		if real != top && !strings.HasPrefix(real, strings.TrimSuffix(top, "/")+"/") {
			return "", fmt.Errorf("%s: refusing to delete: it resolves to %s, outside %s", p, real, scope.DirString())
		}
	}
	info, err := btrfs.Info(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "absent", nil
	}
	if err != nil {
		return "", err
	}
	if !s.Snapshot.UUID.IsZero() && info.UUID != s.Snapshot.UUID {
		return "", fmt.Errorf("%s: holds subvolume %s, not %s the step names; not deleted", p, info.UUID, s.Snapshot.UUID)
	}
	if !info.ReadOnly {
		return "", fmt.Errorf("%s: refusing to delete a writable subvolume", p)
	}
	if r.opts.DryRun {
		return "dry-run", nil
	}
	if err := btrfs.Delete(p); err != nil {
		return "", err
	}
	return "deleted", nil
}

// deleteObject deletes the stored stream the step names.
func (r *remover) deleteObject(ctx context.Context, dst location.Location, s *plan.Step) (string, error) {
	key := dst.DirString()
	st := r.stores[key]
	if st == nil {
		var err error
		if st, err = objstore.Open(ctx, dst, r.opts.Objects); err != nil {
			return "", err
		}
		r.stores[key] = st
	}
	if _, err := st.Stat(ctx, s.Snapshot.Key); errors.Is(err, objstore.ErrNotExist) {
		return "absent", nil
	} else if err != nil {
		return "", err
	}
	if r.opts.DryRun {
		return "dry-run", nil
	}
	if err := st.Delete(ctx, s.Snapshot.Key); err != nil {
		return "", err
	}
	return "deleted", nil
}
