package bss3put

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/stage"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// pieceWriter cuts the encoded stream into pieces of at most limit bytes
// (objstore: streams larger than one object). A piece is stored once
// the next byte after it arrives, so a stream of at most limit bytes is
// one object as ever; the last piece, which carries the stream's
// digest, is stored last. A piece an interrupted run stored is not sent
// again: its bytes are only checked against it (kept).
type pieceWriter struct {
	ctx   context.Context
	st    objstore.Store
	key   objkey.Key
	limit int64
	meta  objstore.Meta
	// create starts storing piece n.
	create func(n int) (objstore.Putter, error)
	// kept are the pieces stored by an interrupted run, by number.
	kept map[int]objstore.Object

	n     int
	cur   objstore.Putter // nil while checking a kept piece
	size  int64           // bytes of piece n so far
	crc   uint32
	total int64
}

func (w *pieceWriter) where(n int) string {
	return w.st.Location().DirString() + w.key.PieceKey(n)
}

// open starts piece n.
func (w *pieceWriter) open(n int) error {
	w.n, w.size, w.crc = n, 0, 0
	if _, ok := w.kept[n]; ok {
		w.cur = nil
		return nil
	}
	p, err := w.create(n)
	if err != nil {
		return err
	}
	w.cur = p
	return nil
}

func (w *pieceWriter) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		if w.size == w.limit {
			if _, err := w.finish(objstore.Meta{}); err != nil {
				return total - len(b), err
			}
			if w.n+1 > objkey.MaxPieces {
				return total - len(b), fmt.Errorf("%s: the stream needs more than %d objects of %d bytes", w.where(1), objkey.MaxPieces, w.limit)
			}
			if err := w.open(w.n + 1); err != nil {
				return total - len(b), err
			}
		}
		c := b[:min(int64(len(b)), w.limit-w.size)]
		if w.cur != nil {
			if _, err := w.cur.Write(c); err != nil {
				return total - len(b), err
			}
		}
		w.crc = crc32.Update(w.crc, castagnoli, c)
		w.size += int64(len(c))
		w.total += int64(len(c))
		b = b[len(c):]
	}
	return total, nil
}

// finish stores the current piece: as the last one when last carries the
// stream's digest.
func (w *pieceWriter) finish(last objstore.Meta) (objstore.Object, error) {
	isLast := last.StreamSHA256 != ""
	crc := fmt.Sprintf("%08x", w.crc)
	if w.cur == nil {
		k := w.kept[w.n]
		if k.Size != w.size || k.Meta.PieceCRC32C != crc || isLast {
			return objstore.Object{}, hint.Wrap(fmt.Errorf("%s: stored by an interrupted run with other bytes than this run's", w.where(w.n)),
				fmt.Sprintf("delete the stream's pieces (bsrm --incomplete %s) and run again", w.st.Location().DirString()))
		}
		return k, nil
	}
	m := w.meta
	if isLast {
		m = last
	}
	if w.n > 1 || !isLast {
		m.Piece, m.PieceCRC32C = w.n, crc
	}
	if w.n > 1 && isLast {
		m.Pieces, m.SetSize = w.n, w.total
	}
	p := w.cur
	w.cur = nil
	o, err := p.Close(m)
	if errors.Is(err, objstore.ErrExists) && w.n > 1 {
		return o, hint.Wrap(err, fmt.Sprintf("a piece of another run is stored there: delete the stream's pieces (bsrm --incomplete %s) and run again", w.st.Location().DirString()))
	}
	return o, err
}

// Close stores the last piece with the stream's digest and returns the
// stream's object: the first piece, with the set's size and metadata.
func (w *pieceWriter) Close(meta objstore.Meta) (objstore.Object, error) {
	o, err := w.finish(meta)
	if err != nil || w.n == 1 {
		return o, err
	}
	head, err := w.st.Stat(w.ctx, w.key.String())
	if err != nil {
		return objstore.Object{}, err
	}
	set, err := objstore.ResolveSet(w.ctx, w.st, w.key.String(), head)
	if err != nil {
		return objstore.Object{}, err
	}
	head.Size, head.Meta = set.Size, set.Meta
	return head, nil
}

// Abort drops the piece being stored (an S3 upload stays to resume).
func (w *pieceWriter) Abort() {
	if w.cur != nil {
		w.cur.Abort()
		w.cur = nil
	}
}

// keptPieces returns the pieces an interrupted run stored of the stream
// whose first piece head is stored, for this run to check rather than
// send: when the encoding reproduces the same bytes (no age, no filter).
// Otherwise, or when the pieces are not in order, they are deleted (the
// store's lock is held, and a set without its last piece is no stored
// stream) and the stream is stored again.
func keptPieces(ctx context.Context, env *cli.Env, st objstore.Store, k objkey.Key, head objstore.Object, enc stage.Encoding) (map[int]objstore.Object, error) {
	where := st.Location().DirString() + k.String()
	kept := map[int]objstore.Object{1: head}
	ok := len(enc.Recipients) == 0 && len(enc.Filters) == 0 && head.Meta.Encoding == k.Encoding()
	for n := 2; ok && n <= objkey.MaxPieces; n++ {
		o, err := st.Stat(ctx, k.PieceKey(n))
		if errors.Is(err, objstore.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		if o.Meta.Piece == 0 && !o.Meta.Complete() {
			// Completed and cut short before its metadata: sent again.
			if err := objstore.DeleteUndigested(ctx, st, o.Key); err != nil {
				return nil, err
			}
			break
		}
		ok = o.Meta.StoredPiece() && o.Meta.Piece == n && o.Meta.Pieces == 0 && o.Meta.Encoding == head.Meta.Encoding
		kept[n] = o
	}
	if ok {
		env.Log.Info(fmt.Sprintf("%s: resuming a stream stored as several objects: %d piece(s) stored", where, len(kept)))
		return kept, nil
	}
	env.Log.Warn(fmt.Sprintf("%s: pieces of an interrupted run that this run cannot reproduce (age, a filter, or out of order): deleting them, storing the stream again", where))
	keys, err := objstore.SetKeys(ctx, st, k.String())
	if err != nil {
		return nil, err
	}
	return nil, st.Delete(ctx, append(keys, k.String())...)
}
