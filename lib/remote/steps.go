package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/buttersink/buttersink/lib/cli"
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
func Send(ctx context.Context, env *cli.Env, f Flags, step plan.Step, out io.Writer, args ...string) error {
	src, err := location.Parse(step.Src)
	if err != nil {
		return err
	}
	if !src.IsRemote() {
		return fmt.Errorf("step for %s: source %s is not an ssh:// location", step.Snapshot.Path, step.Src)
	}
	dir := src.Path()
	abs := func(rel string) (string, error) {
		if rel == "" || path.IsAbs(rel) || rel != path.Clean(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("step for %s: bad snapshot path %q", step.Snapshot.Path, rel)
		}
		return path.Join(dir, rel), nil
	}
	a := append([]string(nil), args...)
	if step.Parent != nil {
		p, err := abs(step.Parent.Path)
		if err != nil {
			return err
		}
		a = append(a, "-p", p)
	}
	for _, c := range step.Clones {
		p, err := abs(c.Path)
		if err != nil {
			return err
		}
		a = append(a, "-c", p)
	}
	snap, err := abs(step.Snapshot.Path)
	if err != nil {
		return err
	}
	a = append(a, snap)
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

// Steps runs name (bsrm) on dst's host, feeding it the plan steps read
// from stdin with their "dst" rewritten from dst's ssh:// form to the
// host's local path. Every step is read and checked first: one for any
// other location refuses the whole batch before anything runs. The remote
// command's output goes to env.Stdout.
func Steps(ctx context.Context, env *cli.Env, f Flags, dst location.Location, name string, args ...string) error {
	want := dst.AsDir().String()
	local := Path(dst.AsDir())
	var batch bytes.Buffer
	jr := jsonl.NewReader(env.Stdin, "stdin")
	jw := jsonl.NewWriter(&batch)
	for {
		var st plan.Step
		err := jr.Next(&st)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		l, err := location.Parse(st.Dst)
		if err != nil {
			return fmt.Errorf("stdin line %d: %w", jr.Line(), err)
		}
		if l.AsDir().String() != want {
			return fmt.Errorf("stdin line %d: step for %s, not for %s", jr.Line(), st.Dst, want)
		}
		st.Dst = local
		if err := jw.Write(st); err != nil {
			return err
		}
	}
	return f.Run(ctx, dst, Command{
		Name: name, Args: append(append([]string(nil), args...), local),
		Stdin: &batch, Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log, Quiet: env.Quiet, Verbose: env.Verbose,
	})
}
