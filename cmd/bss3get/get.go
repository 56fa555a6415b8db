package bss3get

import (
	"context"
	"crypto/sha256"
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
	if len(opts.Objects) > 0 {
		for _, a := range opts.Objects {
			src, err := g.objectArg(ctx, a)
			if err != nil {
				return err
			}
			if err := g.fetch(ctx, src); err != nil {
				return err
			}
		}
	} else {
		if cli.IsTerminal(env.Stdin) {
			return hint.Wrap(cli.UsageError("no objects given and stdin is a terminal"), "pipe plan steps in (bsplan s3://b/p/ /dst/ | "+env.Name+") or name objects as arguments")
		}
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
			src, err := g.stepSource(ctx, &st, jr.Line())
			if err != nil {
				return err
			}
			if err := g.fetch(ctx, src); err != nil {
				return err
			}
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
// snapshot at the receiver.
func (g *getter) fetch(ctx context.Context, src source) error {
	where := src.store.Location().DirString() + src.key
	k, err := objkey.ParseKey(src.key)
	if err != nil {
		return err
	}
	rc, obj, err := src.store.Open(ctx, src.key, objstore.GetOptions{Concurrency: g.opts.Concurrency, ChunkSize: g.opts.ChunkSize})
	if err != nil {
		return err
	}
	defer rc.Close()
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
	counted := &countReader{r: rc}
	dec, err := stage.NewDecoder(counted, stages, g.opts.Decoding)
	if err != nil {
		if errors.Is(err, stage.ErrWrongIdentity) {
			return hint.Wrap(fmt.Errorf("%s: wrong age identity: %w", where, err), "give the identity file matching the recipient used by bss3put (--age-identity)")
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	defer dec.Close()
	// Two buffers, for hw's goroutine; of 512 KiB: bigger ones, written
	// to a pipe, cost more than they save here.
	rd := sendstream.NewReaderSize(dec, 512<<10)
	s, err := rd.Next()
	if err != nil {
		return g.corrupt(where, err)
	}
	if s.Resume != nil {
		return fmt.Errorf("%s: corrupt: holds a resumed stream, not a whole one", where)
	}
	if k.Format != objkey.FormatBtrfs2s3 && s.Subvol.UUID != k.UUID ||
		k.Format == objkey.FormatBS1 && (s.Subvol.Snapshot != !k.Parent.IsZero() || s.Subvol.Snapshot && s.Subvol.CloneUUID != k.Parent) {
		return fmt.Errorf("%s: holds the stream of %s (parent %s), not what its key says", where, s.Subvol.UUID.Canonical(), s.Subvol.CloneUUID)
	}
	// The stream is exactly what is written out (trailing bytes after END
	// fail the next Next), so hash it there, next to the write.
	out := &holdback{w: g.env.Stdout, hold: make([]byte, 0, sendstream.CmdHeaderLen)}
	h := sha256.New()
	hw := sendstream.NewHashWriter(h, out)
	defer hw.Close()
	if g.env.ShowProgress() {
		meter := progress.New(g.env.Stderr, g.env.Name)
		meter.Start(k.Path, obj.Meta.StreamSize)
		defer meter.Finish()
		hw.Counted = meter.Add
	}
	_, err = s.WriteTo(hw)
	// The writing goroutine is done with the stream and out after Close.
	if werr := hw.Close(); werr != nil {
		return fmt.Errorf("stdout: %w", werr)
	}
	if err != nil {
		return g.corrupt(where, err)
	}
	if _, err := rd.Next(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%s: holds more than one send stream", where)
		}
		return g.corrupt(where, err)
	}
	if obj.Meta.Complete() {
		sum := hex.EncodeToString(h.Sum(nil))
		if s.Size() != obj.Meta.StreamSize || sum != obj.Meta.StreamSHA256 {
			return fmt.Errorf("%s: corrupt: stream sha256 %.12s… (%d bytes) does not match the stored %.12s… (%d bytes)",
				where, sum, s.Size(), obj.Meta.StreamSHA256, obj.Meta.StreamSize)
		}
	}
	if counted.n != obj.Size {
		return fmt.Errorf("%s: read %d bytes of a %d-byte object", where, counted.n, obj.Size)
	}
	if err := out.release(); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	g.count++
	g.bytes += s.Size()
	g.env.Log.Debug("restored", "key", where, "stream", s.Size(), "size", obj.Size)
	return nil
}

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

// holdback passes bytes on except the last len(hold) of them, which wait
// for release: the END command that completes a snapshot at the receiver.
type holdback struct {
	w    io.Writer
	hold []byte
	err  error
}

func (h *holdback) Write(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n := len(p)
	keep := cap(h.hold)
	if len(h.hold)+len(p) <= keep {
		h.hold = append(h.hold, p...)
		return n, nil
	}
	// Emit what can no longer be among the last keep bytes.
	total := len(h.hold) + len(p)
	emit := total - keep
	if emit <= len(h.hold) {
		if _, err := h.w.Write(h.hold[:emit]); err != nil {
			h.err = err
			return 0, err
		}
		h.hold = append(h.hold[:0], h.hold[emit:]...)
		h.hold = append(h.hold, p...)
		return n, nil
	}
	if len(h.hold) > 0 {
		if _, err := h.w.Write(h.hold); err != nil {
			h.err = err
			return 0, err
		}
	}
	cut := emit - len(h.hold)
	if _, err := h.w.Write(p[:cut]); err != nil {
		h.err = err
		return 0, err
	}
	h.hold = append(h.hold[:0], p[cut:]...)
	return n, nil
}

func (h *holdback) release() error {
	if h.err != nil {
		return h.err
	}
	_, err := h.w.Write(h.hold)
	h.hold = h.hold[:0]
	return err
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
