package s3store

import "sync"

// Part and chunk buffers outlive one upload or download: the next object
// of the same run takes them again. Fresh memory costs a page fault per
// page on first touch, which on some machines (VMs) costs more than
// copying the bytes, so buffers are reused rather than left to the GC.
var freeBufs struct {
	mu   sync.Mutex
	bufs [][]byte
}

const (
	maxFreeBufs   = 8
	maxFreeBufLen = 64 << 20
)

// getBuffer returns an empty buffer with capacity of at least size.
func getBuffer(size int64) []byte {
	freeBufs.mu.Lock()
	for i, b := range freeBufs.bufs {
		if int64(cap(b)) >= size && int64(cap(b)) <= 2*size {
			last := len(freeBufs.bufs) - 1
			freeBufs.bufs[i] = freeBufs.bufs[last]
			freeBufs.bufs = freeBufs.bufs[:last]
			freeBufs.mu.Unlock()
			return b[:0]
		}
	}
	freeBufs.mu.Unlock()
	return make([]byte, 0, size)
}

// putBuffer keeps b for a later getBuffer (or drops it when enough are kept).
func putBuffer(b []byte) {
	if cap(b) == 0 || cap(b) > maxFreeBufLen {
		return
	}
	freeBufs.mu.Lock()
	if len(freeBufs.bufs) < maxFreeBufs {
		freeBufs.bufs = append(freeBufs.bufs, b[:0])
	}
	freeBufs.mu.Unlock()
}
