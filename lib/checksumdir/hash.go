package checksumdir

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// bufSize is each hashing worker's read buffer: memory stays at
// jobs × bufSize whatever the file sizes.
const bufSize = 1 << 20

// zeros feeds the holes of sparse files to the hash without reading them;
// made when first needed, not at the start of every command of the
// binary checksumdir runs as (cmd/bs).
var zeros = sync.OnceValue(func() []byte { return make([]byte, bufSize) })

// fileSum is the content hash of one inode.
type fileSum struct {
	path     string // for open and messages
	dev, ino uint64
	size     int64
	blocks   int64
	mtimeSec int64
	mtimeNs  int64
	uid      uint32

	// Set by the worker; read after hasher.wait.
	sum     [sha256.Size]byte
	attr    uint32
	hasAttr bool
	err     error
}

// hasher hashes files on a fixed number of workers.
type hasher struct {
	ctx     context.Context
	jobs    chan *fileSum
	wg      sync.WaitGroup
	full    bool
	prog    *Progress
	problem func(error, bool)

	mu           sync.Mutex
	files, bytes int64
}

func newHasher(ctx context.Context, jobs int, full bool, prog *Progress, problem func(error, bool)) *hasher {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	h := &hasher{ctx: ctx, jobs: make(chan *fileSum, 4*jobs), full: full, prog: prog, problem: problem}
	for i := 0; i < jobs; i++ {
		h.wg.Add(1)
		go h.work()
	}
	return h
}

// submit queues the regular file at path with lstat result st.
func (h *hasher) submit(path string, st *unix.Stat_t) *fileSum {
	s := &fileSum{path: path, dev: st.Dev, ino: st.Ino, size: st.Size, blocks: st.Blocks,
		mtimeSec: st.Mtim.Sec, mtimeNs: st.Mtim.Nsec, uid: st.Uid}
	h.jobs <- s
	return s
}

// wait ends the workers and returns how many files and bytes were hashed.
func (h *hasher) wait() (files, bytes int64) {
	close(h.jobs)
	h.wg.Wait()
	return h.files, h.bytes
}

func (h *hasher) work() {
	defer h.wg.Done()
	buf := make([]byte, bufSize)
	d := sha256.New()
	for s := range h.jobs {
		if h.ctx.Err() != nil {
			s.err = h.ctx.Err()
			continue
		}
		d.Reset()
		n, changed, err := h.hash(s, d, buf)
		if err != nil {
			s.err = err
			if !errors.Is(err, context.Canceled) {
				h.problem(fmt.Errorf("%s: %w", s.path, err), false)
			}
			continue
		}
		if changed {
			h.problem(fmt.Errorf("%s: changed while being read", s.path), true)
		}
		d.Sum(s.sum[:0])
		s.path = "" // not needed any more; the entry keeps its own
		h.mu.Lock()
		h.files++
		h.bytes += n
		h.mu.Unlock()
	}
}

// hash feeds the file's content to d and returns its length. changed
// reports that size or mtime moved while it was read.
func (h *hasher) hash(s *fileSum, d hash.Hash, buf []byte) (n int64, changed bool, err error) {
	// O_NONBLOCK: should the name have become a FIFO since lstat, open
	// must not hang; it changes nothing for a regular file.
	fd, err := openNoatime(s.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, s.uid)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != s.dev || st.Ino != s.ino {
		return 0, false, errors.New("replaced by another file while being read")
	}
	changed = st.Size != s.size || st.Mtim.Sec != s.mtimeSec || st.Mtim.Nsec != s.mtimeNs
	if h.full {
		if s.attr, s.hasAttr, err = getAttr(fd); err != nil {
			return 0, false, fmt.Errorf("file attributes: %w", err)
		}
	}
	// Fewer blocks than the size needs: there may be holes, which are
	// hashed as zeros without being read.
	if st.Size > 0 && st.Blocks*512 < st.Size {
		n, err = h.readSparse(fd, st.Size, d, buf)
	} else {
		n, err = h.readFrom(fd, 0, -1, d, buf)
	}
	if err != nil {
		return 0, false, err
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return 0, false, err
	}
	changed = changed || after.Size != st.Size || after.Mtim != st.Mtim
	return n, changed, nil
}

// readFrom hashes the file from off up to stop, or to its end if it
// ends sooner or stop is negative. Files are read to the end, as
// sha256sum reads them, whatever their size says: on some filesystems
// (procfs, sysfs) it is not the length of the content.
func (h *hasher) readFrom(fd int, off, stop int64, d hash.Hash, buf []byte) (int64, error) {
	start := off
	for stop < 0 || off < stop {
		if err := h.ctx.Err(); err != nil {
			return 0, err
		}
		b := buf
		if stop >= 0 && stop-off < int64(len(b)) {
			b = b[:stop-off]
		}
		m, err := unix.Pread(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if m == 0 {
			return off - start, nil
		}
		d.Write(buf[:m])
		off += int64(m)
		h.prog.Bytes.Add(int64(m))
	}
	return off - start, nil
}

// readSparse hashes a file that may have holes: data ranges are read,
// holes are fed as zeros (the hash is that of the full content). Where
// the filesystem cannot tell holes it reads everything.
func (h *hasher) readSparse(fd int, size int64, d hash.Hash, buf []byte) (int64, error) {
	off := int64(0)
	for off < size {
		if err := h.ctx.Err(); err != nil {
			return 0, err
		}
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			data = size
		} else if err != nil {
			if off == 0 {
				return h.readFrom(fd, 0, -1, d, buf)
			}
			return 0, err
		}
		data = min(data, size)
		if err := h.feedZeros(d, data-off); err != nil {
			return 0, err
		}
		if data >= size {
			off = size
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return 0, err
		}
		hole = min(hole, size)
		for p := data; p < hole; {
			m, err := unix.Pread(fd, buf[:min(int64(len(buf)), hole-p)], p)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, err
			}
			if m == 0 {
				// Shrunk underneath us: what was fed as zeros may be
				// wrong. Start again the simple way.
				d.Reset()
				return h.readFrom(fd, 0, -1, d, buf)
			}
			d.Write(buf[:m])
			p += int64(m)
			h.prog.Bytes.Add(int64(m))
		}
		off = hole
	}
	// Grown since fstat: hash the rest, as sha256sum would.
	rest, err := h.readFrom(fd, off, -1, d, buf)
	return off + rest, err
}

func (h *hasher) feedZeros(d hash.Hash, n int64) error {
	for n > 0 {
		if err := h.ctx.Err(); err != nil {
			return err
		}
		z := zeros()
		m := min(n, int64(len(z)))
		d.Write(z[:m])
		n -= m
		h.prog.Bytes.Add(m)
	}
	return nil
}
