package bss3get

import (
	"bytes"
	"testing"
)

func TestHoldback(t *testing.T) {
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	for _, chunks := range [][]int{{36}, {1, 35}, {5, 5, 26}, {10, 26}, {35, 1}, {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, {20, 6, 4, 6}} {
		var out bytes.Buffer
		h := &holdback{w: &out, hold: make([]byte, 0, 10)}
		off := 0
		for _, n := range chunks {
			if _, err := h.Write(data[off : off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
			if want := max(off-10, 0); out.Len() != want {
				t.Fatalf("chunks %v: after %d bytes %d passed, want %d", chunks, off, out.Len(), want)
			}
		}
		if err := h.release(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("chunks %v: got %q", chunks, out.Bytes())
		}
	}
}
