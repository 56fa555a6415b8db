package extent

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecode feeds any compression, length and data to Decode: it must
// not panic, write past dst or take long.
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases() {
		if c.n <= MaxLen {
			f.Add(c.compression, uint32(c.n), c.src)
		}
	}
	for _, e := range kernelExtents {
		f.Add(e.compression, uint32(e.n), readKernelExtent(f, e.file))
	}
	f.Fuzz(func(t *testing.T, compression, n uint32, src []byte) {
		n %= MaxLen + 1
		buf := make([]byte, n+64)
		for i := n; i < uint32(len(buf)); i++ {
			buf[i] = 0xa5
		}
		start := time.Now()
		err := Decode(buf[:n], compression, src)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
		if !bytes.Equal(buf[n:], bytes.Repeat([]byte{0xa5}, 64)) {
			t.Errorf("wrote past dst")
		}
		if err != nil && !bytes.HasPrefix([]byte(err.Error()), []byte("extent: ")) {
			t.Errorf("error %q", err)
		}
	})
}
