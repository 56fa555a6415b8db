package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/sendstream"
)

// Send is a pull: it runs bssend on the host of the step's ssh:// source
// and writes the stream to out. The remote bssend gets every path on its
// command line (argument mode: -p PARENT, -c CLONE, SNAPSHOT), never a
// plan on stdin, so that the server's forced command sees, and can refuse,
// each path a key reads. args are the local bssend's stream flags to pass
// on (e.g. --proto 2).
//
// A snapshot at a nested relative path gets that path put into the
// stream's first command here (the remote send carries only the base
// name), the one case where the bytes pass through this process; otherwise
// out, when it is an *os.File, is handed to ssh directly.
func Send(ctx context.Context, env Stdio, f Flags, step plan.Step, out io.Writer, args ...string) error {
	src, err := location.Parse(step.Src)
	if err != nil {
		return err
	}
	if !src.IsRemote() {
		return fmt.Errorf("step for %s: source %s is not an ssh:// location", step.Snapshot.Path, step.Src)
	}
	a, err := sendArgs(step, src.Path(), args)
	if err != nil {
		return err
	}
	c := Command{Name: "bssend", Args: a, Stdout: out, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose}
	if !strings.Contains(step.Snapshot.Path, "/") {
		return f.Run(ctx, src, c)
	}
	pr, pw := io.Pipe()
	c.Stdout = pw
	done := make(chan error, 1)
	go func() {
		err := f.Run(ctx, src, c)
		pw.CloseWithError(err)
		done <- err
	}()
	copyErr := renamed(pr, out, step.Snapshot.Path)
	// Unblock the remote side if we stopped reading early.
	pr.CloseWithError(errors.New("stream copy ended"))
	runErr := <-done
	if runErr != nil {
		return runErr
	}
	return copyErr
}

// sendArgs is the remote bssend's command line for step, whose paths are
// relative to dir on the source's host, after the stream flags args.
//
// A step with clone sources but no parent is refused, as bssend refuses
// it locally: bssend -c without -p (like btrfs send -c) sends from a
// parent it picks among the clone sources, where the kernel, given the
// step as it is, sends in full; no command line says the latter.
func sendArgs(step plan.Step, dir string, args []string) ([]string, error) {
	abs := func(rel string) (string, error) {
		if rel == "" || path.IsAbs(rel) || rel != path.Clean(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("step for %s: bad snapshot path %q", step.Snapshot.Path, rel)
		}
		return path.Join(dir, rel), nil
	}
	if step.Parent == nil && len(step.Clones) > 0 {
		return nil, fmt.Errorf("step for %s: clone sources without a parent", step.Snapshot.Path)
	}
	a := append([]string(nil), args...)
	if step.Resume != nil {
		if step.Resume.Offset < 0 {
			return nil, fmt.Errorf("step for %s: bad resume offset %d", step.Snapshot.Path, step.Resume.Offset)
		}
		a = append(a, "--resume", step.Resume.String())
	}
	if step.Parent != nil {
		p, err := abs(step.Parent.Path)
		if err != nil {
			return nil, err
		}
		a = append(a, "-p", p)
	}
	for _, c := range step.Clones {
		p, err := abs(c.Path)
		if err != nil {
			return nil, err
		}
		a = append(a, "-c", p)
	}
	snap, err := abs(step.Snapshot.Path)
	if err != nil {
		return nil, err
	}
	return append(a, snap), nil
}

// renamed copies the one stream on r to w with its path set to rel.
func renamed(r io.Reader, w io.Writer, rel string) error {
	sr := sendstream.NewReader(r)
	s, err := sr.Next()
	if err != nil {
		return err
	}
	if err := s.RewritePath(rel); err != nil {
		return err
	}
	if _, err := s.WriteTo(w); err != nil {
		return err
	}
	if _, err := sr.Next(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one stream")
		}
		return fmt.Errorf("remote bssend for %s: %w", rel, err)
	}
	return nil
}

// Remove carries out delete steps whose dst is an ssh:// location: one
// remote bsrm per host, given every snapshot as DIR/NAME on its command
// line (never steps on stdin), so that the server's forced command sees,
// canonicalises and can refuse each path. The remote bsrm prints one
// result line per snapshot; their "dst" is put back into ssh:// form.
// flags (e.g. --wait) are passed on to each remote bsrm.
func Remove(ctx context.Context, env Stdio, f Flags, steps []plan.Step, dryRun bool, flags ...string) error {
	type batch struct {
		host  location.Location
		paths []string
	}
	var batches []*batch
	byHost := map[string]*batch{}
	for _, st := range steps {
		dst, err := location.Parse(st.Dst)
		if err != nil {
			return err
		}
		if !dst.IsRemote() {
			return fmt.Errorf("delete step for %s: %s is not an ssh:// location", st.Snapshot.Path, st.Dst)
		}
		rel := st.Snapshot.Path
		if rel == "" || path.IsAbs(rel) || rel != path.Clean(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("delete step for %s: bad snapshot path %q", dst.DirString(), rel)
		}
		b := byHost[Host(dst)]
		if b == nil {
			b = &batch{host: dst.AsDir()}
			byHost[Host(dst)] = b
			batches = append(batches, b)
		}
		b.paths = append(b.paths, path.Join(dst.AsDir().Path(), rel))
	}
	for _, b := range batches {
		args := append([]string(nil), flags...)
		if dryRun {
			args = append(args, "--dry-run")
		}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- resultsToSSH(pr, env.Stdout, b.host) }()
		err := f.Run(ctx, b.host, Command{
			Name: "bsrm", Args: append(args, b.paths...),
			Stdout: pw, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose,
		})
		pw.Close()
		if werr := <-done; err == nil {
			err = werr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// resultsToSSH copies bsrm's result lines, each "dst" turned from a
// directory on host back into its ssh:// location; other fields pass as
// they are.
func resultsToSSH(r io.Reader, w io.Writer, host location.Location) error {
	jr := jsonl.NewReader(r, "remote bsrm output")
	jw := jsonl.NewWriter(w)
	for {
		var res map[string]json.RawMessage
		err := jr.Next(&res)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			io.Copy(io.Discard, r)
			return err
		}
		var dst string
		if json.Unmarshal(res["dst"], &dst) == nil && path.IsAbs(dst) {
			l := host
			l.Dir, l.Snapshot = path.Clean(dst), ""
			res["dst"], _ = json.Marshal(l.DirString())
		}
		if err := jw.Write(res); err != nil {
			io.Copy(io.Discard, r)
			return err
		}
	}
}

// Checksum prints the checksumdir digest line of the directory at the
// ssh:// location arg, computed on its host (checksumdir --stdout there:
// no files are written on either side).
func Checksum(ctx context.Context, env Stdio, f Flags, arg string, full, portable bool) error {
	loc, err := location.Parse(arg)
	if err != nil {
		return &UsageError{err}
	}
	args := []string{"--stdout"}
	if full {
		args = append(args, "--full")
	}
	if portable {
		args = append(args, "--portable")
	}
	// No stdin: the remote checksumdir reads none, and ssh must not take
	// what the user types.
	return f.Run(ctx, loc, Command{
		Name: "checksumdir", Args: append(args, Path(loc)),
		Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose,
	})
}
