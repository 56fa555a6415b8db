package bss3get

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/stage"
	"github.com/buttersink/buttersink/lib/units"
	"golang.org/x/sys/unix"
)

// GetOptions are bss3get's settings.
type GetOptions struct {
	// Objects are object locations given as arguments; when empty, plan
	// steps are read from stdin.
	Objects  []string
	Store    objstore.Options
	Decoding stage.Decoding
	// Concurrency and ChunkSize of the ranged GETs.
	Concurrency int
	ChunkSize   int64
	// RestoreTier, when set, makes archived objects be restored (for
	// RestoreDays days) instead of failing the run: see checkArchived.
	RestoreTier string
	RestoreDays int
}

// source is one object to fetch.
type source struct {
	store objstore.Store
	key   string
}

// Get writes the raw send streams of the objects, in order, to env.Stdout.
func Get(ctx context.Context, env *cli.Env, opts GetOptions) error {
	if cli.IsTerminal(env.Stdout) {
		return hint.Wrap(cli.UsageError("stdout is a terminal, not a place for a send stream"), "pipe it: "+env.Name+" ... | bsrecv /dir/")
	}
	// A 1 MiB pipe (the default limit for users) instead of 64 KiB lets
	// the reader downstream take larger pieces with far fewer wake-ups;
	// anything but a pipe refuses, and a pipe that stays small works too.
	unix.FcntlInt(env.Stdout.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	g := &getter{env: env, opts: opts, stores: map[string]objstore.Store{}}
	err := g.get(ctx)
	if err != nil && g.count > 0 {
		// The streams written so far are whole: a reader would take them
		// for the whole chain (bsrecv --tar would archive the snapshot
		// before the one wanted). A stream header with nothing after it
		// makes every reader fail instead.
		env.Stdout.Write(sendstream.AppendHeader(nil, 1))
	}
	return err
}

func (g *getter) get(ctx context.Context) error {
	env, opts := g.env, g.opts
	start := time.Now()
	if g.meter = env.Meter(progress.RoleSource); g.meter != nil {
		defer g.meter.Close()
	}
	// Every object is named before the first is read: archived ones are
	// found (and their restores requested) before any stream is written.
	var srcs []source
	if len(opts.Objects) > 0 {
		if g.meter != nil {
			g.meter.Expect(len(opts.Objects), 0)
		}
		for _, a := range opts.Objects {
			src, err := g.objectArg(ctx, a)
			if err != nil {
				return err
			}
			srcs = append(srcs, src)
		}
	} else {
		if cli.IsTerminal(env.Stdin) {
			return hint.Wrap(cli.UsageError("no objects given and stdin is a terminal"), "pipe plan steps in (bsplan s3://b/p/ /dst/ | "+env.Name+") or name objects as arguments")
		}
		// The whole plan first: its count and sizes are the progress
		// line's "n of N" and total.
		type numbered struct {
			step plan.Step
			line int
		}
		var steps []numbered
		var size int64
		jr := jsonl.NewReader(env.Stdin, "stdin")
		for {
			var st plan.Step
			err := jr.Next(&st)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			steps = append(steps, numbered{st, jr.Line()})
			size += max(st.Size, 0)
		}
		if g.meter != nil {
			g.meter.Expect(len(steps), size)
		}
		for _, st := range steps {
			src, err := g.stepSource(ctx, &st.step, st.line)
			if err != nil {
				return err
			}
			srcs = append(srcs, src)
		}
	}
	if err := g.checkArchived(ctx, srcs); err != nil {
		return err
	}
	for _, src := range srcs {
		if err := g.fetch(ctx, src); err != nil {
			if errors.Is(err, objstore.ErrArchived) && opts.RestoreTier != "" {
				// The listing did not show it archived; the GET did.
				return g.requestRestores(ctx, []source{src}, []objstore.Object{{Key: src.key}}, 0)
			}
			return err
		}
	}
	if env.Verbose > 0 {
		d := time.Since(start)
		env.Log.Info(fmt.Sprintf("restored %d stream(s), %s in %s (%s/s)", g.count, units.Bytes(g.bytes),
			d.Round(time.Millisecond), units.Bytes(int64(float64(g.bytes)/max(d.Seconds(), 1e-9)))))
	}
	return nil
}

type getter struct {
	env    *cli.Env
	opts   GetOptions
	stores map[string]objstore.Store
	count  int
	bytes  int64
	meter  *progress.Meter // nil: no progress shown
}

func (g *getter) store(ctx context.Context, loc location.Location) (objstore.Store, error) {
	k := loc.DirString()
	if st, ok := g.stores[k]; ok {
		return st, nil
	}
	st, err := stores.Open(ctx, loc, g.opts.Store)
	if err != nil {
		return nil, err
	}
	g.stores[k] = st
	return st, nil
}

func (g *getter) stepSource(ctx context.Context, st *plan.Step, line int) (source, error) {
	if st.Op != plan.OpSend {
		return source{}, fmt.Errorf("stdin line %d: %q step: %s restores only send steps", line, st.Op, g.env.Name)
	}
	loc, err := location.Parse(st.Src)
	if err != nil {
		return source{}, fmt.Errorf("stdin line %d: %v", line, err)
	}
	if !loc.IsObjectStore() {
		return source{}, fmt.Errorf("stdin line %d: source %s is not an object store; use bssend for it", line, st.Src)
	}
	if st.Snapshot.Key == "" {
		return source{}, fmt.Errorf("stdin line %d: step has no object key", line)
	}
	s, err := g.store(ctx, loc)
	if err != nil {
		return source{}, err
	}
	return source{store: s, key: st.Snapshot.Key}, nil
}

// objectArg resolves an object location: the store directory is the
// longest prefix of it that leaves a key in a known format.
func (g *getter) objectArg(ctx context.Context, arg string) (source, error) {
	loc, err := location.Parse(arg)
	if err != nil {
		return source{}, cli.UsageError("%v", err)
	}
	if !loc.IsObjectStore() || loc.Snapshot == "" {
		return source{}, cli.UsageError("%s: not an object (want s3://bucket/prefix/path/<key> or file:///dir/path/<key>)", arg)
	}
	full := loc.Path()
	root := ""
	if loc.Scheme == location.File {
		full, root = strings.TrimPrefix(full, "/"), "/"
	}
	comps := strings.Split(full, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		key := strings.Join(comps[i:], "/")
		if _, err := objkey.ParseKey(key); err != nil {
			continue
		}
		dirLoc := loc
		dirLoc.Snapshot = ""
		dirLoc.Dir = root + strings.Join(comps[:i], "/")
		s, err := g.store(ctx, dirLoc)
		if err != nil {
			return source{}, err
		}
		return source{store: s, key: key}, nil
	}
	return source{}, hint.Wrap(fmt.Errorf("%s: not a buttersink, buttersink-v0 or btrfs2s3 object key", arg),
		"name an object by its key, as bsls --json prints it, or restore a snapshot with bsplan STORE/NAME DIR/ | bss3get")
}

// fetch writes one object's raw stream to stdout. The stream's final
// command (END) is held back until the whole object has been read and its
// SHA-256 matched, so a corrupt or truncated object never completes a
// snapshot at the receiver (see pipeline).
func (g *getter) fetch(ctx context.Context, src source) error {
	where := src.store.Location().DirString() + src.key
	k, err := objkey.ParseKey(src.key)
	if err != nil {
		return err
	}
	if k.Piece != 0 {
		return hint.Wrap(fmt.Errorf("%s: a piece of a stream stored as several objects, not a stream", where),
			"name the stream's first piece: "+src.store.Location().DirString()+k.Head().String())
	}
	gopts := objstore.GetOptions{Concurrency: g.opts.Concurrency, ChunkSize: g.opts.ChunkSize, Held: held}
	rc, obj, err := src.store.Open(ctx, src.key, gopts)
	if err != nil {
		return err
	}
	defer func() { rc.Close() }()
	if obj.Meta.Piece != 0 {
		// The first of several objects: they are read one after the
		// other as the one object they were cut from, and verified as
		// one stream.
		set, err := objstore.ResolveSet(ctx, src.store, src.key, obj)
		if err != nil {
			return err
		}
		rc, obj = objstore.OpenSet(ctx, src.store, set, rc, gopts)
	}
	stages := k.Stages
	if k.Format == objkey.FormatBtrfs2s3 {
		// btrfs2s3's pipe_through leaves no trace in the key: the user's
		// --filter commands say what to undo.
		for range g.opts.Decoding.Filters {
			stages = append(stages, stage.FilterStage("user"))
		}
	}
	if obj.Meta.Complete() && obj.Meta.EncodedSize != obj.Size {
		return fmt.Errorf("%s: object is %d bytes, its metadata says %d: truncated or replaced", where, obj.Size, obj.Meta.EncodedSize)
	}
	if k.Format == objkey.FormatBS1 && !obj.Meta.Complete() {
		g.env.Log.Warn(fmt.Sprintf("%s: no sha256 metadata; verifying command checksums only", where))
	}
	// A raw stream is verified and written from the buffers the GETs read
	// it into; a decoder's output is cut into chunks of its own.
	counted := &countReader{r: rc}
	var chunks chunkSource
	cr, raw := rc.(objstore.ChunkReader)
	raw = raw && len(stages) == 0
	if raw {
		chunks = cr
	} else {
		dec, err := stage.NewDecoder(counted, stages, g.opts.Decoding)
		if err != nil {
			if errors.Is(err, stage.ErrWrongIdentity) {
				return hint.Wrap(fmt.Errorf("%s: wrong age identity: %w", where, err), "give the identity file matching the recipient used by bss3put (--age-identity)")
			}
			return fmt.Errorf("%s: %w", where, err)
		}
		defer dec.Close()
		chunks = newReaderChunks(dec, decodedChunk)
	}
	p := &pipeline{src: chunks, w: g.env.Stdout}
	p.checkHead = func(s *sendstream.Head) error {
		if k.Format != objkey.FormatBtrfs2s3 && s.UUID != k.UUID ||
			k.Format == objkey.FormatBS1 && (s.Snapshot != !k.Parent.IsZero() || s.Snapshot && s.CloneUUID != k.Parent) {
			return fmt.Errorf("%s: holds the stream of %s (parent %s), not what its key says", where, s.UUID.Canonical(), s.CloneUUID)
		}
		return nil
	}
	var size int64
	p.checkEnd = func(r result) error {
		size = r.size
		if obj.Meta.Complete() {
			sum := hex.EncodeToString(r.sum)
			if r.size != obj.Meta.StreamSize || sum != obj.Meta.StreamSHA256 {
				return fmt.Errorf("%s: corrupt: stream sha256 %.12s… (%d bytes) does not match the stored %.12s… (%d bytes)",
					where, sum, r.size, obj.Meta.StreamSHA256, obj.Meta.StreamSize)
			}
		}
		if !raw {
			r.read = counted.n
		}
		if r.read != obj.Size {
			return fmt.Errorf("%s: read %d bytes of a %d-byte object", where, r.read, obj.Size)
		}
		return nil
	}
	if g.meter != nil {
		g.meter.Start(k.Path, obj.Meta.StreamSize)
		p.counted = g.meter.Add
	}
	if err := p.run(); err != nil {
		var we errWrite
		if errors.As(err, &we) {
			return fmt.Errorf("stdout: %w", we.err)
		}
		return g.corrupt(where, err)
	}
	g.count++
	g.bytes += size
	g.env.Log.Debug("restored", "key", where, "stream", size, "size", obj.Size)
	return nil
}

// decodedChunk is the size of the chunks a decoder's output is cut into.
const decodedChunk = 1 << 20

func (g *getter) corrupt(where string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var se *sendstream.Error
	if errors.As(err, &se) && se.Err == nil {
		return fmt.Errorf("%s: corrupt: %v", where, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: corrupt: truncated", where)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, where) {
		msg = where + ": " + msg
	}
	return errors.New(msg)
}

type countReader struct {
	r io.Reader
	n int64
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}
