package bss3get

import (
	"crypto/sha256"
	"io"

	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/sendstream"
)

// chunkSource hands out a stream's bytes in order, in buffers that stay
// unchanged until released (objstore.ChunkReader).
type chunkSource interface {
	NextChunk() ([]byte, error)
	Release(b []byte)
}

// held is how many chunks the pipeline keeps at once: one being written,
// one being hashed, one on its way between them.
const held = 3

// pieceSize cuts chunks into pieces that the checker, the hasher and the
// writer take in turns while the bytes are still in the processor's
// cache: a whole chunk of a ranged GET does not fit.
const pieceSize = 512 << 10

// maxPieces bounds the pieces on their way, more than held chunks hold.
const maxPieces = 1024

// piece is a part of a chunk on its way through the pipeline. The hasher
// closes hashed and the checker closes checked once they are done with it;
// the writer writes it after checked, and releases chunk (set on a
// chunk's last piece) after hashed.
type piece struct {
	b       []byte
	chunk   []byte
	off     int64
	hashed  chan struct{}
	checked chan struct{}
	// Set by the checker before checked closes: how far the stream is
	// verified after this piece, and its head once known.
	verified int64
	head     *sendstream.Head
	err      error
}

// result is what the checks found once the source ended without fault.
type result struct {
	read int64 // bytes the source gave
	size int64 // the stream's size
	sum  []byte
}

// pipeline verifies the stream from src and writes it to w. Three
// goroutines work on the same buffers at once: the checker verifies the
// commands' CRCs, the hasher computes the SHA-256, and the caller's writes
// each command once its CRC matched. The stream's END command is held back
// until checkHead accepted the stream's head and checkEnd the result:
// only then is it written, and the snapshot complete at the receiver.
type pipeline struct {
	src       chunkSource
	w         io.Writer
	checkHead func(h *sendstream.Head) error
	checkEnd  func(r result) error
	// counted, if set, is told of every byte written.
	counted func(n int64)
}

// errWrite marks a failure to write, not a fault of the stream.
type errWrite struct{ err error }

func (e errWrite) Error() string { return e.err.Error() }
func (e errWrite) Unwrap() error { return e.err }

func (p *pipeline) run() error {
	stop := make(chan struct{})
	out := make(chan *piece, maxPieces)
	toHash := make(chan *piece, maxPieces)
	toCheck := make(chan *piece, maxPieces)
	var feedErr error
	go func() {
		defer close(out)
		defer close(toHash)
		defer close(toCheck)
		var off int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := p.src.NextChunk()
			if err != nil {
				if err != io.EOF {
					feedErr = err
				}
				return
			}
			for rest := b; len(rest) > 0; {
				n := min(len(rest), pieceSize)
				pc := &piece{b: rest[:n], off: off, hashed: make(chan struct{}), checked: make(chan struct{})}
				if n == len(rest) {
					pc.chunk = b
				}
				rest = rest[n:]
				off += int64(n)
				toHash <- pc
				toCheck <- pc
				out <- pc
			}
		}
	}()
	h := sha256.New()
	go func() {
		for pc := range toHash {
			select {
			case <-stop:
			default:
				h.Write(pc.b)
			}
			close(pc.hashed)
		}
	}()
	v := sendstream.NewVerifier()
	go func() {
		var err error
		for pc := range toCheck {
			if err == nil {
				_, err = v.Write(pc.b)
			}
			pc.verified, pc.head, pc.err = v.Verified(), v.Head(), err
			close(pc.checked)
		}
	}()

	var (
		queue   []*piece // received, not all written
		written int64
		read    int64
		err     error
	)
	// write passes the bytes of queue before limit on, releasing each
	// piece written whole.
	write := func(limit int64) error {
		for len(queue) > 0 && written < limit {
			pc := queue[0]
			end := min(limit, pc.off+int64(len(pc.b)))
			n, err := p.w.Write(pc.b[written-pc.off : end-pc.off])
			written += int64(n)
			if p.counted != nil {
				p.counted(int64(n))
			}
			if err != nil {
				return errWrite{err}
			}
			if written < pc.off+int64(len(pc.b)) {
				break
			}
			<-pc.hashed
			if pc.chunk != nil {
				p.src.Release(pc.chunk)
			}
			queue = queue[1:]
		}
		return nil
	}
	headOK := false
	for pc := range out {
		queue = append(queue, pc)
		read += int64(len(pc.b))
		<-pc.checked
		if pc.err != nil {
			err = pc.err
			break
		}
		if !headOK && pc.head != nil {
			if err = p.checkHead(pc.head); err != nil {
				break
			}
			headOK = true
		}
		if err = write(pc.verified); err != nil {
			break
		}
	}
	if err == nil {
		// The source ended: wait for the checker and the hasher to be
		// done with the last piece.
		if len(queue) > 0 {
			last := queue[len(queue)-1]
			<-last.hashed
		}
		switch {
		case feedErr != nil:
			err = feedErr
		default:
			err = v.Close()
		}
		if err == nil {
			err = p.checkEnd(result{read: read, size: v.Size(), sum: h.Sum(nil)})
		}
		if err == nil {
			return write(v.Size())
		}
	}
	// Stop the feeder and give back every buffer once the hasher and the
	// checker let go of it, so that the source's reading can end.
	close(stop)
	release := func(pc *piece) {
		<-pc.hashed
		<-pc.checked
		if pc.chunk != nil {
			p.src.Release(pc.chunk)
		}
	}
	for _, pc := range queue {
		release(pc)
	}
	for pc := range out {
		release(pc)
	}
	return err
}

// readerChunks cuts a reader's bytes (a decoder's output) into chunks for
// the pipeline: held+1 buffers of size bytes, reused in turns.
type readerChunks struct {
	r    io.Reader
	free chan []byte
	size int
	n    int
	err  error
}

func newReaderChunks(r io.Reader, size int) *readerChunks {
	return &readerChunks{r: r, free: make(chan []byte, held+1), size: size}
}

func (c *readerChunks) NextChunk() ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	var b []byte
	select {
	case b = <-c.free:
	default:
		if c.n < cap(c.free) {
			c.n++
			b = make([]byte, c.size)
		} else {
			b = <-c.free
		}
	}
	n, err := io.ReadFull(c.r, b)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	c.err = err
	if n > 0 {
		return b[:n], nil
	}
	return nil, err
}

func (c *readerChunks) Release(b []byte) { c.free <- b[:cap(b)] }

var _ chunkSource = objstore.ChunkReader(nil)
