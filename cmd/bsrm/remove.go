// How bsrm works: it deletes snapshots (subvolumes or stored
// streams) named by plan delete steps on stdin, or named on the command
// line, and prints one JSON line per deletion. With --incomplete it
// discards the incomplete uploads of object stores instead (incomplete.go).
//
// bsrm deletes only inside the locations it is given: a step whose
// destination is not within one of them, or whose snapshot path climbs out
// with "..", is refused, and then nothing at all is deleted. Steps are
// checked before the first deletion; they run in the order given (bsplan
// orders children before parents) and the first failure stops the rest.

package bsrm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
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
	// Stats, when set, counts the snapshots deleted.
	Stats *metrics.Stats
}

// Result is one output line.
type Result struct {
	Op   string    `json:"op"`
	Dst  string    `json:"dst"`
	Path string    `json:"path"`
	Key  string    `json:"key,omitempty"`
	UUID uuid.UUID `json:"uuid"`
	// Status is "deleted", "absent" (already gone), "dry-run" or "kept"
	// (an object under S3 Object Lock retention, which no one may delete
	// before RetainUntil).
	Status      string     `json:"status"`
	RetainUntil *time.Time `json:"retain_until,omitempty"`
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
	// Deleting a subvolume needs CAP_SYS_ADMIN: say so before taking
	// locks or reading steps.
	for _, l := range append(append([]location.Location(nil), dirs...), named...) {
		if l.Scheme == location.Btrfs && !o.DryRun {
			if err := btrfs.RequireAdmin(env.Name); err != nil {
				return err
			}
			break
		}
	}
	r := &remover{env: env, opts: o, stores: make(map[string]objstore.Store), out: jsonl.NewWriter(env.Stdout)}
	defer r.close()
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
	// Every step's target is looked at before the first deletion: one
	// that is not what the step says stops the run with nothing deleted.
	if err := r.verify(ctx, steps); err != nil {
		return hint.Wrap(err, "nothing was deleted")
	}
	deleted := 0
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.delete(ctx, &steps[i]); err != nil {
			return err
		}
		deleted++
	}
	summary(env, o.DryRun, "deleted", "would delete", deleted-r.kept, "snapshots")
	if r.kept > 0 {
		// Not a failure: the retention is what the user asked for.
		env.Log.Info(fmt.Sprintf("kept %d object(s) under retention", r.kept))
	}
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

// checked is a delete step, the allowed directory it is within and where
// it came from.
type checked struct {
	plan.Step
	scope location.Location
	// rel is the snapshot's path (an object's key) relative to scope.Dir.
	rel string
	// what names the step in messages: "stdin line N" or the location.
	what string
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
			return nil, hint.Wrap(err, "nothing was deleted")
		}
		switch s.Op {
		case plan.OpDelete:
		case plan.OpSend:
			env.Log.Debug("skipping send step", "line", jr.Line(), "path", s.Snapshot.Path)
			continue
		default:
			return nil, hint.Wrap(fmt.Errorf("stdin line %d: unknown op %q", jr.Line(), s.Op), "nothing was deleted")
		}
		scope, rel, err := check(&s, dirs)
		if err != nil {
			return nil, hint.Wrap(fmt.Errorf("stdin line %d: %w", jr.Line(), err), "nothing was deleted; bsrm deletes only within the directories on its command line")
		}
		steps = append(steps, checked{s, scope, rel, fmt.Sprintf("stdin line %d", jr.Line())})
	}
}

// check refuses a step that is malformed or outside the allowed
// directories: it needs a UUID, a clean relative path (names.Snapshot) or,
// in an object store, a stored stream's key (objkey.ParseKey) of that
// UUID and path. It returns the directory the step is within and the
// step's path (key) relative to it. It reads nothing: verify looks at the
// targets.
func check(s *plan.Step, dirs []location.Location) (location.Location, string, error) {
	var none location.Location
	dst, err := location.Parse(s.Dst)
	if err != nil {
		return none, "", fmt.Errorf("step dst: %v", err)
	}
	if dst.Snapshot != "" {
		return none, "", fmt.Errorf("step dst %q is not a directory (no trailing slash)", s.Dst)
	}
	switch dst.Scheme {
	case location.Btrfs, location.SSH, location.S3, location.File, location.Dir:
	default:
		return none, "", fmt.Errorf("step dst %q: unknown scheme", s.Dst)
	}
	name := s.Snapshot.Path
	if dst.IsObjectStore() {
		name = s.Snapshot.Key
	}
	where := dst.DirString() + name
	check := names.Snapshot
	if dst.IsObjectStore() {
		check = func(k string) error { return names.Key(k, len(dst.Dir)+1) }
	}
	if err := check(name); err != nil {
		return none, "", fmt.Errorf("%s: %v", where, err)
	}
	var scope location.Location
	found := false
	for _, d := range dirs {
		if within(dst, d) {
			scope, found = d, true
			break
		}
	}
	if !found {
		return none, "", fmt.Errorf("refusing to delete %s: not within %s", where, listDirs(dirs))
	}
	if s.Snapshot.UUID.IsZero() {
		return none, "", fmt.Errorf("%s: step has no uuid", where)
	}
	if dst.IsObjectStore() {
		k, err := objkey.ParseKey(name)
		if err != nil {
			return none, "", fmt.Errorf("%s: not a stored stream: %v", where, err)
		}
		if k.UUID != s.Snapshot.UUID || k.Path != s.Snapshot.Path {
			return none, "", fmt.Errorf("%s: key is of %s %s, the step names %s %s", where, k.Path, k.UUID, s.Snapshot.Path, s.Snapshot.UUID)
		}
	}
	return scope, path.Join(relDir(dst, scope), name), nil
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

// relDir is the directory l relative to d, which it is within ("" for d).
func relDir(l, d location.Location) string {
	if l.Dir == d.Dir {
		return ""
	}
	return strings.TrimPrefix(strings.TrimPrefix(l.Dir, d.Dir), "/")
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
		if err := names.Snapshot(l.Snapshot); err != nil {
			return nil, cli.UsageError("%s: %v", l, err)
		}
		dir := l.AsDir()
		recs, err := inventory.List(ctx, dir, inventory.Options{Remote: o.Remote, Objects: o.Objects, ListObjects: stores.ListStreams})
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
			scope, rel, err := check(&x, []location.Location{dir})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l, err)
			}
			steps = append(steps, checked{x, scope, rel, l.String()})
		}
	}
	return steps, nil
}

type remover struct {
	env    *cli.Env
	opts   Options
	stores map[string]objstore.Store
	out    *jsonl.Writer
	// kept counts the objects kept under retention.
	kept int
	// scopes holds the open allowed btrfs directories.
	scopes map[string]int
}

// countDeleted counts a deletion for the run's metrics. Over ssh the remote
// bsrm's answer is not read back: a step it carried out counts.
func (r *remover) countDeleted(did bool) {
	if did && r.opts.Stats != nil {
		r.opts.Stats.SnapshotsDeleted++
	}
}

func (r *remover) close() {
	for _, fd := range r.scopes {
		unix.Close(fd)
	}
}

// verify looks at every step's target before anything is deleted: a
// subvolume must be reached from the allowed directory without a symbolic
// link, be read-only and have the step's UUID; an object must be reached
// the same way (file://) and be a regular file; the remote bsrm checks
// the ssh:// steps in a dry run. A target that is already gone passes.
func (r *remover) verify(ctx context.Context, steps []checked) error {
	var remoteSteps []checked
	for i := range steps {
		c := &steps[i]
		var err error
		switch c.scope.Scheme {
		case location.Btrfs:
			var fd int
			var parent []int
			parent, fd, _, err = r.openSubvolume(c)
			if err == nil && fd >= 0 {
				unix.Close(fd)
			}
			closeAll(parent)
		case location.S3, location.File:
			_, _, err = r.statObject(ctx, c)
		case location.SSH:
			remoteSteps = append(remoteSteps, *c)
		case location.Dir:
			_, err = r.snapshotDir(c, false)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.what, err)
		}
	}
	if len(remoteSteps) > 0 {
		return r.verifyRemote(ctx, remoteSteps)
	}
	return nil
}

// verifyRemote runs the remote bsrm with --dry-run on the ssh:// steps,
// which makes it check each snapshot there, and compares the UUIDs it
// reports with the steps'.
func (r *remover) verifyRemote(ctx context.Context, steps []checked) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, pr); pr.Close(); close(copied) }()
	env := *r.env
	env.Stdout = pw
	plain := make([]plan.Step, len(steps))
	for i := range steps {
		plain[i] = steps[i].Step
	}
	err = remote.Remove(ctx, remote.Stdio{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose}, r.opts.Remote, plain, true)
	pw.Close()
	<-copied
	if err != nil {
		return err
	}
	jr := jsonl.NewReader(&out, "remote bsrm output")
	got := map[string]uuid.UUID{}
	for {
		var res Result
		err := jr.Next(&res)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if res.Status != "absent" {
			got[res.Dst+res.Path] = res.UUID
		}
	}
	for _, c := range steps {
		dst, _ := location.Parse(c.Dst)
		u, ok := got[dst.DirString()+c.Snapshot.Path]
		if ok && u != c.Snapshot.UUID {
			return fmt.Errorf("%s: %s%s holds subvolume %s, not %s the step names; not deleted", c.what, dst.DirString(), c.Snapshot.Path, u, c.Snapshot.UUID)
		}
	}
	return nil
}

// delete carries out one checked step.
func (r *remover) delete(ctx context.Context, c *checked) error {
	s := &c.Step
	dst, err := location.Parse(s.Dst)
	if err != nil {
		return err
	}
	res := Result{Op: plan.OpDelete, Dst: dst.DirString(), Path: s.Snapshot.Path, Key: s.Snapshot.Key, UUID: s.Snapshot.UUID}
	switch dst.Scheme {
	case location.Btrfs:
		res.Status, err = r.deleteSubvolume(c)
	case location.S3, location.File:
		res.Status, res.RetainUntil, err = r.deleteObject(ctx, c)
	case location.Dir:
		res.Status, err = r.snapshotDir(c, !r.opts.DryRun)
	case location.SSH:
		// The remote bsrm checks the snapshot and prints the result line.
		r.countDeleted(!r.opts.DryRun)
		return remote.Remove(ctx, remote.Stdio{Stdin: r.env.Stdin, Stdout: r.env.Stdout, Stderr: r.env.Stderr, Log: r.env.Log, Quiet: r.env.Quiet, Verbose: r.env.Verbose}, r.opts.Remote, []plan.Step{*s}, r.opts.DryRun, r.opts.Lock.Args()...)
	default:
		err = fmt.Errorf("%s: unknown scheme", dst)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.what, err)
	}
	switch res.Status {
	case "deleted":
		r.countDeleted(true)
		r.env.Log.Debug("deleted", "path", dst.DirString()+s.Snapshot.Path, "key", s.Snapshot.Key)
	case "kept":
		r.kept++
		r.env.Log.Info(fmt.Sprintf("%s%s: kept, under retention until %s", dst.DirString(), s.Snapshot.Key, res.RetainUntil.Format(time.RFC3339)))
	}
	return r.out.Write(&res)
}

// openSubvolume walks from the allowed directory to the step's snapshot
// one component at a time, following no symbolic link, and checks that it
// holds the read-only subvolume of the step's UUID. It returns the open
// directories down to the snapshot's parent (the caller closes them) and
// the snapshot, or fd -1 when it is gone.
func (r *remover) openSubvolume(c *checked) (parents []int, fd int, sv btrfs.Subvol, err error) {
	full := path.Join(c.scope.Dir, c.rel)
	top, err := r.scope(c.scope.Dir)
	if err != nil {
		return nil, -1, sv, err
	}
	parents = []int{-1}
	parents[0], err = unix.Dup(top)
	if err != nil {
		return nil, -1, sv, err
	}
	comps := strings.Split(c.rel, "/")
	for i, comp := range comps[:len(comps)-1] {
		d, err := unix.Openat(parents[len(parents)-1], comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return parents, -1, sv, nil
			}
			return parents, -1, sv, notFollowed(parents[len(parents)-1], path.Join(c.scope.Dir, path.Join(comps[:i+1]...)), comp, err)
		}
		parents = append(parents, d)
	}
	last := comps[len(comps)-1]
	fd, sv, err = btrfs.OpenSubvolumeAt(parents[len(parents)-1], last)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return parents, -1, sv, nil
	case err != nil:
		if errors.Is(err, btrfs.ErrNotSubvolume) || errors.Is(err, btrfs.ErrNotBtrfs) {
			return parents, -1, sv, fmt.Errorf("%s: %w; not deleted", full, err)
		}
		return parents, -1, sv, notFollowed(parents[len(parents)-1], full, last, err)
	case sv.UUID != c.Snapshot.UUID:
		err = fmt.Errorf("%s: holds subvolume %s, not %s the step names; not deleted", full, sv.UUID, c.Snapshot.UUID)
	case !sv.ReadOnly:
		err = fmt.Errorf("%s: refusing to delete a writable subvolume", full)
	}
	if err != nil {
		unix.Close(fd)
		return parents, -1, sv, err
	}
	return parents, fd, sv, nil
}

// notFollowed explains a failed open of name in dirfd: a symbolic link
// (not followed), or the error itself.
func notFollowed(dirfd int, full, name string, err error) error {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s: is a symbolic link; bsrm does not follow links below its directory", full)
	}
	if errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s: not a directory", full)
	}
	return fmt.Errorf("%s: %w", full, err)
}

// scope returns the open allowed directory dir (named on the command line,
// so symbolic links in it are followed).
func (r *remover) scope(dir string) (int, error) {
	if r.scopes == nil {
		r.scopes = map[string]int{}
	}
	if fd, ok := r.scopes[dir]; ok {
		return fd, nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", dir, err)
	}
	r.scopes[dir] = fd
	return fd, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// deleteSubvolume deletes the read-only subvolume the step names, after
// checking again that the path holds that very snapshot; it is deleted by
// id through its parent directory's descriptor.
func (r *remover) deleteSubvolume(c *checked) (string, error) {
	parents, fd, sv, err := r.openSubvolume(c)
	defer closeAll(parents)
	if err != nil {
		return "", err
	}
	if fd < 0 {
		return "absent", nil
	}
	unix.Close(fd)
	if r.opts.DryRun {
		return "dry-run", nil
	}
	comps := strings.Split(c.rel, "/")
	if err := btrfs.DeleteAt(parents[len(parents)-1], comps[len(comps)-1], sv); err != nil {
		return "", fmt.Errorf("%s: %w", path.Join(c.scope.Dir, c.rel), err)
	}
	return "deleted", nil
}

// store returns the object store of the allowed directory: steps' keys
// are resolved from it, so that a file:// step below it cannot lead
// through a symbolic link.
func (r *remover) store(ctx context.Context, scope location.Location) (objstore.Store, error) {
	key := scope.DirString()
	st := r.stores[key]
	if st == nil {
		var err error
		if st, err = stores.Open(ctx, scope, r.opts.Objects); err != nil {
			return nil, err
		}
		r.stores[key] = st
	}
	return st, nil
}

// statObject returns the step's object, and whether it exists.
func (r *remover) statObject(ctx context.Context, c *checked) (objstore.Object, bool, error) {
	st, err := r.store(ctx, c.scope)
	if err != nil {
		return objstore.Object{}, false, err
	}
	o, err := st.Stat(ctx, c.rel)
	if errors.Is(err, objstore.ErrNotExist) {
		return o, false, nil
	} else if err != nil {
		return o, false, err
	}
	return o, true, nil
}

// deleteObject deletes the stored stream the step names, unless it is
// under retention: then it is kept (on a versioned bucket a delete would
// only hide it behind a delete marker, and the snapshot would look gone
// while it is stored and billed), with the date its retention ends.
func (r *remover) deleteObject(ctx context.Context, c *checked) (string, *time.Time, error) {
	o, ok, err := r.statObject(ctx, c)
	if err != nil {
		return "", nil, err
	}
	if !ok {
		return "absent", nil, nil
	}
	if o.Retained(time.Now()) {
		until := o.RetainUntil.UTC()
		return "kept", &until, nil
	}
	if r.opts.DryRun {
		return "dry-run", nil, nil
	}
	st, _ := r.store(ctx, c.scope)
	// A stream stored as several objects goes whole: its later pieces
	// (named after its key, and only those) first.
	keys, err := objstore.SetKeys(ctx, st, c.rel)
	if err != nil {
		return "", nil, err
	}
	if err := st.Delete(ctx, append(keys, c.rel)...); err != nil {
		return "", nil, err
	}
	return "deleted", nil, nil
}
