package sendstream

import (
	"hash"
	"io"
)

// HashWriter hashes what it passes on, while the writer underneath (the
// encoder and the store) works on the same bytes in its own goroutine:
// Write hands p to that goroutine, hashes p and returns, without waiting
// for the writer, which has until the next Write to be done with p
// (Stream.WriteTo keeps p unchanged until then). So one core reads,
// verifies and hashes the input while another encodes and stores it,
// without copying the bytes. Close waits for the last p.
type HashWriter struct {
	h       hash.Hash
	w       io.Writer
	in      chan []byte
	done    chan writeResult
	pending bool
	closed  bool
	werr    error
	// Counted, if set, is told of every byte written underneath.
	Counted func(n int64)
}

type writeResult struct {
	n   int
	err error
}

func NewHashWriter(h hash.Hash, w io.Writer) *HashWriter {
	hw := &HashWriter{h: h, w: w, in: make(chan []byte), done: make(chan writeResult)}
	go func() {
		for p := range hw.in {
			n, err := hw.w.Write(p)
			hw.done <- writeResult{n, err}
		}
	}()
	return hw
}

// parallelMin is the least write worth handing to the writing goroutine.
const parallelMin = 32 << 10

// wait waits until the writing goroutine is done with the previous p.
func (w *HashWriter) wait() error {
	if w.pending {
		w.pending = false
		r := <-w.done
		w.written(r.n, r.err)
	}
	return w.werr
}

func (w *HashWriter) written(n int, err error) {
	if err != nil && w.werr == nil {
		w.werr = err
	}
	if w.Counted != nil {
		w.Counted(int64(n))
	}
}

func (w *HashWriter) Write(p []byte) (int, error) {
	if err := w.wait(); err != nil {
		return 0, err
	}
	if len(p) < parallelMin {
		w.h.Write(p)
		n, err := w.w.Write(p)
		w.written(n, err)
		return n, w.werr
	}
	w.in <- p
	w.pending = true
	w.h.Write(p)
	return len(p), nil
}

// Close waits for the last Write and stops the goroutine; it returns the
// first error of the writer underneath.
func (w *HashWriter) Close() error {
	err := w.wait()
	if !w.closed {
		w.closed = true
		close(w.in)
	}
	return err
}
