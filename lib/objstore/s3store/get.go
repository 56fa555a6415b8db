package s3store

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/buttersink/buttersink/lib/objstore"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func (s *s3Store) Open(ctx context.Context, key string, opts objstore.GetOptions) (io.ReadCloser, objstore.Object, error) {
	o, err := s.Stat(ctx, key)
	if err != nil {
		return nil, objstore.Object{}, err
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 4
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 8 << 20
	}
	ctx, cancel := context.WithCancelCause(ctx)
	r := &rangeReader{s: s, ctx: ctx, cancel: cancel, key: key, size: o.Size, chunk: opts.ChunkSize,
		queue: make(chan *chunk, opts.Concurrency), pool: make(chan []byte, opts.Concurrency+max(opts.Held, 1))}
	if o.Size == 0 {
		close(r.queue)
	} else {
		r.wg.Add(1)
		go r.dispatch(opts.Concurrency)
	}
	return r, o, nil
}

// rangeReader reads an object with ranged GETs, Concurrency in flight, and
// hands the bytes out in order. At most Concurrency+max(Held, 1) chunk
// buffers exist.
type rangeReader struct {
	s      *s3Store
	ctx    context.Context
	cancel context.CancelCauseFunc
	key    string
	size   int64
	chunk  int64
	queue  chan *chunk
	pool   chan []byte
	wg     sync.WaitGroup

	cur    *chunk
	off    int
	err    error
	allocd int
	mu     sync.Mutex
}

type chunk struct {
	done chan struct{}
	data []byte
	err  error
}

func (r *rangeReader) getBuf() []byte {
	select {
	case b := <-r.pool:
		return b
	default:
	}
	r.mu.Lock()
	if r.allocd < cap(r.pool) {
		r.allocd++
		r.mu.Unlock()
		return getBuffer(r.chunk)[:r.chunk]
	}
	r.mu.Unlock()
	select {
	case b := <-r.pool:
		return b
	case <-r.ctx.Done():
		return nil
	}
}

// dispatch starts one fetch per chunk, in order; the queue's capacity
// bounds how many run ahead of the reader.
func (r *rangeReader) dispatch(conc int) {
	defer r.wg.Done()
	defer close(r.queue)
	for off := int64(0); off < r.size; off += r.chunk {
		c := &chunk{done: make(chan struct{})}
		select {
		case r.queue <- c:
		case <-r.ctx.Done():
			return
		}
		buf := r.getBuf()
		if buf == nil {
			c.err = context.Cause(r.ctx)
			close(c.done)
			return
		}
		n := min(r.chunk, r.size-off)
		r.wg.Add(1)
		go func(off int64, buf []byte) {
			defer r.wg.Done()
			defer close(c.done)
			c.data, c.err = r.fetch(off, buf[:n])
			if c.err != nil {
				r.cancel(c.err)
			}
		}(off, buf)
	}
}

// fetch reads one range, retrying a connection that breaks mid-body (the
// SDK retries only failed requests, not failed reads of a response).
func (r *rangeReader) fetch(off int64, buf []byte) ([]byte, error) {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var out *s3.GetObjectOutput
		out, err = r.s.client.GetObject(r.ctx, &s3.GetObjectInput{
			Bucket: aws.String(r.s.loc.Bucket),
			Key:    aws.String(r.s.full(r.key)),
			Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(buf))-1)),
		})
		if err != nil {
			return nil, r.s.fail(r.key, err)
		}
		_, err = io.ReadFull(out.Body, buf)
		out.Body.Close()
		if err == nil {
			return buf, nil
		}
		if r.ctx.Err() != nil {
			return nil, context.Cause(r.ctx)
		}
	}
	return nil, fmt.Errorf("%s: read at offset %d: %v", r.s.where(r.key), off, err)
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.cur != nil && r.off < len(r.cur.data) {
			n := copy(p, r.cur.data[r.off:])
			r.off += n
			return n, nil
		}
		if r.cur != nil {
			r.Release(r.cur.data)
			r.cur = nil
		}
		r.err = r.next()
	}
}

func (r *rangeReader) NextChunk() ([]byte, error) {
	if r.err == nil {
		r.err = r.next()
	}
	if r.err != nil {
		return nil, r.err
	}
	b := r.cur.data
	r.cur = nil
	return b, nil
}

func (r *rangeReader) Release(b []byte) { r.pool <- b[:cap(b)] }

// next waits for the next chunk in order and makes it r.cur.
func (r *rangeReader) next() error {
	c, ok := <-r.queue
	if !ok {
		if err := context.Cause(r.ctx); err != nil {
			return err
		}
		return io.EOF
	}
	<-c.done
	if c.err != nil {
		return c.err
	}
	r.cur, r.off = c, 0
	return nil
}

func (r *rangeReader) Close() error {
	r.cancel(fmt.Errorf("%s: reader closed", r.s.where(r.key)))
	// Drain so every fetch ends before the buffers go.
	drained := make(chan struct{})
	go func() {
		for c := range r.queue {
			<-c.done
			putBuffer(c.data)
		}
		close(drained)
	}()
	r.wg.Wait()
	<-drained
	if r.cur != nil {
		putBuffer(r.cur.data)
		r.cur = nil
	}
	for {
		select {
		case b := <-r.pool:
			putBuffer(b)
		default:
			return nil
		}
	}
}
