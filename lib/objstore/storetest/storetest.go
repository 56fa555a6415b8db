// Package storetest is the contract every objstore.Store keeps, as one Go
// test per behaviour: Run it against a store implementation. The file
// store runs it in its own tests (lib/objstore/filestore); the S3 store
// against MinIO in test/storetest_test.go.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Config describes the store under test.
type Config struct {
	// Open returns a new, empty store; each behaviour opens its own.
	Open func(t *testing.T) objstore.Store
	// Resumable says an upload stopped by Putter.Abort (without
	// PutOptions.Discard) stays, and the next Create of its key resumes
	// it (S3 multipart uploads). Otherwise Abort always discards.
	Resumable bool
}

// PartSize is the part size the behaviours use: the smallest S3 takes.
// Objects bigger than it are stored in several parts.
const PartSize = 5 << 20

type behaviour struct {
	name string
	run  func(t *testing.T, c Config) error
}

var behaviours = []behaviour{
	{"RoundTrip", roundTrip},
	{"RoundTripParts", roundTripParts},
	{"EmptyObject", emptyObject},
	{"List", list},
	{"Missing", missing},
	{"Delete", deleteObjects},
	{"OverwriteRefused", overwriteRefused},
	{"InvalidKeys", invalidKeys},
	{"Resume", resume},
	{"Abort", abortPut},
	{"AbortIncomplete", abortIncomplete},
	{"CancelPut", cancelPut},
	{"CancelGet", cancelGet},
	{"ConcurrentPuts", concurrentPuts},
}

// Run runs every behaviour as a subtest of t. A behaviour returns the
// first expectation it found broken; Run reports it.
func Run(t *testing.T, c Config) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			if err := b.run(t, c); err != nil {
				t.Error(err)
			}
		})
	}
}

// key returns a valid stream key: snapshot path p, a UUID from n.
func key(p string, n byte) string {
	var id uuid.UUID
	id[0], id[15] = 0x3f, n
	k, err := objkey.NewKey(p, id, uuid.Zero, uint64(n), nil)
	if err != nil {
		panic(err)
	}
	return k.String()
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func streamMeta(data []byte) objstore.Meta {
	sum := sha256.Sum256(data)
	return objstore.Meta{Encoding: "zstd", StreamSize: int64(len(data)) + 7, StreamSHA256: hex.EncodeToString(sum[:])}
}

// put stores data under k and checks what Close returns.
func put(ctx context.Context, st objstore.Store, k string, data []byte, opts objstore.PutOptions) error {
	meta := streamMeta(data)
	p, err := st.Create(ctx, k, objstore.Meta{Encoding: meta.Encoding}, opts)
	if err != nil {
		return fmt.Errorf("create %s: %w", k, err)
	}
	if n, err := p.Write(data); err != nil || n != len(data) {
		p.Abort()
		return fmt.Errorf("write %s: wrote %d of %d: %w", k, n, len(data), err)
	}
	o, err := p.Close(meta)
	if err != nil {
		return fmt.Errorf("close %s: %w", k, err)
	}
	if o.Key != k || o.Size != int64(len(data)) {
		return fmt.Errorf("close %s: returned key %q size %d, want %q size %d", k, o.Key, o.Size, k, len(data))
	}
	return checkMeta("close "+k, o.Meta, meta, len(data))
}

func checkMeta(what string, got, want objstore.Meta, size int) error {
	if got.Format != "bs1" || got.Encoding != want.Encoding || got.StreamSize != want.StreamSize ||
		got.StreamSHA256 != want.StreamSHA256 || got.EncodedSize != int64(size) || !got.Complete() {
		return fmt.Errorf("%s: metadata %+v, want %+v with format bs1 and encoded size %d", what, got, want, size)
	}
	return nil
}

// get reads k whole and checks it holds data and its metadata.
func get(ctx context.Context, st objstore.Store, k string, data []byte, opts objstore.GetOptions) error {
	rc, o, err := st.Open(ctx, k, opts)
	if err != nil {
		return fmt.Errorf("open %s: %w", k, err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close reader: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", k, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("read %s: %d bytes that differ from the %d stored", k, len(got), len(data))
	}
	if o.Key != k || o.Size != int64(len(data)) {
		return fmt.Errorf("open %s: object key %q size %d", k, o.Key, o.Size)
	}
	return checkMeta("open "+k, o.Meta, streamMeta(data), len(data))
}

// stat checks Stat's answer for a stored k of size bytes.
func stat(ctx context.Context, st objstore.Store, k string, data []byte) error {
	o, err := st.Stat(ctx, k)
	if err != nil {
		return fmt.Errorf("stat %s: %w", k, err)
	}
	if o.Key != k || o.Size != int64(len(data)) {
		return fmt.Errorf("stat %s: key %q size %d, want size %d", k, o.Key, o.Size, len(data))
	}
	if d := time.Since(o.Modified); d < -time.Minute || d > time.Hour {
		return fmt.Errorf("stat %s: modified %v, not recent", k, o.Modified)
	}
	return checkMeta("stat "+k, o.Meta, streamMeta(data), len(data))
}

// listed returns the store's objects by key.
func listed(ctx context.Context, st objstore.Store) (map[string]objstore.Object, error) {
	objs, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	m := map[string]objstore.Object{}
	for _, o := range objs {
		if _, dup := m[o.Key]; dup {
			return nil, fmt.Errorf("list: %s twice", o.Key)
		}
		m[o.Key] = o
	}
	return m, nil
}

// clean checks the store holds exactly the keys given (nil: none) and no
// incomplete upload.
func clean(ctx context.Context, st objstore.Store, keys ...string) error {
	if err := objects(ctx, st, keys...); err != nil {
		return err
	}
	ups, err := st.ListIncomplete(ctx)
	if err != nil {
		return fmt.Errorf("list incomplete: %w", err)
	}
	if len(ups) != 0 {
		return fmt.Errorf("incomplete uploads left: %+v", ups)
	}
	return nil
}

// objects checks List returns exactly the keys given (nil: none).
func objects(ctx context.Context, st objstore.Store, keys ...string) error {
	m, err := listed(ctx, st)
	if err != nil {
		return err
	}
	if len(m) != len(keys) {
		return fmt.Errorf("list: %d objects %v, want %q", len(m), mapKeys(m), keys)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("list: %s missing from %v", k, mapKeys(m))
		}
	}
	return nil
}

func mapKeys(m map[string]objstore.Object) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// absent checks k is neither listed nor found by Stat or Open.
func absent(ctx context.Context, st objstore.Store, k string) error {
	m, err := listed(ctx, st)
	if err != nil {
		return err
	}
	if _, ok := m[k]; ok {
		return fmt.Errorf("%s listed", k)
	}
	if _, err := st.Stat(ctx, k); !errors.Is(err, objstore.ErrNotExist) {
		return fmt.Errorf("stat %s: %v, want ErrNotExist", k, err)
	}
	if rc, _, err := st.Open(ctx, k, objstore.GetOptions{}); !errors.Is(err, objstore.ErrNotExist) {
		if rc != nil {
			rc.Close()
		}
		return fmt.Errorf("open %s: %v, want ErrNotExist", k, err)
	}
	return nil
}

// roundTrip: a small object comes back byte for byte with its metadata,
// and is invisible until Close.
func roundTrip(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	k := key("a b/vol", 1)
	data := random(100 << 10)
	meta := streamMeta(data)
	p, err := st.Create(ctx, k, objstore.Meta{Encoding: meta.Encoding}, objstore.PutOptions{})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := p.Write(data); err != nil {
		p.Abort()
		return fmt.Errorf("write: %w", err)
	}
	if err := absent(ctx, st, k); err != nil {
		p.Abort()
		return fmt.Errorf("before close: %w", err)
	}
	if err := objects(ctx, st); err != nil {
		p.Abort()
		return fmt.Errorf("before close: %w", err)
	}
	o, err := p.Close(meta)
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := checkMeta("close", o.Meta, meta, len(data)); err != nil {
		return err
	}
	if err := stat(ctx, st, k, data); err != nil {
		return err
	}
	if err := get(ctx, st, k, data, objstore.GetOptions{}); err != nil {
		return err
	}
	return clean(ctx, st, k)
}

// roundTripParts: an object of several parts, read back in several
// concurrent chunks, comes back in order.
func roundTripParts(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	k := key("vol", 2)
	data := random(2*PartSize + 12345)
	if err := put(ctx, st, k, data, objstore.PutOptions{PartSize: PartSize, Concurrency: 3}); err != nil {
		return err
	}
	if err := stat(ctx, st, k, data); err != nil {
		return err
	}
	if err := get(ctx, st, k, data, objstore.GetOptions{Concurrency: 3, ChunkSize: 1 << 20}); err != nil {
		return err
	}
	// A chunk size that does not divide the object.
	if err := get(ctx, st, k, data, objstore.GetOptions{Concurrency: 2, ChunkSize: 3<<20 + 1}); err != nil {
		return err
	}
	// A reader closed early stops cleanly.
	rc, _, err := st.Open(ctx, k, objstore.GetOptions{Concurrency: 2, ChunkSize: 1 << 20})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	head := make([]byte, 3<<20)
	if _, err := io.ReadFull(rc, head); err != nil || !bytes.Equal(head, data[:len(head)]) {
		rc.Close()
		return fmt.Errorf("read the head: %v (bytes equal: %v)", err, bytes.Equal(head, data[:len(head)]))
	}
	if err := rc.Close(); err != nil {
		return fmt.Errorf("close early: %w", err)
	}
	return clean(ctx, st, k)
}

// emptyObject: an object of no bytes is stored and read back.
func emptyObject(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	k := key("vol", 3)
	if err := put(ctx, st, k, nil, objstore.PutOptions{}); err != nil {
		return err
	}
	if err := stat(ctx, st, k, nil); err != nil {
		return err
	}
	return get(ctx, st, k, nil, objstore.GetOptions{})
}

// list: a new store lists empty; List returns every object below the
// directory once, with its size, and nothing else.
func list(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	if err := clean(ctx, st); err != nil {
		return fmt.Errorf("new store: %w", err)
	}
	want := map[string][]byte{
		key("vol", 4):         random(10),
		key("vol", 5):         random(20),
		key("a b/c/vol", 6):   random(30),
		key("vol.d/x", 7):     random(40),
		key("vol/.hidden", 8): random(50),
	}
	for k, d := range want {
		if err := put(ctx, st, k, d, objstore.PutOptions{}); err != nil {
			return err
		}
	}
	m, err := listed(ctx, st)
	if err != nil {
		return err
	}
	if len(m) != len(want) {
		return fmt.Errorf("list: %v, want the %d keys put", mapKeys(m), len(want))
	}
	for k, d := range want {
		o, ok := m[k]
		switch {
		case !ok:
			return fmt.Errorf("list: %s missing from %v", k, mapKeys(m))
		case o.Size != int64(len(d)):
			return fmt.Errorf("list: %s size %d, want %d", k, o.Size, len(d))
		case time.Since(o.Modified) > time.Hour || time.Since(o.Modified) < -time.Minute:
			return fmt.Errorf("list: %s modified %v, not recent", k, o.Modified)
		}
		if _, ok := objstore.Record(o); !ok {
			return fmt.Errorf("list: %s is not a stream record", k)
		}
	}
	return nil
}

// missing: Stat and Open of a key never stored say ErrNotExist.
func missing(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	if err := put(ctx, st, key("vol", 9), random(10), objstore.PutOptions{}); err != nil {
		return err
	}
	return absent(ctx, st, key("vol", 10))
}

// deleteObjects: Delete removes what it names and only that; a key that
// is not there is no error.
func deleteObjects(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	a, b, keep := key("d1/vol", 11), key("d2/vol", 12), key("d1/vol", 13)
	for _, k := range []string{a, b, keep} {
		if err := put(ctx, st, k, random(100), objstore.PutOptions{}); err != nil {
			return err
		}
	}
	if err := st.Delete(ctx, a, b, key("d3/vol", 14)); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	for _, k := range []string{a, b} {
		if err := absent(ctx, st, k); err != nil {
			return fmt.Errorf("after delete: %w", err)
		}
	}
	if err := st.Delete(ctx, a); err != nil {
		return fmt.Errorf("delete again: %w", err)
	}
	if err := st.Delete(ctx); err != nil {
		return fmt.Errorf("delete nothing: %w", err)
	}
	return clean(ctx, st, keep)
}

// overwriteRefused: a key already stored is never replaced: Create or
// Close says ErrExists and the stored object stays as it was.
func overwriteRefused(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	k := key("vol", 15)
	old := random(1000)
	if err := put(ctx, st, k, old, objstore.PutOptions{}); err != nil {
		return err
	}
	// A second put in one request, and one in parts (an S3 multipart
	// upload, refused when it completes): neither leaves an upload behind.
	for _, again := range []struct {
		size int
		opts objstore.PutOptions
	}{{2000, objstore.PutOptions{}}, {PartSize + 100, objstore.PutOptions{PartSize: PartSize}}} {
		err := put(ctx, st, k, random(again.size), again.opts)
		if gerr := get(ctx, st, k, old, objstore.GetOptions{}); gerr != nil {
			return fmt.Errorf("stored object changed by a second put of %d bytes (which returned %v): %w", again.size, err, gerr)
		}
		if !errors.Is(err, objstore.ErrExists) {
			return fmt.Errorf("second put of %s (%d bytes): %v, want ErrExists", k, again.size, err)
		}
		if err := clean(ctx, st, k); err != nil {
			return fmt.Errorf("after a refused put of %d bytes: %w", again.size, err)
		}
	}
	// Two writers of one free key: the first to close stores it, the
	// second's Close says ErrExists (the key was free at its Create).
	k2 := key("vol", 14)
	first, second := random(1000), random(1500)
	p1, err := st.Create(ctx, k2, objstore.Meta{}, objstore.PutOptions{})
	if err != nil {
		return fmt.Errorf("create %s: %w", k2, err)
	}
	defer p1.Abort()
	p2, err := st.Create(ctx, k2, objstore.Meta{}, objstore.PutOptions{})
	if err != nil {
		return fmt.Errorf("second create of %s: %w", k2, err)
	}
	defer p2.Abort()
	if _, err := p1.Write(first); err != nil {
		return fmt.Errorf("write %s: %w", k2, err)
	}
	if _, err := p2.Write(second); err != nil {
		return fmt.Errorf("second write of %s: %w", k2, err)
	}
	if _, err := p1.Close(streamMeta(first)); err != nil {
		return fmt.Errorf("close %s: %w", k2, err)
	}
	if _, err := p2.Close(streamMeta(second)); !errors.Is(err, objstore.ErrExists) {
		return fmt.Errorf("second writer's close of %s: %v, want ErrExists", k2, err)
	}
	if err := get(ctx, st, k2, first, objstore.GetOptions{}); err != nil {
		return fmt.Errorf("after the second writer's close: %w", err)
	}
	return clean(ctx, st, k, k2)
}

// badKeys are keys every store refuses, with a *names.Error, before
// touching anything: they would leave the store's directory, cannot be
// stored, or are too long once the store's prefix is added (any store has
// a non-empty prefix or directory).
func badKeys() map[string]string {
	long := strings.Repeat(strings.Repeat("a", 200)+"/", 5) + key("vol", 16)
	return map[string]string{
		"empty":              "",
		"dot-dot":            "../" + key("vol", 16),
		"dot-dot inside":     "vol/../../" + key("x", 16),
		"dot-dot only":       "..",
		"dot":                "./" + key("vol", 16),
		"absolute":           "/" + key("vol", 16),
		"empty component":    strings.Replace(key("a/vol", 16), "/", "//", 1),
		"trailing slash":     key("vol", 16) + "/",
		"NUL":                "vol\x00/" + key("x", 16),
		"newline":            "vol\n/" + key("x", 16),
		"not UTF-8":          "vol\xff/" + key("x", 16),
		"too long":           long[len(long)-names.KeyMax:],
		"component too long": strings.Repeat("v", 256) + "/" + key("x", 16),
	}
}

// invalidKeys: Create, Stat, Open and Delete refuse a bad key the same
// way in every store (a *names.Error for an object key), and nothing
// appears.
func invalidKeys(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	refused := func(op, name, k string, err error) error {
		var ne *names.Error
		if !errors.As(err, &ne) || ne.Kind != names.KindKey {
			return fmt.Errorf("%s of key %s %q: %v, want a *names.Error (%s)", op, name, k, err, names.KindKey)
		}
		return nil
	}
	for name, k := range badKeys() {
		p, err := st.Create(ctx, k, objstore.Meta{}, objstore.PutOptions{})
		if err == nil {
			_, err = p.Write([]byte("x"))
			if err == nil {
				_, err = p.Close(objstore.Meta{})
			}
			p.Abort()
		}
		if e := refused("create", name, k, err); e != nil {
			return e
		}
		_, err = st.Stat(ctx, k)
		if e := refused("stat", name, k, err); e != nil {
			return e
		}
		rc, _, err := st.Open(ctx, k, objstore.GetOptions{})
		if rc != nil {
			rc.Close()
		}
		if e := refused("open", name, k, err); e != nil {
			return e
		}
		if e := refused("delete", name, k, st.Delete(ctx, key("vol", 17), k)); e != nil {
			return e
		}
	}
	return clean(ctx, st)
}

// resume: an upload stopped by Abort without Discard is kept by a
// resumable store, and the next Create of the key resumes it, keeping the
// parts already sent; a store that does not resume leaves nothing.
func resume(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	k := key("vol", 18)
	data := random(2*PartSize + 100)
	sent := make(chan struct{}, 1)
	p, err := st.Create(ctx, k, objstore.Meta{}, objstore.PutOptions{PartSize: PartSize, Log: func(msg string, _ ...any) {
		if msg == "part sent" {
			select {
			case sent <- struct{}{}:
			default:
			}
		}
	}})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := p.Write(data[:PartSize+10]); err != nil {
		p.Abort()
		return fmt.Errorf("write: %w", err)
	}
	if c.Resumable {
		// Abort stops the parts in flight: wait until the first is stored.
		select {
		case <-sent:
		case <-time.After(time.Minute):
			p.Abort()
			return errors.New("the first part was not sent within a minute")
		}
	}
	p.Abort()
	if err := absent(ctx, st, k); err != nil {
		return fmt.Errorf("after abort: %w", err)
	}
	ups, err := st.ListIncomplete(ctx)
	if err != nil {
		return fmt.Errorf("list incomplete: %w", err)
	}
	if !c.Resumable {
		if len(ups) != 0 {
			return fmt.Errorf("store does not resume, yet left %+v", ups)
		}
		return put(ctx, st, k, data, objstore.PutOptions{PartSize: PartSize})
	}
	if len(ups) != 1 || ups[0].Key != k {
		return fmt.Errorf("incomplete uploads %+v, want one of %s", ups, k)
	}
	var mu sync.Mutex
	var log []string
	opts := objstore.PutOptions{PartSize: PartSize, Log: func(msg string, args ...any) {
		mu.Lock()
		log = append(log, msg)
		mu.Unlock()
	}}
	if err := put(ctx, st, k, data, opts); err != nil {
		return fmt.Errorf("resumed put: %w", err)
	}
	kept := 0
	for _, m := range log {
		if m == "part kept" {
			kept++
		}
	}
	if kept != 1 {
		return fmt.Errorf("resumed put kept %d parts, want 1 (log %q)", kept, log)
	}
	if err := get(ctx, st, k, data, objstore.GetOptions{ChunkSize: 1 << 20}); err != nil {
		return err
	}
	return clean(ctx, st, k)
}

// abortPut: an upload aborted with Discard leaves nothing, whatever was
// written; Abort is idempotent and, after Close, keeps the object.
func abortPut(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	for _, n := range []int{0, 100, PartSize + 100} {
		k := key("vol", 19)
		p, err := st.Create(ctx, k, objstore.Meta{}, objstore.PutOptions{PartSize: PartSize, Discard: true})
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		if _, err := p.Write(random(n)); err != nil {
			p.Abort()
			return fmt.Errorf("write: %w", err)
		}
		p.Abort()
		p.Abort()
		if _, err := p.Close(streamMeta(nil)); err == nil {
			return fmt.Errorf("close after abort (%d bytes written) succeeded", n)
		}
		if err := absent(ctx, st, k); err != nil {
			return fmt.Errorf("after abort of %d bytes: %w", n, err)
		}
		if err := clean(ctx, st); err != nil {
			return fmt.Errorf("after abort of %d bytes: %w", n, err)
		}
	}
	k := key("vol", 20)
	data := random(PartSize + 100)
	p, err := st.Create(ctx, k, objstore.Meta{}, objstore.PutOptions{PartSize: PartSize, Discard: true})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := p.Write(data); err != nil {
		p.Abort()
		return fmt.Errorf("write: %w", err)
	}
	if _, err := p.Close(streamMeta(data)); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	p.Abort()
	if err := get(ctx, st, k, data, objstore.GetOptions{}); err != nil {
		return fmt.Errorf("after abort following close: %w", err)
	}
	return clean(ctx, st, k)
}

// abortIncomplete: an upload its writer abandoned (killed) is listed by
// ListIncomplete under its key, never as an object, and Store.Abort
// discards it; aborting it again is no error.
func abortIncomplete(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	k := key("dir/vol", 21)
	p, err := st.Create(ctx, k, objstore.Meta{}, objstore.PutOptions{PartSize: PartSize})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := p.Write(random(PartSize + 100)); err != nil {
		p.Abort()
		return fmt.Errorf("write: %w", err)
	}
	if c.Resumable {
		p.Abort() // the parts stay for a resume
	} else {
		defer p.Abort() // the writer just stops, as if killed
	}
	ups, err := st.ListIncomplete(ctx)
	if err != nil {
		return fmt.Errorf("list incomplete: %w", err)
	}
	if len(ups) != 1 || ups[0].Key != k || ups[0].ID == "" || time.Since(ups[0].Started) > time.Hour {
		return fmt.Errorf("incomplete uploads %+v, want one of %s started now", ups, k)
	}
	if err := absent(ctx, st, k); err != nil {
		return err
	}
	if err := objects(ctx, st); err != nil {
		return fmt.Errorf("with an upload abandoned: %w", err)
	}
	if done, err := objstore.AbortIncomplete(ctx, st, time.Hour); err != nil || len(done) != 0 {
		return fmt.Errorf("AbortIncomplete(1h) = %+v, %v; want nothing (the upload is new)", done, err)
	}
	time.Sleep(1100 * time.Millisecond)
	done, err := objstore.AbortIncomplete(ctx, st, time.Second)
	if err != nil || len(done) != 1 || done[0].Key != k {
		return fmt.Errorf("AbortIncomplete(1s) = %+v, %v; want the upload of %s", done, err, k)
	}
	if err := st.Abort(ctx, ups[0]); err != nil {
		return fmt.Errorf("abort again: %w", err)
	}
	return clean(ctx, st)
}

// cancelPut: a put whose context is cancelled midway fails, and with
// Discard leaves no object and no upload, neither after Close nor after
// Abort.
func cancelPut(t *testing.T, c Config) error {
	for _, closeIt := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		st := c.Open(t)
		k := key("vol", 22)
		p, err := st.Create(ctx, k, objstore.Meta{}, objstore.PutOptions{PartSize: PartSize, Discard: true})
		if err != nil {
			cancel()
			return fmt.Errorf("create: %w", err)
		}
		if _, err := p.Write(random(PartSize + 100)); err != nil {
			cancel()
			p.Abort()
			return fmt.Errorf("write before cancel: %w", err)
		}
		cancel()
		// Writes after the cancel may fail at once or be refused by Close.
		var werr error
		for i := 0; i < 3 && werr == nil; i++ {
			_, werr = p.Write(random(PartSize))
		}
		if closeIt {
			_, err = p.Close(streamMeta(nil))
			if err == nil {
				return errors.New("close after cancel succeeded")
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(werr, context.Canceled) {
				return fmt.Errorf("close after cancel: %v (write: %v), want context.Canceled", err, werr)
			}
		} else {
			p.Abort()
		}
		bg := context.Background()
		if err := absent(bg, st, k); err != nil {
			return fmt.Errorf("after cancel (close %v): %w", closeIt, err)
		}
		if err := clean(bg, st); err != nil {
			return fmt.Errorf("after cancel (close %v): %w", closeIt, err)
		}
	}
	return nil
}

// cancelGet: a read whose context is cancelled midway ends with
// context.Canceled before the end of the object, and Close returns.
func cancelGet(t *testing.T, c Config) error {
	st := c.Open(t)
	k := key("vol", 23)
	data := random(8 << 20)
	if err := put(context.Background(), st, k, data, objstore.PutOptions{PartSize: PartSize}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, _, err := st.Open(ctx, k, objstore.GetOptions{Concurrency: 2, ChunkSize: 1 << 20})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(rc, head); err != nil {
		rc.Close()
		return fmt.Errorf("read before cancel: %w", err)
	}
	if !bytes.Equal(head, data[:len(head)]) {
		rc.Close()
		return errors.New("read before cancel: wrong bytes")
	}
	cancel()
	n, err := io.Copy(io.Discard, rc)
	done := make(chan error, 1)
	go func() { done <- rc.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return errors.New("reader close hangs after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		return fmt.Errorf("read after cancel: %d more bytes, error %v, want context.Canceled", n, err)
	}
	if int(n)+len(head) >= len(data) {
		return fmt.Errorf("read after cancel: the whole object (%d bytes)", int(n)+len(head))
	}
	return clean(context.Background(), st, k)
}

// concurrentPuts: puts of different keys at once, in the same directory
// and in others, with uploads aborted beside them, all store what they
// were given.
func concurrentPuts(t *testing.T, c Config) error {
	ctx := context.Background()
	st := c.Open(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	data := make([][]byte, n)
	keys := make([]string, n)
	for i := range n {
		keys[i] = key(fmt.Sprintf("d%d/vol", i%3), byte(30+i))
		data[i] = random(64<<10 + i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs[i] = put(ctx, st, keys[i], data[i], objstore.PutOptions{})
		}()
		go func() {
			// An aborted upload in the same directory.
			defer wg.Done()
			p, err := st.Create(ctx, key(fmt.Sprintf("d%d/vol", i%3), byte(60+i)), objstore.Meta{}, objstore.PutOptions{Discard: true})
			if err != nil {
				errs[n+i] = fmt.Errorf("create: %w", err)
				return
			}
			_, err = p.Write(random(1000))
			p.Abort()
			if err != nil {
				errs[n+i] = fmt.Errorf("write: %w", err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i := range n {
		if err := get(ctx, st, keys[i], data[i], objstore.GetOptions{}); err != nil {
			return err
		}
	}
	return clean(ctx, st, keys...)
}
