package child

import (
	"bytes"
	"strings"
	"sync"
)

// MaxLine bounds one line a LineWriter passes on; the rest of a longer
// line is dropped.
const MaxLine = 4096

// LineWriter splits what is written to it into lines and calls a function
// with each, without its "\n" or "\r\n", cut at MaxLine bytes: memory
// stays bounded whatever a child writes. Flush passes on an unterminated
// last line.
type LineWriter struct {
	mu   sync.Mutex
	fn   func(string)
	buf  []byte
	skip bool // in the dropped rest of a long line
}

// NewLineWriter returns a LineWriter calling fn.
func NewLineWriter(fn func(line string)) *LineWriter { return &LineWriter{fn: fn} }

func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.skip {
			room := MaxLine - len(w.buf)
			if len(chunk) > room {
				w.buf = append(w.buf, chunk[:room]...)
				w.emit()
				w.skip = true
			} else {
				w.buf = append(w.buf, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if w.skip {
			w.skip = false
		} else {
			w.emit()
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush passes on what is left of an unterminated last line.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
	w.skip = false
}

func (w *LineWriter) emit() {
	line := strings.TrimSuffix(string(w.buf), "\r")
	w.buf = w.buf[:0]
	w.fn(line)
}
