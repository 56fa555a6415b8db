package btrfs

import (
	"context"
	"encoding/binary"
	"testing"
)

func TestPrefetchFits(t *testing.T) {
	const w = 256 << 20
	for _, c := range []struct {
		name                string
		prefetched, written int64
		n                   int64
		want                bool
	}{
		{"nothing yet", 0, 0, 8 << 20, true},
		{"a whole window at the start", 0, 0, w, true},
		{"past the window at the start", 0, 0, w + 1, false},
		{"window full", w, 0, 1, false},
		{"stream caught up a little", w, 4 << 20, 4 << 20, true},
		{"stream caught up a little, chunk bigger", w, 4 << 20, 8 << 20, false},
		{"stream ahead of the prefetch", 10, 1 << 30, w, true},
		{"zero bytes always fit when within", w, 0, 0, true},
	} {
		if got := fits(c.prefetched, c.written, w, c.n); got != c.want {
			t.Errorf("%s: fits(%d, %d, %d, %d) = %v, want %v", c.name, c.prefetched, c.written, w, c.n, got, c.want)
		}
	}
}

func TestPrefetchWindow(t *testing.T) {
	for _, c := range []struct {
		ram  uint64
		want int64
	}{
		{0, prefetchChunk},               // unknown memory: the least window
		{64 << 20, prefetchChunk},        // tiny machine: never below a chunk
		{1 << 30, 64 << 20},              // a sixteenth
		{4 << 30, 256 << 20},             // the cap reached
		{64 << 30, 256 << 20},            // and kept
		{512 << 20, 32 << 20},            // small machine
		{(256 << 20) * 16, 256 << 20},    // exactly at the cap
		{(256<<20)*16 - 16, 256<<20 - 1}, // just under
	} {
		if got := PrefetchWindow(c.ram); got != c.want {
			t.Errorf("PrefetchWindow(%d) = %d, want %d", c.ram, got, c.want)
		}
		if got := PrefetchWindow(c.ram); got < prefetchChunk {
			t.Errorf("PrefetchWindow(%d) = %d, below a chunk: the walk could never ask for a chunk", c.ram, got)
		}
	}
}

// TestPrefetchWait: wait never lets the data asked for run more than the
// window ahead of the stream, rereads the stream's progress only when it
// must, and ends when the send has.
func TestPrefetchWait(t *testing.T) {
	written, reads := int64(0), 0
	p := &prefetcher{ctx: t.Context(), o: PrefetchOptions{Window: 32, Written: func() int64 { reads++; return written }}}
	ask := func(n int64) {
		t.Helper()
		if err := p.wait(n); err != nil {
			t.Fatal(err)
		}
		p.st.Bytes += n
		if p.st.Bytes > written+p.o.Window {
			t.Fatalf("%d asked for with %d written, window %d", p.st.Bytes, written, p.o.Window)
		}
	}
	ask(16)
	ask(16)
	if reads != 0 {
		t.Errorf("%d reads of the progress while the window had room, want 0", reads)
	}
	written = 8
	ask(8)
	if reads != 1 {
		t.Errorf("%d reads of the progress, want 1", reads)
	}
	if p.st.Ahead != 32 {
		t.Errorf("ahead %d, want 32", p.st.Ahead)
	}
	ctx, cancel := context.WithCancel(t.Context())
	p.ctx = ctx
	cancel()
	if err := p.wait(1); err != errPrefetchDone {
		t.Errorf("wait after the send ended: %v, want errPrefetchDone", err)
	}
}

// fileExtent builds a btrfs_file_extent_item of a regular extent.
func fileExtent(gen uint64, compression, typ byte, bytenr, num uint64) []byte {
	d := make([]byte, fileExtentRegSize)
	le := binary.LittleEndian
	le.PutUint64(d[fileExtentGeneration:], gen)
	d[fileExtentCompression] = compression
	d[fileExtentType] = typ
	le.PutUint64(d[fileExtentDiskBytenr:], bytenr)
	le.PutUint64(d[fileExtentNumBytes:], num)
	return d
}

func TestPrefetchDataRange(t *testing.T) {
	for _, c := range []struct {
		name       string
		off        uint64
		d          []byte
		minGen     uint64
		compressed bool
		start, end uint64
		ok         bool
	}{
		{"regular", 4096, fileExtent(7, 0, fileExtentReg, 1<<20, 8192), 0, false, 4096, 12288, true},
		{"hole", 0, fileExtent(7, 0, fileExtentReg, 0, 8192), 0, false, 0, 0, false},
		{"inline", 0, append(fileExtent(7, 0, 0, 0, 0)[:21], "data"...), 0, false, 0, 0, false},
		{"prealloc", 0, fileExtent(7, 0, 2, 1<<20, 8192), 0, false, 0, 0, false},
		{"older than the parent", 0, fileExtent(7, 0, fileExtentReg, 1<<20, 8192), 8, false, 0, 0, false},
		{"as new as the parent's successor", 0, fileExtent(8, 0, fileExtentReg, 1<<20, 8192), 8, false, 0, 8192, true},
		{"compressed, read through the page cache", 0, fileExtent(7, 1, fileExtentReg, 1<<20, 131072), 0, false, 0, 131072, true},
		{"compressed, passed through", 0, fileExtent(7, 1, fileExtentReg, 1<<20, 131072), 0, true, 0, 0, false},
		{"plain, passed through compressed", 0, fileExtent(7, 0, fileExtentReg, 1<<20, 4096), 0, true, 0, 4096, true},
		{"empty", 0, fileExtent(7, 0, fileExtentReg, 1<<20, 0), 0, false, 0, 0, false},
		{"wraps", ^uint64(0) - 4095, fileExtent(7, 0, fileExtentReg, 1<<20, 8192), 0, false, 0, 0, false},
		{"short", 0, fileExtent(7, 0, fileExtentReg, 1<<20, 8192)[:40], 0, false, 0, 0, false},
	} {
		s, e, ok := dataRange(c.off, c.d, c.minGen, c.compressed)
		if s != c.start || e != c.end || ok != c.ok {
			t.Errorf("%s: dataRange = %d, %d, %v; want %d, %d, %v", c.name, s, e, ok, c.start, c.end, c.ok)
		}
	}
}

func inodeRef(name string, extra int) []byte {
	d := make([]byte, 10, 10+len(name))
	binary.LittleEndian.PutUint64(d, 3)
	binary.LittleEndian.PutUint16(d[8:], uint16(len(name)+extra))
	return append(d, name...)
}

func TestPrefetchFirstRefName(t *testing.T) {
	two := append(inodeRef("a", 0), inodeRef("second", 0)...)
	for _, c := range []struct {
		d    []byte
		want string
	}{
		{inodeRef("file", 0), "file"},
		{two, "a"},
		{inodeRef("file", 1), ""}, // the length runs past the item
		{inodeRef("", 0), ""},
		{[]byte{1, 2, 3}, ""},
	} {
		if got := firstRefName(c.d); got != c.want {
			t.Errorf("firstRefName(%x) = %q, want %q", c.d, got, c.want)
		}
	}
}

// FuzzPrefetchItems: whatever the items, the parsers stay within them.
func FuzzPrefetchItems(f *testing.F) {
	f.Add(uint64(0), fileExtent(7, 0, fileExtentReg, 1<<20, 8192), uint64(0))
	f.Add(uint64(1<<40), fileExtent(7, 3, fileExtentReg, 1, ^uint64(0)), uint64(9))
	f.Add(uint64(0), inodeRef("name", 0), uint64(0))
	f.Add(uint64(0), []byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, off uint64, d []byte, minGen uint64) {
		if s, e, ok := dataRange(off, d, minGen, false); ok && e <= s {
			t.Fatalf("range [%d, %d)", s, e)
		}
		if n := firstRefName(d); len(n) > len(d) {
			t.Fatalf("name %q longer than the item", n)
		}
	})
}
