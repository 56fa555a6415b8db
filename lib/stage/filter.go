package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/buttersink/buttersink/lib/child"
)

// filterWriter feeds a filter's stdin; the filter's stdout goes to the next
// writer. Close ends stdin and waits: the filter's exit status is never lost.
//
// The output is copied by a goroutine of ours: when the next writer fails
// (an upload cancelled by an interrupt), it kills the filter, so that the
// goroutine writing to the filter's stdin gets an error instead of waiting
// forever on a filter blocked on its own full stdout.
type filterWriter struct {
	f     Filter
	cmd   *child.Cmd
	stdin io.WriteCloser
	err   error
	done  bool
	// copied is closed when the output copier is done; copyErr is the
	// next writer's error, if any.
	copied  chan struct{}
	copyErr error
}

// command is the filter run by sh -c, in a process group of its own, so
// that stopping the filter stops whatever the shell started too, and no
// orphan writes to a closed pipe. Its stderr is passed on (to os.Stderr
// if stderr is nil).
func command(f Filter, stderr io.Writer) *child.Cmd {
	cmd := child.Command("filter "+f.Name, "sh", "-c", f.Cmd)
	if stderr == nil {
		stderr = os.Stderr
	}
	cmd.Stderr = stderr
	cmd.Group = true
	return cmd
}

func startFilterWriter(next io.Writer, f Filter, stderr io.Writer) (*filterWriter, error) {
	cmd := command(f, stderr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Stopped by kill and signal, not by a context.
	if err := cmd.Start(context.Background()); err != nil {
		return nil, err
	}
	w := &filterWriter{f: f, cmd: cmd, stdin: stdin, copied: make(chan struct{})}
	go func() {
		defer close(w.copied)
		if _, err := io.Copy(next, stdout); err != nil {
			w.copyErr = err
			cmd.Kill()
			io.Copy(io.Discard, stdout)
		}
	}()
	return w, nil
}

func (w *filterWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.stdin.Write(p)
	if err != nil {
		// The filter stopped reading: its exit status says why.
		w.stdin.Close()
		w.err = w.wait()
		if w.err == nil {
			w.err = fmt.Errorf("filter %s: exited without reading all its input", w.f.Name)
		}
	}
	return n, w.err
}

func (w *filterWriter) wait() error {
	if w.done {
		return w.err
	}
	w.done = true
	<-w.copied
	err := w.cmd.Wait()
	if w.copyErr != nil {
		return w.copyErr
	}
	return err
}

func (w *filterWriter) Close() error {
	if w.done {
		return w.err
	}
	w.stdin.Close()
	if err := w.wait(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// signal kills the filter's process group and nothing else: it is safe
// while another goroutine writes to the filter, which then fails.
func (w *filterWriter) signal() { w.cmd.Kill() }

func (w *filterWriter) kill() {
	if !w.done {
		w.cmd.Kill()
		w.stdin.Close()
		w.wait()
	}
}

// filterReader runs a filter on src and reads its stdout. At the end of
// its output it waits for it and reports a failed exit as the read error,
// so a filter that dies never looks like a clean end.
type filterReader struct {
	f      Filter
	cmd    *child.Cmd
	stdout io.ReadCloser
	err    error
	done   bool
}

func startFilterReader(src io.Reader, f Filter, stderr io.Writer) (*filterReader, error) {
	cmd := command(f, stderr)
	cmd.Stdin = src
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(context.Background()); err != nil {
		return nil, err
	}
	return &filterReader{f: f, cmd: cmd, stdout: stdout}, nil
}

func (r *filterReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.stdout.Read(p)
	if errors.Is(err, io.EOF) {
		r.done = true
		if werr := r.cmd.Wait(); werr != nil {
			r.err = werr
			return n, werr
		}
		r.err = io.EOF
	} else if err != nil {
		r.err = fmt.Errorf("filter %s: %v", r.f.Name, err)
	}
	return n, r.err
}

func (r *filterReader) Close() error {
	if !r.done {
		r.done = true
		r.cmd.Kill()
		r.stdout.Close()
		r.cmd.Wait()
	}
	return nil
}
