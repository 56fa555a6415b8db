// Package measure gives the planner exact stream sizes for a local btrfs
// source without reading any file data: it runs the kernel's send with
// NO_FILE_DATA, under which every WRITE becomes an UPDATE_EXTENT that only
// states the offset and length of the data it stands for. The size of the
// real stream is the bytes of that stream plus the lengths announced.
package measure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/sendstream"
)

// Parallel is how many sends run at once: metadata-only sends are bound by
// tree walking, and two keep both cores of a small machine busy.
const Parallel = 2

// Sender measures sends of snapshots below Dir (the source directory the
// records' paths are relative to).
type Sender struct {
	Dir string
	// Proto is the send protocol the real send will use; 0 means the
	// kernel's highest, as bssend does.
	Proto uint32
}

// Measure returns the stream size of every edge, running up to Parallel
// sends at once.
func (m *Sender) Measure(ctx context.Context, edges []plan.Edge) ([]int64, error) {
	out := make([]int64, len(edges))
	errs := make([]error, len(edges))
	sem := make(chan struct{}, Parallel)
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			parent := ""
			if e.Parent != nil {
				parent = path.Join(m.Dir, e.Parent.Path)
			}
			out[i], errs[i] = m.size(ctx, path.Join(m.Dir, e.Snapshot.Path), parent)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// size runs one NO_FILE_DATA send of snap (relative to parent, "" = full)
// and adds up what the full stream would hold.
func (m *Sender) size(ctx context.Context, snap, parent string) (int64, error) {
	proto := m.Proto
	if proto == 0 {
		proto = btrfs.SendProtoMax()
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		err := btrfs.Send(snap, p[1], parent, nil, proto, btrfs.NoFileData)
		unix.Close(p[1])
		done <- err
	}()
	cr := &countingReader{fd: p[0]}
	var data int64
	walkErr := sendstream.Walk(cr, func(_ *sendstream.Stream, c *sendstream.Command) error {
		if c.Type == sendstream.CmdUpdateExtent {
			data += c.DataLen()
		}
		return ctx.Err()
	})
	// Closing the read end stops a send still running (EPIPE) when the
	// walk ended early.
	unix.Close(p[0])
	sendErr := <-done
	switch {
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case sendErr != nil && !errors.Is(sendErr, unix.EPIPE):
		// The send's own failure (not root, say) is the cause of the
		// walk's: an empty or cut stream. It names snap.
		return 0, fmt.Errorf("measuring %w", sendErr)
	case walkErr != nil:
		return 0, fmt.Errorf("measuring %s: %w", snap, walkErr)
	case sendErr != nil:
		return 0, fmt.Errorf("measuring %s: %w", snap, sendErr)
	}
	return cr.n + data, nil
}

// countingReader reads the pipe's fd directly (it is blocking, which
// os.File handles poorly) and counts the bytes.
type countingReader struct {
	fd int
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(c.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		c.n += int64(n)
		return n, nil
	}
}
