// Package objstore is the object-store contract: send streams kept as
// objects, one object per stream, in an S3 bucket (s3://bucket/prefix/,
// lib/objstore/s3store) or a plain directory (file:///dir/,
// lib/objstore/filestore). It defines Store and Putter, the objects and
// their metadata, the errors every store returns, and the operations built
// on any Store (Stored, ListStreams, AbortIncomplete). It links no store:
// a command names the stores it links in an Openers map.
//
// Keys are self-describing (lib/objstore/objkey), so listing a store is
// one ListObjectsV2 per 1,000 objects and never reads an object. An object
// becomes visible only when it is complete, carrying its metadata: the raw
// stream's size and SHA-256 and the encoded size. A store never replaces
// an object. lib/objstore/storetest is the contract every store keeps.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// Object is one stored object.
type Object struct {
	// Key is relative to the store's directory, "/"-separated.
	Key  string
	Size int64
	// Modified is the time the object was completed.
	Modified time.Time
	// StorageClass as the store reports it ("" for file stores).
	StorageClass string
	// Multipart is set by List for an S3 object completed from a
	// multipart upload (its ETag has a part count): its metadata may lack
	// the digest (see Stored).
	Multipart bool
	// Meta is only filled by Stat and Open, not by List; but for a file
	// store List sets Meta.Piece of a piece (see Stored).
	Meta Meta
	// RetainUntil is when the object's S3 Object Lock retention ends
	// (zero: none). Only Stat and Open fill it.
	RetainUntil time.Time
	// Restore and ArchiveStatus are S3's x-amz-restore and
	// x-amz-archive-status headers, which with StorageClass tell whether
	// an archived object can be read (ArchiveStateOf). Only Stat and
	// Open fill them.
	Restore       string
	ArchiveStatus string
}

// Retained reports whether o is under retention at now: no store lets
// it be deleted or replaced before RetainUntil.
func (o Object) Retained(now time.Time) bool { return now.Before(o.RetainUntil) }

// Meta is what an object carries beside its key. Objects from other tools
// have none of it (Format "").
type Meta struct {
	// Format is "bs1" for objects this package wrote.
	Format string
	// StreamSize and StreamSHA256 (lowercase hex) describe the raw send
	// stream before any stage; EncodedSize is the object's size.
	StreamSize   int64
	StreamSHA256 string
	EncodedSize  int64
	// Encoding is the stages joined with ".".
	Encoding string
	// PartScheme names how a multipart upload cut the stream into parts,
	// so a resumed upload cuts it the same way.
	PartScheme string
	// Piece is set on each object of a stream stored as several (see
	// pieces.go): its 1-based number. Only the last piece holds the
	// stream's digest (StreamSize, StreamSHA256), Pieces (their count)
	// and SetSize (their sizes' sum).
	Piece   int
	Pieces  int
	SetSize int64
	// PieceCRC32C is the CRC32C of a piece's bytes (8 hex digits): a
	// resumed upload keeps a stored piece only when its own bytes match.
	PieceCRC32C string
}

// Complete reports whether m holds a digest to verify against.
func (m Meta) Complete() bool { return m.Format == MetaFormat && len(m.StreamSHA256) == 64 }

// MetaFormat is Meta.Format for objects a store of this package wrote.
const MetaFormat = "bs1"

// Metadata names (S3 "x-amz-meta-" headers; "user.bs." xattrs on files).
const (
	metaKeyFormat     = "bs-format"
	metaKeyStreamSize = "bs-stream-size"
	metaKeySHA256     = "bs-stream-sha256"
	metaKeyEncSize    = "bs-encoded-size"
	metaKeyEncoding   = "bs-encoding"
	metaKeyPartScheme = "bs-part-scheme"
	metaKeyPiece      = "bs-piece"
	metaKeyPieces     = "bs-pieces"
	metaKeySetSize    = "bs-set-size"
	metaKeyPieceCRC   = "bs-piece-crc32c"
)

// Map is m as the name/value pairs a store keeps beside the object.
func (m Meta) Map() map[string]string {
	out := map[string]string{metaKeyFormat: MetaFormat, metaKeyEncoding: m.Encoding}
	if m.StreamSHA256 != "" {
		out[metaKeySHA256] = m.StreamSHA256
		out[metaKeyStreamSize] = strconv.FormatInt(m.StreamSize, 10)
		out[metaKeyEncSize] = strconv.FormatInt(m.EncodedSize, 10)
	}
	if m.PartScheme != "" {
		out[metaKeyPartScheme] = m.PartScheme
	}
	if m.Piece > 0 {
		out[metaKeyPiece] = strconv.Itoa(m.Piece)
		out[metaKeyPieceCRC] = m.PieceCRC32C
	}
	if m.Pieces > 0 {
		out[metaKeyPieces] = strconv.Itoa(m.Pieces)
		out[metaKeySetSize] = strconv.FormatInt(m.SetSize, 10)
	}
	return out
}

// MetaFromMap reads the pairs Map wrote (get returns one by name); other
// objects' metadata gives Meta{}.
func MetaFromMap(get func(string) (string, bool)) Meta {
	var m Meta
	m.Format, _ = get(metaKeyFormat)
	if m.Format != MetaFormat {
		return Meta{}
	}
	m.Encoding, _ = get(metaKeyEncoding)
	m.StreamSHA256, _ = get(metaKeySHA256)
	m.PartScheme, _ = get(metaKeyPartScheme)
	num := func(k string) int64 {
		s, _ := get(k)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	m.StreamSize, m.EncodedSize = num(metaKeyStreamSize), num(metaKeyEncSize)
	if len(m.StreamSHA256) != 64 || m.StreamSize < 0 || m.EncodedSize < 0 {
		m.StreamSHA256, m.StreamSize, m.EncodedSize = "", 0, 0
	}
	if _, ok := get(metaKeyPiece); ok {
		// A value out of range still marks a piece, never a whole stream.
		m.Piece = int(max(min(num(metaKeyPiece), objkey.MaxPieces+1), 0))
		if m.Piece == 0 {
			m.Piece = objkey.MaxPieces + 1
		}
		m.PieceCRC32C, _ = get(metaKeyPieceCRC)
	}
	if _, ok := get(metaKeyPieces); ok {
		m.Pieces = int(min(num(metaKeyPieces), objkey.MaxPieces+1))
		m.SetSize = num(metaKeySetSize)
	}
	return m
}

// Upload is an upload that was started and never completed: an S3
// multipart upload, or a temporary file in a file store.
type Upload struct {
	Key     string
	ID      string
	Started time.Time
	Parts   int
	Size    int64
	// Internal is the store's own handle for Abort (an S3 key, a
	// file's path); not for display.
	Internal string
}

// PutOptions tune how one object is stored.
type PutOptions struct {
	// PartSize fixes the multipart part size; 0 picks it automatically
	// (AutoPartSize), which handles streams of any length up to 5 TiB.
	PartSize int64
	// Concurrency is the number of parts in flight (S3).
	Concurrency int
	// Discard makes a failed upload leave nothing behind. Without it an
	// S3 multipart upload stays for the next run to resume; set it when
	// the next run cannot reproduce the encoding (age with no local
	// resume record), so that no part would match.
	Discard bool
	// Started, when set, is told the ID of the upload that outlives the
	// run (S3 multipart): from Create for the upload it resumes
	// (resumed), or once a new one is created, before its first part is
	// sent. An error stops the upload.
	Started func(uploadID string, resumed bool) error
	// Mismatch, when set, is told the first part of a resumed upload
	// whose bytes differ from the ones written now; when it returns true
	// no part of the interrupted run is kept from then on (the encoding
	// was not reproduced: each later part would differ too).
	Mismatch func(part int) bool
	// Log receives a debug line per part sent or kept when resuming.
	Log func(msg string, args ...any)
	// PartMemory, when set, is told how many bytes the part buffers may
	// take (Concurrency × part size) before they first grow to it: the
	// automatic part size doubles on long streams.
	PartMemory func(bytes int64)
}

// Putter receives one object's bytes. Close completes the object and makes
// it visible; Abort (or a Close that fails) leaves nothing visible. For S3
// an aborted Putter leaves its multipart upload so the next run resumes it.
type Putter interface {
	io.Writer
	// Close completes the object with the final metadata (the digest of
	// the raw stream is only known at the end).
	Close(meta Meta) (Object, error)
	Abort()
}

// Store is an object store directory: an s3://bucket/prefix/ or a file:///dir/.
type Store interface {
	// Location is the store's directory.
	Location() location.Location
	// List returns every object below the directory (keys relative to it).
	List(ctx context.Context) ([]Object, error)
	// Stat returns one object with its metadata; ErrNotExist if absent.
	Stat(ctx context.Context, key string) (Object, error)
	// Create starts storing key, resuming an interrupted upload of the
	// same key when there is one. It never replaces an object: Create or
	// Close returns ErrExists when key is stored (also when another writer
	// completed it meanwhile).
	Create(ctx context.Context, key string, meta Meta, opts PutOptions) (Putter, error)
	// Open reads an object from the start, with read-ahead.
	Open(ctx context.Context, key string, opts GetOptions) (io.ReadCloser, Object, error)
	// Delete removes objects; a missing one is not an error.
	Delete(ctx context.Context, keys ...string) error
	// ListIncomplete returns the uploads that were started and never completed.
	ListIncomplete(ctx context.Context) ([]Upload, error)
	// Abort discards an incomplete upload ListIncomplete returned; one
	// gone meanwhile is not an error.
	Abort(ctx context.Context, u Upload) error
}

// StaleUploads returns st's incomplete uploads started before
// now-olderThan.
func StaleUploads(ctx context.Context, st Store, olderThan time.Duration) ([]Upload, error) {
	ups, err := st.ListIncomplete(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-olderThan)
	var stale []Upload
	for _, u := range ups {
		if u.Started.Before(cutoff) {
			stale = append(stale, u)
		}
	}
	return stale, nil
}

// AbortIncomplete discards st's incomplete uploads started before
// now-olderThan. It returns those it discarded, also when a later one
// failed.
func AbortIncomplete(ctx context.Context, st Store, olderThan time.Duration) ([]Upload, error) {
	stale, err := StaleUploads(ctx, st, olderThan)
	if err != nil {
		return nil, err
	}
	var done []Upload
	for _, u := range stale {
		if err := st.Abort(ctx, u); err != nil {
			return done, err
		}
		done = append(done, u)
	}
	return done, nil
}

// statConcurrency is the number of HEAD requests Stored has in flight.
const statConcurrency = 16

// Stored drops from objs (a List) the buttersink-format objects that are
// not stored streams: an object bss3put completed and never gave its
// digest (interrupted between completing the multipart upload and the
// metadata copy). Only objects completed from a multipart upload can be
// such (a single PUT carries its metadata), so only those are read with
// a HEAD request, and the pieces a file store's List marks (the first
// piece of a stream stored as several objects has no digest); objects of other formats never carry metadata and are
// kept.
func Stored(ctx context.Context, st Store, objs []Object) ([]Object, error) {
	var check []int
	for i, o := range objs {
		if !o.Multipart && o.Meta.Piece == 0 {
			continue
		}
		if k, err := objkey.ParseKey(o.Key); err == nil && k.Format == objkey.FormatBS1 {
			check = append(check, i)
		}
	}
	if len(check) == 0 {
		return objs, nil
	}
	drop := make([]bool, len(objs))
	errs := make([]error, len(check))
	sem := make(chan struct{}, statConcurrency)
	var wg sync.WaitGroup
	for j, i := range check {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := st.Stat(ctx, objs[i].Key)
			switch {
			case errors.Is(err, ErrNotExist):
				drop[i] = true // deleted meanwhile
			case err != nil:
				errs[j] = err
			default:
				drop[i] = !o.Meta.Complete()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out := objs[:0:0]
	for i, o := range objs {
		if !drop[i] {
			out = append(out, o)
		}
	}
	return out, nil
}

// DeleteUndigested deletes the object under key if it has no digest (an
// upload completed and cut short before its metadata copy, see Stored; or
// an object written where the store could keep no metadata), so that the
// stream can be stored again: a store never replaces an object. It reads
// the object's metadata itself, right before the delete, so an object
// that got its digest meanwhile is kept (ErrExists). An object gone
// meanwhile is not an error.
func DeleteUndigested(ctx context.Context, st Store, key string) error {
	o, err := st.Stat(ctx, key)
	switch {
	case errors.Is(err, ErrNotExist):
		return nil
	case err != nil:
		return err
	case o.Meta.Complete():
		return fmt.Errorf("%s%s: %w", st.Location().DirString(), key, ErrExists)
	}
	return st.Delete(ctx, key)
}

// GetOptions tune reading an object.
type GetOptions struct {
	// Concurrency is the number of ranged GETs in flight (S3), default 4.
	Concurrency int
	// ChunkSize is the size of one ranged GET, default 8 MiB.
	ChunkSize int64
	// Held is how many chunks a ChunkReader's consumer keeps at once:
	// that many more buffers exist, so that Concurrency GETs stay in
	// flight meanwhile.
	Held int
}

// ChunkReader is a reader Open may return that also hands out the
// object's bytes in the buffers they were read into, without a copy. A
// consumer uses either NextChunk or Read, not both.
type ChunkReader interface {
	io.ReadCloser
	// NextChunk returns the object's next bytes, in order, and io.EOF
	// after the last. They stay unchanged until given back to Release;
	// more than Held of them at once stall the reading.
	NextChunk() ([]byte, error)
	Release(b []byte)
}

// ErrNoStore is returned by List and ListIncomplete for a file:// store
// whose directory does not exist.
var ErrNoStore = errors.New("no such store directory")

// ErrNotExist is returned by Stat and Open for a missing object.
var ErrNotExist = errors.New("object does not exist")

// ErrExists is returned by Create and Putter.Close for a key that is
// stored: a store never replaces an object.
var ErrExists = errors.New("object already exists")

// ErrStoredFirst is the ErrExists of a Putter.Close whose conditional
// completion found the key stored by another writer while this one was
// writing it (errors.Is(ErrStoredFirst, ErrExists) holds).
var ErrStoredFirst error = storedFirst{}

type storedFirst struct{}

func (storedFirst) Error() string {
	return "another writer stored this object first; it was not replaced"
}

func (storedFirst) Is(target error) bool { return target == ErrExists }

// ErrNoConditional is returned by a Putter.Close on a server that refused
// the conditional write (If-None-Match: *) as not implemented: without
// it a store cannot promise never to replace an object, so it stores
// nothing.
var ErrNoConditional = errors.New("the server does not implement conditional writes (If-None-Match), which keep two writers from replacing each other's object; nothing was stored")

// ErrArchived is returned by Open and reads of an object in an archive
// storage class (GLACIER, DEEP_ARCHIVE, an archive tier) that is not
// restored.
var ErrArchived = errors.New("object is archived and not restored")

// Opener returns the store for a directory location of its scheme.
type Opener func(ctx context.Context, dir location.Location, opts Options) (Store, error)

// Openers are the stores a command links, by scheme: each command that
// reaches object stores declares its own (cmd/<command>/stores.go), so
// that a command which must not link the AWS SDK does not.
type Openers map[location.Scheme]Opener

// Open returns the store for loc's directory (loc.Snapshot is ignored).
func (o Openers) Open(ctx context.Context, loc location.Location, opts Options) (Store, error) {
	loc = loc.AsDir()
	if open := o[loc.Scheme]; open != nil && loc.IsObjectStore() {
		return open(ctx, loc, opts)
	}
	return nil, fmt.Errorf("%s: not an object store (want s3:// or file://)", loc)
}

// ListStreams lists the streams stored below an s3:// or file://
// directory, opening its store with o (see the package function).
func (o Openers) ListStreams(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	st, err := o.Open(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	return ListStreams(ctx, st, loc)
}

// ListStreams lists the streams stored in st: one record per object whose
// key is in a known format (buttersink, buttersink-v0, btrfs2s3), from the
// keys alone: one ListObjectsV2 per 1,000 objects, no GET; a HEAD only for
// each buttersink object completed from a multipart upload, whose digest
// the listing cannot show (an object without it is not stored, see
// Stored). Other objects are skipped. A loc naming a snapshot lists that
// snapshot's objects only, and is an error when there are none (with a
// hint when the name is a directory of objects: s3://bucket/prefix without
// its slash). Records are sorted by path, then key.
func ListStreams(ctx context.Context, st Store, loc location.Location) ([]snapshot.Snapshot, error) {
	objs, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	objs, sets, err := listSets(ctx, st, objs)
	if err != nil {
		return nil, err
	}
	// An object completed without its digest is not a stored stream.
	if objs, err = Stored(ctx, st, objs); err != nil {
		return nil, err
	}
	objs = append(objs, sets...)
	var out []snapshot.Snapshot
	dir := false // loc names a directory of objects rather than a snapshot
	for _, o := range objs {
		if loc.Snapshot != "" && strings.HasPrefix(o.Key, loc.Snapshot+"/") {
			dir = true
		}
		rec, ok := Record(o)
		if !ok {
			continue
		}
		if loc.Snapshot != "" && rec.Path != loc.Snapshot {
			continue
		}
		out = append(out, rec)
	}
	if loc.Snapshot != "" && len(out) == 0 {
		if dir {
			return nil, hint.Wrap(fmt.Errorf("%s: no stored stream of a snapshot of that name", loc),
				fmt.Sprintf("to list the snapshots below a directory, end it with a slash: %s/", loc))
		}
		return nil, fmt.Errorf("%s: no stored stream of a snapshot of that name", loc)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// Record is the listing record (bsls output) of an object, or false when
// its key is not a stream in a known format.
func Record(o Object) (snapshot.Snapshot, bool) {
	k, err := objkey.ParseKey(o.Key)
	if err != nil {
		return snapshot.Snapshot{}, false
	}
	size := o.Size
	rec := snapshot.Snapshot{
		Kind:           snapshot.KindObject,
		Path:           k.Path,
		UUID:           k.UUID,
		ParentUUID:     k.SourceUUID,
		SendParentUUID: k.Parent,
		CTransID:       k.CTransID,
		ReadOnly:       true,
		Key:            o.Key,
		Size:           &size,
		Encoding:       k.Encoding(),
		Format:         k.Format,
		Stored:         o.Modified.UTC(),
	}
	if o.Meta.Complete() {
		ss := o.Meta.StreamSize
		rec.StreamSize = &ss
	}
	return rec, true
}

// RetainedKeys returns, of keys in st, those under retention at now
// (S3 Object Lock) with the end of their retention. It reads each key's
// metadata (a HEAD request each, statConcurrency at once): callers pass
// only the keys they mean to delete. A key gone meanwhile is not
// retained.
func RetainedKeys(ctx context.Context, st Store, keys []string, now time.Time) (map[string]time.Time, error) {
	until := make([]time.Time, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, statConcurrency)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := st.Stat(ctx, k)
			switch {
			case errors.Is(err, ErrNotExist):
			case err != nil:
				errs[i] = err
			case o.Retained(now):
				until[i] = o.RetainUntil
			}
		}()
	}
	wg.Wait()
	out := map[string]time.Time{}
	for i, k := range keys {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if !until[i].IsZero() {
			out[k] = until[i]
		}
	}
	return out, nil
}
