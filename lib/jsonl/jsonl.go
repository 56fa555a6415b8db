// Package jsonl reads and writes JSON Lines, the text format between the
// commands: one JSON object per line.
package jsonl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// MaxLine bounds one line so that garbage on stdin cannot exhaust memory.
const MaxLine = 4 << 20

// Reader decodes one JSON value per line. Blank lines are skipped.
type Reader struct {
	sc   *bufio.Scanner
	name string
	line int
}

// NewReader reads from r; name (e.g. "stdin") is used in error messages.
func NewReader(r io.Reader, name string) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	return &Reader{sc: sc, name: name}
}

// Next decodes the next line into v. It returns io.EOF at the end.
func (r *Reader) Next(v any) error {
	for r.sc.Scan() {
		r.line++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if b[0] != '{' {
			return fmt.Errorf("%s line %d: not a JSON object", r.name, r.line)
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s line %d: %v", r.name, r.line, err)
		}
		return nil
	}
	if err := r.sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return fmt.Errorf("%s line %d: line longer than %d bytes", r.name, r.line+1, MaxLine)
		}
		return fmt.Errorf("%s: %w", r.name, err)
	}
	return io.EOF
}

// Line is the number of the line last read.
func (r *Reader) Line() int { return r.line }

// ReadAll decodes every line of r into a slice.
func ReadAll[T any](r io.Reader, name string) ([]T, error) {
	jr := NewReader(r, name)
	var out []T
	for {
		var v T
		err := jr.Next(&v)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// Writer encodes one value per line. Each Write is one write(2) to the
// underlying writer so that lines from a pipeline never interleave.
type Writer struct {
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer {
	jw := &Writer{w: w}
	jw.enc = json.NewEncoder(&jw.buf)
	jw.enc.SetEscapeHTML(false)
	return jw
}

// Write encodes v as one line.
func (w *Writer) Write(v any) error {
	w.buf.Reset()
	if err := w.enc.Encode(v); err != nil {
		return err
	}
	_, err := w.w.Write(w.buf.Bytes())
	return err
}
