package objstore

// A stream whose encoded bytes exceed the store's largest object is
// stored as a set of pieces: the encoded stream cut at the limit, so that
// the pieces' concatenation is the one object it would have been. Piece
// 1 has the stream's key, piece n its key with ".p<n>" (objkey). Each
// carries Meta.Piece; only the last carries the stream's digest and the
// set's count and size, and it is stored last: a set cut short never
// looks stored.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// MaxObjectSize is the largest object S3 stores (5 TiB), the default
// size at which a stream is cut into pieces.
const MaxObjectSize int64 = 5 << 40

// StoredPiece reports whether m is a piece's complete metadata.
func (m Meta) StoredPiece() bool {
	return m.Format == MetaFormat && m.Piece >= 1 && m.Piece <= objkey.MaxPieces && len(m.PieceCRC32C) == 8
}

// Set is the pieces of one stream, in order.
type Set struct {
	Pieces []Object
	// Meta is the last piece's, with EncodedSize the set's.
	Meta Meta
	Size int64
}

// ErrNotWhole is the error of ResolveSet for a set that is not whole
// (errors.Is): other errors are the store's.
var ErrNotWhole = errors.New("set of pieces is not whole")

type notWholeError string

func (e notWholeError) Error() string        { return string(e) }
func (e notWholeError) Is(target error) bool { return target == ErrNotWhole }

func notWhole(format string, args ...any) error {
	return notWholeError(fmt.Sprintf(format, args...))
}

// ResolveSet finds the pieces of the stream whose first piece head was
// read (Stat or Open) under key, reading each piece's metadata (a HEAD
// request each). It is an error unless the set is whole: pieces 2 to n
// stored in order, each naming its place and the head's encoding, the
// last with the digest, the count n and the sum of the sizes.
func ResolveSet(ctx context.Context, st Store, key string, head Object) (Set, error) {
	where := st.Location().DirString() + key
	k, err := objkey.ParseKey(key)
	if err != nil {
		return Set{}, notWhole("%v", err)
	}
	if k.Piece != 0 || !head.Meta.StoredPiece() || head.Meta.Piece != 1 {
		return Set{}, notWhole("%s: not the first piece of a stream stored as several objects", where)
	}
	set := Set{Pieces: []Object{head}, Size: head.Size}
	for n := 2; ; n++ {
		if n > objkey.MaxPieces {
			return Set{}, notWhole("%s: more than %d pieces", where, objkey.MaxPieces)
		}
		pk := k.PieceKey(n)
		o, err := st.Stat(ctx, pk)
		if errors.Is(err, ErrNotExist) {
			return Set{}, notWhole("%s: incomplete: piece %d of the stream (%s) is not stored", where, n, pk)
		}
		if err != nil {
			return Set{}, err
		}
		m := o.Meta
		if !m.StoredPiece() || m.Piece != n || m.Encoding != head.Meta.Encoding {
			return Set{}, notWhole("%s: piece %s: its metadata is not that of piece %d of this stream", where, pk, n)
		}
		set.Pieces = append(set.Pieces, o)
		set.Size += o.Size
		if m.Pieces == 0 {
			continue
		}
		if m.Pieces != n || !m.Complete() || m.SetSize != set.Size || m.EncodedSize != o.Size {
			return Set{}, notWhole("%s: piece %s: its metadata (%d pieces, %d bytes) does not match the %d pieces of %d bytes stored", where, pk, m.Pieces, m.SetSize, n, set.Size)
		}
		set.Meta = m
		set.Meta.EncodedSize = set.Size
		return set, nil
	}
}

// OpenSet reads a resolved set's pieces one after the other as one
// stream. Its Object is the first piece's with the set's size and meta.
func OpenSet(ctx context.Context, st Store, set Set, first io.ReadCloser, opts GetOptions) (io.ReadCloser, Object) {
	obj := set.Pieces[0]
	obj.Size, obj.Meta = set.Size, set.Meta
	return &setReader{ctx: ctx, st: st, set: set, cur: first, opts: opts}, obj
}

type setReader struct {
	ctx  context.Context
	st   Store
	set  Set
	opts GetOptions
	cur  io.ReadCloser
	n    int   // index of cur
	read int64 // bytes of cur read
}

func (r *setReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			return 0, io.EOF
		}
		n, err := r.cur.Read(p)
		r.read += int64(n)
		if err != io.EOF {
			return n, err
		}
		want := r.set.Pieces[r.n]
		if r.read != want.Size {
			return n, fmt.Errorf("%s%s: read %d bytes of a %d-byte piece", r.st.Location().DirString(), want.Key, r.read, want.Size)
		}
		r.cur.Close()
		r.cur = nil
		if r.n++; r.n < len(r.set.Pieces) {
			next, o, err := r.st.Open(r.ctx, r.set.Pieces[r.n].Key, r.opts)
			if err != nil {
				return n, err
			}
			if o.Size != r.set.Pieces[r.n].Size {
				next.Close()
				return n, fmt.Errorf("%s%s: piece replaced while reading", r.st.Location().DirString(), o.Key)
			}
			r.cur, r.read = next, 0
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *setReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

// SetKeys returns the keys of the pieces stored of the stream whose
// first piece is key, beside key itself, the last one first: deleting
// them in that order, a set cut short never looks stored. It reads the
// pieces' metadata until the first one absent or claiming to be last;
// only keys named after key are returned, so a hostile metadata can never
// make a caller delete another object.
func SetKeys(ctx context.Context, st Store, key string) ([]string, error) {
	k, err := objkey.ParseKey(key)
	if err != nil || k.Format != objkey.FormatBS1 || k.Piece != 0 {
		return nil, nil
	}
	var keys []string
	for n := 2; n <= objkey.MaxPieces; n++ {
		o, err := st.Stat(ctx, k.PieceKey(n))
		if errors.Is(err, ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, o.Key)
		if o.Meta.Pieces != 0 {
			break
		}
	}
	for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
		keys[i], keys[j] = keys[j], keys[i]
	}
	return keys, nil
}

// listSets takes the pieces of streams stored as several objects out of
// a listing: it returns the other objects, and one object per set that is
// whole (ResolveSet), with the set's size and metadata. Pieces of a set
// that is not whole, and later pieces with no first one, are not stored
// streams and are left out.
func listSets(ctx context.Context, st Store, objs []Object) (rest, sets []Object, err error) {
	heads := map[string]bool{}
	for _, o := range objs {
		if k, err := objkey.ParseKey(o.Key); err == nil && k.Piece != 0 {
			heads[k.Head().String()] = true
		}
	}
	if len(heads) == 0 {
		return objs, nil, nil
	}
	for _, o := range objs {
		k, err := objkey.ParseKey(o.Key)
		switch {
		case err == nil && k.Piece != 0:
		case heads[o.Key]:
			h, err := st.Stat(ctx, o.Key)
			if errors.Is(err, ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			if h.Meta.Piece == 0 {
				// A stream stored whole, beside stray later pieces.
				rest = append(rest, o)
				continue
			}
			set, err := ResolveSet(ctx, st, o.Key, h)
			if errors.Is(err, ErrNotWhole) {
				continue // not a stored stream
			}
			if err != nil {
				return nil, nil, err
			}
			h.Size, h.Meta = set.Size, set.Meta
			sets = append(sets, h)
		default:
			rest = append(rest, o)
		}
	}
	return rest, sets, nil
}

// IncompleteSet is what is stored of a stream stored as several objects
// whose set is not whole (an interrupted bss3put): no stored stream.
type IncompleteSet struct {
	// Key is the stream's key (its first piece, stored or not).
	Key string
	// Keys are the pieces stored, the last first.
	Keys []string
	Size int64
	// Modified is when the newest piece was stored.
	Modified time.Time
}

// IncompleteSets returns st's incomplete sets whose newest piece is older
// than now-olderThan. It reads the metadata of the first pieces (a HEAD
// request each) and of their sets.
func IncompleteSets(ctx context.Context, st Store, olderThan time.Duration) ([]IncompleteSet, error) {
	objs, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	byKey := map[string]Object{}
	tails := map[string][]Object{}
	for _, o := range objs {
		byKey[o.Key] = o
		if k, err := objkey.ParseKey(o.Key); err == nil && k.Piece != 0 {
			h := k.Head().String()
			tails[h] = append(tails[h], o)
		}
	}
	// A first piece with no later one yet only its metadata tells.
	for _, o := range objs {
		if k, err := objkey.ParseKey(o.Key); err == nil && k.Format == objkey.FormatBS1 && k.Piece == 0 && (o.Multipart || o.Meta.Piece != 0) {
			if _, ok := tails[o.Key]; !ok {
				tails[o.Key] = nil
			}
		}
	}
	cutoff := time.Now().Add(-olderThan)
	var out []IncompleteSet
	for key, ts := range tails {
		set := IncompleteSet{Key: key}
		add := func(o Object) {
			set.Keys = append(set.Keys, o.Key)
			set.Size += o.Size
			if o.Modified.After(set.Modified) {
				set.Modified = o.Modified
			}
		}
		piece := func(o Object) int { k, _ := objkey.ParseKey(o.Key); return k.Piece }
		sort.Slice(ts, func(i, j int) bool { return piece(ts[i]) > piece(ts[j]) })
		for _, o := range ts {
			add(o)
		}
		if h, ok := byKey[key]; ok {
			ho, err := st.Stat(ctx, key)
			switch {
			case errors.Is(err, ErrNotExist):
			case err != nil:
				return nil, err
			case !ho.Meta.StoredPiece() || ho.Meta.Piece != 1:
				// A whole stream, or not ours: never deleted here.
				if len(ts) == 0 {
					continue
				}
			default:
				_, err := ResolveSet(ctx, st, key, ho)
				if err == nil {
					continue
				}
				if !errors.Is(err, ErrNotWhole) {
					return nil, err
				}
				add(h)
			}
		}
		if len(set.Keys) > 0 && set.Modified.Before(cutoff) {
			out = append(out, set)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// PartialSets is the listing records (Partial set) of st's incomplete
// sets (IncompleteSets), of loc's snapshot only when it names one: the
// size is what is stored, the key the stream's.
func PartialSets(ctx context.Context, st Store, loc location.Location) ([]snapshot.Snapshot, error) {
	sets, err := IncompleteSets(ctx, st, 0)
	if err != nil {
		return nil, err
	}
	var out []snapshot.Snapshot
	for _, s := range sets {
		rec, ok := Record(Object{Key: s.Key, Size: s.Size, Modified: s.Modified})
		if !ok || loc.Snapshot != "" && rec.Path != loc.Snapshot {
			continue
		}
		rec.Partial = true
		out = append(out, rec)
	}
	return out, nil
}
