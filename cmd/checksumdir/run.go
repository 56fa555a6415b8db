package checksumdir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/checksumdir"
	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/units"
)

// RunOptions are checksumdir's flags.
type RunOptions struct {
	// Dirs are the trees to checksum (one with Check).
	Dirs []string
	// Check is a saved NAME.sha256sum to verify Dirs[0] against.
	Check string
	// Stdout prints each tree's overall digest instead of writing files.
	Stdout bool
	// Full adds NAME.full (xattrs, symlink targets, devices, attributes).
	Full bool
	// Portable prints every directory's link count as 1 (as btrfs has it).
	Portable bool
	// Jobs is how many files are hashed at once; 0 means one per CPU.
	Jobs int
	// Remote reaches ssh:// directories (lib/remote).
	Remote remote.Flags
}

// ErrDiffers is wrapped by Run's error when --check found differences.
var ErrDiffers = errors.New("differs from")

// Run is the checksumdir command.
func Run(ctx context.Context, env *cli.Env, opts RunOptions) error {
	if len(opts.Dirs) == 0 {
		return cli.UsageError("no DIR given")
	}
	if opts.Check != "" {
		if opts.Stdout {
			return cli.UsageError("--check and --stdout do not go together")
		}
		if len(opts.Dirs) != 1 {
			return cli.UsageError("--check takes exactly one DIR, got %d", len(opts.Dirs))
		}
	}
	seen := map[string]string{}
	for _, arg := range opts.Dirs {
		scheme, dir, err := target(arg)
		if err != nil {
			return err
		}
		if scheme != location.Btrfs || opts.Check != "" || opts.Stdout {
			continue
		}
		name, err := setName(dir)
		if err != nil {
			return err
		}
		if other, ok := seen[name]; ok {
			return cli.UsageError("%s and %s would both write %s.ls; run them from different directories", other, arg, name)
		}
		seen[name] = arg
	}
	for _, arg := range opts.Dirs {
		scheme, dir, err := target(arg)
		if err != nil {
			return err
		}
		switch scheme {
		case location.Btrfs: // any local directory, whatever its filesystem
			if opts.Check != "" {
				return checkLocal(ctx, env, opts, dir, env.Stdout)
			}
			if err := sumLocal(ctx, env, opts, dir, env.Stdout); err != nil {
				return err
			}
		case location.SSH:
			if !opts.Stdout || opts.Check != "" {
				return hint.Wrap(cli.UsageError("%s: over ssh only --stdout is supported", arg), "compare checksumdir --stdout of both trees")
			}
			if err := remote.Checksum(ctx, remote.Stdio{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose}, opts.Remote, arg, opts.Full, opts.Portable); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: checksumdir cannot read %s:// locations", arg, scheme)
		}
	}
	return nil
}

// target splits an argument into its scheme and path. Plain paths are
// local directories (of any filesystem), whatever characters they hold.
func target(arg string) (location.Scheme, string, error) {
	if !strings.Contains(arg, "://") {
		return location.Btrfs, arg, nil
	}
	loc, err := location.Parse(arg)
	if err != nil {
		return "", "", cli.UsageError("%v", err)
	}
	return loc.Scheme, loc.Path(), nil
}

// setName is NAME: the base name of DIR.
func setName(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.Base(abs), nil
}

// scan runs checksumdir.Scan with progress on stderr and problems logged.
func scan(ctx context.Context, env *cli.Env, dir string, opts RunOptions) (*checksumdir.Tree, error) {
	var prog checksumdir.Progress
	start := time.Now()
	stopProgress := showProgress(env, dir, &prog)
	tree, err := checksumdir.Scan(ctx, dir, checksumdir.Options{Jobs: opts.Jobs, Full: opts.Full, Portable: opts.Portable, OnProblem: func(err error, changed bool) {
		if changed {
			env.Log.Warn(err.Error() + "; its checksum may not match any state of it")
			return
		}
		env.Log.Error(err.Error())
	}}, &prog)
	stopProgress()
	if err != nil {
		if errors.Is(err, checksumdir.ErrUnreadable) {
			return nil, hint.Wrap(err, "see the errors above; run as a user who can read the whole tree")
		}
		return nil, err
	}
	secs := time.Since(start).Seconds()
	env.Log.Debug(fmt.Sprintf("%s: %d entries, %d files, %s hashed in %.2fs (%s/s)", dir,
		len(tree.Entries), tree.Files, units.Bytes(tree.Bytes), secs, units.Bytes(int64(float64(tree.Bytes)/max(secs, 1e-3)))))
	return tree, nil
}

// sumLocal makes the set of the local directory dir: writes NAME.ls,
// NAME.files (NAME.full) and NAME.sha256sum into the working directory,
// or with opts.Stdout prints the digest line to out.
func sumLocal(ctx context.Context, env *cli.Env, opts RunOptions, dir string, out io.Writer) error {
	name, err := setName(dir)
	if err != nil {
		return err
	}
	if !opts.Stdout {
		if err := refuseInside(dir); err != nil {
			return err
		}
	}
	tree, err := scan(ctx, env, dir, opts)
	if err != nil {
		return err
	}
	set := tree.Set(name, opts.Full)
	if opts.Stdout {
		_, err := io.WriteString(out, set.DigestLine()+"\n")
		return err
	}
	if err := checksumdir.WriteSet(".", set); err != nil {
		return err
	}
	env.Log.Debug("wrote " + strings.Join(append(set.FileNames(), name+".sha256sum"), ", "))
	return nil
}

// checkLocal compares the local directory dir with the saved set and
// writes the differences to out.
func checkLocal(ctx context.Context, env *cli.Env, opts RunOptions, dir string, out io.Writer) error {
	saved, err := checksumdir.LoadSet(opts.Check)
	if err != nil {
		return err
	}
	full := saved.Full != nil
	if opts.Full && !full {
		return hint.Wrap(fmt.Errorf("%s: has no .full file to check", opts.Check),
			"make the set with checksumdir --full, or check without --full")
	}
	opts.Full = full
	tree, err := scan(ctx, env, dir, opts)
	if err != nil {
		return err
	}
	cur := tree.Set(saved.Name, full)
	d, err := checksumdir.Compare(out, saved, cur)
	if err != nil {
		return err
	}
	if d.Total() > 0 {
		return &cli.ExitError{Code: cli.ExitFailure, Err: fmt.Errorf("%s %w %s: %s", dir, ErrDiffers, opts.Check, d)}
	}
	if !bytes.Equal(saved.SumFile(), cur.SumFile()) {
		env.Log.Warn(fmt.Sprintf("%s: same entries as %s, but its files differ in form (line order or spacing); was it made under another locale?", dir, opts.Check))
	}
	env.Log.Debug(fmt.Sprintf("%s matches %s", dir, opts.Check))
	return nil
}

// refuseInside fails when the working directory is dir or below it: the
// output would change the tree being summed.
func refuseInside(dir string) error {
	var top unix.Stat_t
	if err := unix.Stat(dir, &top); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(wd); err == nil {
		wd = real
	}
	for p := wd; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil && st.Dev == top.Dev && st.Ino == top.Ino {
			return hint.Wrap(fmt.Errorf("%s: refusing to write the checksum files inside the tree", dir),
				"run checksumdir from a directory outside it, or use --stdout")
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// showProgress draws a progress line on stderr until the returned func
// is called, when env wants progress.
func showProgress(env *cli.Env, dir string, prog *checksumdir.Progress) func() {
	if !env.ShowProgress() {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(env.Stderr, "\r\033[K")
				return
			case <-tick.C:
				fmt.Fprintf(env.Stderr, "\r\033[K%s: %s: %d entries, %s hashed", env.Name, dir, prog.Entries.Load(), units.Bytes(prog.Bytes.Load()))
			}
		}
	}()
	return func() { close(done); <-finished }
}
