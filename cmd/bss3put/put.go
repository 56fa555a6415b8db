// How bss3put works: it splits stdin at stream boundaries, encodes each
// stream and stores it as one object.

package bss3put

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/stage"
	"github.com/buttersink/buttersink/lib/units"
	"github.com/buttersink/buttersink/lib/uuid"
)

// PutOptions are bss3put's settings.
type PutOptions struct {
	// Dst is the store directory (s3:// or file://).
	Dst      location.Location
	Store    objstore.Options
	Encoding stage.Encoding
	// PartSize 0 = automatic; Concurrency = parts in flight.
	PartSize    int64
	Concurrency int
	// MemoryLimit keeps the Go heap within the bound bss3put(1) gives; it
	// is a setting of the whole process (debug.SetMemoryLimit).
	MemoryLimit bool
	// Lock is how to take the store's writers' lock (lib/lock).
	Lock lock.Options
	// MaxObjectSize is the size above which a stream is stored as
	// several objects; 0 is S3's limit, objstore.MaxObjectSize.
	MaxObjectSize int64
	// meter counts the streams read (nil: none).
	meter *progress.Meter
	// Stats, when set, counts what is stored.
	Stats *metrics.Stats
}

func (o PutOptions) maxObjectSize() int64 {
	if o.MaxObjectSize > 0 {
		return o.MaxObjectSize
	}
	return objstore.MaxObjectSize
}

// memoryBase is the Go memory bss3put allows itself beside its part
// buffers: the bound it documents is n × part size + 64 MiB of RSS, of
// which the binary's own pages take about 12 MiB outside the Go limit.
// Without a limit, the garbage of a long run may take the heap to twice
// what is live.
const memoryBase = 48 << 20

// memoryLimit raises the Go memory limit as the part buffers grow.
type memoryLimit struct{ base, parts int64 }

func (m *memoryLimit) setParts(n int64) {
	m.parts = max(m.parts, n)
	debug.SetMemoryLimit(m.base + m.parts)
}

// Put reads concatenated send streams from env.Stdin and stores each as one
// object, printing its listing record when it is complete.
func Put(ctx context.Context, env *cli.Env, opts PutOptions) (rerr error) {
	if !opts.Dst.IsObjectStore() {
		return cli.UsageError("%s: not an object store (want s3://bucket/prefix/ or file:///dir/)", opts.Dst)
	}
	if opts.Dst.Snapshot != "" {
		return cli.UsageError("%s: the destination is a directory: end it with '/'", opts.Dst)
	}
	if cli.IsTerminal(env.Stdin) {
		return hint.Wrap(cli.UsageError("stdin is a terminal, not a send stream"), "pipe a stream in: bssend ... | "+env.Name+" "+opts.Dst.String())
	}
	st, err := stores.Open(ctx, opts.Dst, opts.Store)
	if err != nil {
		return err
	}
	// One writer at a time (bss3put, bsrm): an object another run stored
	// meanwhile is found complete and skipped.
	lk, err := objstore.Lock(ctx, st, opts.Lock, true)
	if err != nil {
		return err
	}
	defer func() {
		if lost := lk.Lost(); lost != nil {
			rerr = lost
		}
		if err := lk.Release(); err != nil && rerr == nil {
			rerr = err
		}
	}()
	ctx = lk.Context()
	// A GOMEMLIMIT in the environment wins.
	var partMemory func(int64)
	if opts.MemoryLimit && os.Getenv("GOMEMLIMIT") == "" {
		m := &memoryLimit{base: memoryBase + opts.Encoding.ExtraMemory()}
		m.setParts(0)
		partMemory = m.setParts
	}
	if opts.meter = env.Meter(progress.RoleSink); opts.meter != nil {
		defer opts.meter.Close()
	}
	out := jsonl.NewWriter(env.Stdout)
	rd := sendstream.NewReaderSize(ctxReader{ctx, env.Stdin}, readBuffer(opts.Encoding))
	var stored, skipped int
	var bytesIn int64
	start := time.Now()
	for {
		s, err := rd.Next()
		if err == io.EOF || errors.Is(err, sendstream.ErrEmpty) {
			// No stream at all is an empty plan: nothing to store.
			break
		}
		if err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
		if s.Resume != nil {
			// The rest of a stream that a receiver holds in part: stored,
			// it would look like a snapshot and restore none.
			return hint.Wrap(fmt.Errorf("stdin: stream at byte %d: a resumed stream (the rest of %s from byte %d), which only bsrecv takes", s.Offset, s.Subvol.Path, s.Resume.Offset),
				"send the whole stream: bssend without --resume, or plan with bsplan --no-resume")
		}
		rec, skip, err := putStream(ctx, env, st, s, opts, partMemory)
		if err != nil {
			return err
		}
		if skip {
			skipped++
		} else {
			stored++
		}
		bytesIn += s.Size()
		if st := opts.Stats; st != nil {
			st.BytesSent += s.Size()
			if !skip {
				st.SnapshotsSent++
				if rec.Size != nil {
					st.BytesStored += *rec.Size
				}
			}
		}
		if err := out.Write(rec); err != nil {
			return fmt.Errorf("stdout: %w", err)
		}
	}
	if env.Verbose > 0 {
		d := time.Since(start)
		env.Log.Info(fmt.Sprintf("stored %d object(s), %d already stored, %s read in %s (%s/s)",
			stored, skipped, units.Bytes(bytesIn), d.Round(time.Millisecond), units.Bytes(int64(float64(bytesIn)/max(d.Seconds(), 1e-9)))))
	}
	return nil
}

func putStream(ctx context.Context, env *cli.Env, st objstore.Store, s *sendstream.Stream, opts PutOptions, partMemory func(int64)) (snapshot.Snapshot, bool, error) {
	parent := s.Subvol.CloneUUID
	if !s.Subvol.Snapshot {
		parent = uuid.Zero
	}
	k, err := objkey.NewKey(s.Subvol.Path, s.Subvol.UUID, parent, s.Subvol.CTransID, opts.Encoding.Stages())
	if err != nil {
		return snapshot.Snapshot{}, false, fmt.Errorf("stream at byte %d: %v", s.Offset, err)
	}
	key := k.String()
	where := st.Location().DirString() + key
	if opts.meter != nil {
		opts.meter.Start(k.Path, 0)
	}
	old, err := st.Stat(ctx, key)
	var kept map[int]objstore.Object
	switch {
	case err == nil && old.Meta.Complete():
		return verifyStored(env, s, old, where)
	case err == nil && old.Meta.StoredPiece():
		set, serr := objstore.ResolveSet(ctx, st, key, old)
		if serr == nil {
			old.Size, old.Meta = set.Size, set.Meta
			return verifyStored(env, s, old, where)
		}
		if !errors.Is(serr, objstore.ErrNotWhole) {
			return snapshot.Snapshot{}, false, serr
		}
		if kept, err = keptPieces(ctx, env, st, k, old, opts.Encoding); err != nil {
			return snapshot.Snapshot{}, false, err
		}
	case err == nil:
		// A store never replaces an object: delete it first.
		env.Log.Warn(fmt.Sprintf("%s: exists without complete metadata (an upload cut short); storing it again", where))
		if err := objstore.DeleteUndigested(ctx, st, key); err != nil {
			return snapshot.Snapshot{}, false, err
		}
	case !errors.Is(err, objstore.ErrNotExist):
		return snapshot.Snapshot{}, false, err
	}
	meta := objstore.Meta{Encoding: k.Encoding()}
	// Stopping the upload first makes the stages' writes into it fail at
	// once, so that aborting the stages (which waits for their
	// goroutines) never waits on a part upload.
	pctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	res := newResumer(env, where, opts.Encoding)
	putOpts := objstore.PutOptions{
		PartSize:    opts.PartSize,
		Concurrency: opts.Concurrency,
		Discard:     res.discard(),
		Log:         func(msg string, args ...any) { env.Log.Debug(msg, args...) },
		PartMemory:  partMemory,
	}
	p := &pieceWriter{ctx: ctx, st: st, key: k, limit: opts.maxObjectSize(), meta: meta, kept: kept,
		create: func(n int) (objstore.Putter, error) {
			o := putOpts
			if n == 1 {
				// The age key of a resumed upload is the first piece's.
				o.Started, o.Mismatch = res.started, res.mismatch
			}
			return st.Create(pctx, k.PieceKey(n), meta, o)
		}}
	if err := p.open(1); err != nil {
		return snapshot.Snapshot{}, false, err
	}
	encoding, err := res.prepare()
	if err != nil {
		p.Abort()
		return snapshot.Snapshot{}, false, err
	}
	enc, err := stage.NewEncoder(p, encoding)
	if err != nil {
		p.Abort()
		return snapshot.Snapshot{}, false, err
	}
	h := sha256.New()
	w := sendstream.NewHashWriter(h, enc)
	defer w.Close()
	if opts.meter != nil {
		w.Counted = opts.meter.Add
	}
	_, err = s.WriteTo(w)
	// The writing goroutine is done with the stream and the encoder after
	// Close.
	if werr := w.Close(); werr != nil || err != nil {
		// Order matters: the encoder's goroutines write into p until
		// enc.Abort returns, and p.Abort hands p's buffers back.
		stop(errors.New("aborted"))
		enc.Abort()
		p.Abort()
		if werr != nil {
			return snapshot.Snapshot{}, false, werr
		}
		return snapshot.Snapshot{}, false, streamError(err, where)
	}
	if err := enc.Close(); err != nil {
		stop(errors.New("aborted"))
		enc.Abort()
		p.Abort()
		return snapshot.Snapshot{}, false, fmt.Errorf("%s: %w", where, err)
	}
	if err := ctx.Err(); err != nil {
		// Interrupted after the last byte: the object is not completed.
		p.Abort()
		return snapshot.Snapshot{}, false, err
	}
	meta.StreamSize = s.Size()
	meta.StreamSHA256 = hex.EncodeToString(h.Sum(nil))
	obj, err := p.Close(meta)
	if errors.Is(err, objstore.ErrExists) {
		// Another writer stored the key meanwhile. This run stored
		// nothing and fails, even when the winner's metadata names the
		// same stream: exactly one of two racing writers succeeds (a
		// rerun finds the object and checks it, as in verifyStored). A
		// different stream is named as such.
		if old, serr := st.Stat(ctx, key); serr == nil && old.Meta.Complete() {
			if err := sameStream(old, meta.StreamSize, meta.StreamSHA256, where); err != nil {
				return snapshot.Snapshot{}, false, err
			}
		}
		return snapshot.Snapshot{}, false, err
	}
	if err != nil {
		return snapshot.Snapshot{}, false, err
	}
	env.Log.Debug("stored", "key", where, "stream", s.Size(), "size", obj.Size)
	rec, _ := objstore.Record(obj)
	return rec, false, nil
}

// streamError names what failed: reading the input stream, or writing.
func streamError(err error, where string) error {
	var se *sendstream.Error
	if errors.As(err, &se) {
		return fmt.Errorf("stdin: %w", err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%s: %w", where, err)
}

// verifyStored reads a stream that is already stored under its key and
// checks it is the same (size and SHA-256 of the raw stream): then there is
// nothing to send. A different stream under the same identity is an error,
// never an overwrite.
func verifyStored(env *cli.Env, s *sendstream.Stream, old objstore.Object, where string) (snapshot.Snapshot, bool, error) {
	h := sha256.New()
	if _, err := s.WriteTo(h); err != nil {
		return snapshot.Snapshot{}, false, streamError(err, where)
	}
	if err := sameStream(old, s.Size(), hex.EncodeToString(h.Sum(nil)), where); err != nil {
		return snapshot.Snapshot{}, false, err
	}
	env.Log.Debug("already stored", "key", where)
	rec, _ := objstore.Record(old)
	return rec, true, nil
}

// sameStream checks a stored object holds the raw stream of size bytes
// with SHA-256 sum.
func sameStream(old objstore.Object, size int64, sum, where string) error {
	if size != old.Meta.StreamSize || sum != old.Meta.StreamSHA256 {
		return hint.Wrap(
			fmt.Errorf("%s: already stored with different content (stream %d bytes sha256 %.12s…, stored %d bytes sha256 %.12s…)",
				where, size, sum, old.Meta.StreamSize, old.Meta.StreamSHA256),
			"delete the stored object (bsrm) if the new stream is the right one")
	}
	return nil
}

// readBuffer is the size of each of the input reader's two buffers: the
// hashing and the writing goroutine meet about once per buffer, so bigger
// is better (age stage: 512 KiB 15%, 1 MiB 4% slower than 2 MiB), until
// the bytes fall out of cache before the second goroutine reads them.
// zstd copies them into its own jobs, beside which 1 MiB is best (2 MiB:
// 4% slower).
func readBuffer(e stage.Encoding) int {
	if e.Zstd {
		return 1 << 20
	}
	return 2 << 20
}

// ctxReader stops reading once ctx is done: an interrupt ends the run at
// the next read even when the stages buffer what was written, instead of
// when their buffers reach the store.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
