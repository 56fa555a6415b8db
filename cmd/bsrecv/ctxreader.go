package bsrecv

import (
	"context"
	"io"
)

// ctxReader makes reads of a blocking descriptor (stdin) give up when ctx
// is done: a read that cannot be interrupted is left running on its
// goroutine, and the command ends without it. The bytes are still read
// straight into the caller's buffer.
type ctxReader struct {
	ctx     context.Context
	req     chan []byte
	res     chan readResult
	pending bool
}

type readResult struct {
	n   int
	err error
}

func newCtxReader(ctx context.Context, r io.Reader) *ctxReader {
	c := &ctxReader{ctx: ctx, req: make(chan []byte), res: make(chan readResult, 1)}
	go func() {
		for p := range c.req {
			n, err := r.Read(p)
			c.res <- readResult{n, err}
		}
	}()
	return c
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.pending {
		// An abandoned read still owns a buffer; never start another.
		return 0, c.ctx.Err()
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	c.req <- p
	select {
	case r := <-c.res:
		return r.n, r.err
	case <-c.ctx.Done():
		c.pending = true
		return 0, c.ctx.Err()
	}
}

// Close ends the reading goroutine once its last read returns.
func (c *ctxReader) Close() { close(c.req) }
