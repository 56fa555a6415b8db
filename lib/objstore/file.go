package objstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
)

// fileStore keeps objects as files below a directory, the key being the
// relative path. Metadata lives in "user.bs.*" extended attributes, so
// there are no sidecar files; on a filesystem without user xattrs objects
// are stored without it and verified by the stream's own CRCs only.
//
// A file being written is ".<name>.partial-<random>" in the object's
// directory: never a valid key, renamed into place only when complete.
type fileStore struct {
	loc location.Location
}

const partialMark = ".partial-"

func openFile(loc location.Location) (*fileStore, error) {
	return &fileStore{loc: loc}, nil
}

func (s *fileStore) Location() location.Location { return s.loc }

func (s *fileStore) path(key string) string { return filepath.Join(s.loc.Dir, filepath.FromSlash(key)) }

func (s *fileStore) where(key string) string { return s.loc.DirString() + key }

func (s *fileStore) fail(key string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", s.where(key), ErrNotExist)
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%s: no space left on device", s.where(key))
	}
	return fmt.Errorf("%s: %v", s.where(key), err)
}

func (s *fileStore) walk(ctx context.Context, fn func(rel string, d fs.DirEntry) error) error {
	if fi, err := os.Stat(s.loc.Dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Not "empty": a store on a disk that is not mounted must
			// never read as one with nothing in it. Only a destination
			// may be missing (bss3put creates the directory with the
			// first object); bsplan checks for ErrNoStore there.
			return hint.Wrap(fmt.Errorf("%s: %w", s.loc.DirString(), ErrNoStore),
				"a file:// store is created by its first bss3put; to read one, mount the disk that holds it")
		}
		return s.fail("", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", s.loc.DirString())
	}
	return filepath.WalkDir(s.loc.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return s.fail(strings.TrimPrefix(p, s.loc.Dir), err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.loc.Dir, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), d)
	})
}

func (s *fileStore) List(ctx context.Context) ([]Object, error) {
	var out []Object
	err := s.walk(ctx, func(rel string, d fs.DirEntry) error {
		if strings.Contains(filepath.Base(rel), partialMark) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		out = append(out, Object{Key: rel, Size: fi.Size(), Modified: fi.ModTime()})
		return nil
	})
	return out, err
}

func (s *fileStore) Stat(ctx context.Context, key string) (Object, error) {
	p := s.path(key)
	fi, err := os.Stat(p)
	if err != nil {
		return Object{}, s.fail(key, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("%s: not a regular file", s.where(key))
	}
	return Object{Key: key, Size: fi.Size(), Modified: fi.ModTime(), Meta: readXattrs(p)}, nil
}

func readXattrs(p string) Meta {
	return metaFromMap(func(k string) (string, bool) {
		buf := make([]byte, 256)
		n, err := unix.Getxattr(p, "user."+strings.ReplaceAll(k, "-", "."), buf)
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	})
}

func writeXattrs(f *os.File, m Meta) error {
	for k, v := range m.toMap() {
		if err := unix.Fsetxattr(int(f.Fd()), "user."+strings.ReplaceAll(k, "-", "."), []byte(v), 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileStore) Open(ctx context.Context, key string, _ GetOptions) (io.ReadCloser, Object, error) {
	o, err := s.Stat(ctx, key)
	if err != nil {
		return nil, Object{}, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, Object{}, s.fail(key, err)
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	return &fileReader{f: f, s: s, key: key}, o, nil
}

type fileReader struct {
	f   *os.File
	s   *fileStore
	key string
}

func (r *fileReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.fail(r.key, err)
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

func (s *fileStore) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return s.fail(k, err)
		}
		s.pruneDirs(filepath.Dir(s.path(k)))
	}
	return nil
}

// pruneDirs removes directories left empty up to the store's directory.
func (s *fileStore) pruneDirs(dir string) {
	for dir != s.loc.Dir && strings.HasPrefix(dir, s.loc.Dir+"/") {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func (s *fileStore) ListIncomplete(ctx context.Context) ([]Upload, error) {
	var out []Upload
	err := s.walk(ctx, func(rel string, d fs.DirEntry) error {
		base := filepath.Base(rel)
		i := strings.Index(base, partialMark)
		if i < 1 || base[0] != '.' {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		key := base[1:i]
		if dir := filepath.Dir(rel); dir != "." {
			key = filepath.ToSlash(dir) + "/" + key
		}
		out = append(out, Upload{Key: key, ID: base[i+len(partialMark):], Started: fi.ModTime(), Size: fi.Size(), internal: rel})
		return nil
	})
	return out, err
}

func (s *fileStore) Abort(ctx context.Context, u Upload) error {
	p := s.path(u.internal)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fail(u.internal, err)
	}
	s.pruneDirs(filepath.Dir(p))
	return nil
}

func (s *fileStore) Create(ctx context.Context, key string, meta Meta, opts PutOptions) (Putter, error) {
	if _, err := ParseKey(key); err != nil {
		return nil, err
	}
	final := s.path(key)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, s.fail(key, err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+partialMark+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, s.fail(key, err)
	}
	return &filePutter{s: s, key: key, f: f, tmp: tmp, final: final}, nil
}

// filePutter writes to the temporary file; Close fsyncs it, sets the
// metadata, renames it into place and fsyncs the directory, so the object
// is either absent or complete, even across a crash.
type filePutter struct {
	s          *fileStore
	key        string
	f          *os.File
	tmp, final string
	size       int64
	err        error
	done       bool
}

func (p *filePutter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.f.Write(b)
	p.size += int64(n)
	if err != nil {
		p.err = p.s.fail(p.key, err)
	}
	return n, p.err
}

func (p *filePutter) Close(meta Meta) (Object, error) {
	if p.done {
		return Object{}, fmt.Errorf("%s: closed twice", p.s.where(p.key))
	}
	p.done = true
	fail := func(err error) (Object, error) {
		p.f.Close()
		os.Remove(p.tmp)
		return Object{}, p.s.fail(p.key, err)
	}
	if p.err != nil {
		return fail(p.err)
	}
	meta.EncodedSize = p.size
	meta.Format = metaFormat
	if err := writeXattrs(p.f, meta); err != nil && !errors.Is(err, unix.ENOTSUP) {
		return fail(fmt.Errorf("set metadata: %w", err))
	}
	if err := p.f.Sync(); err != nil {
		return fail(err)
	}
	if err := p.f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(p.tmp, p.final); err != nil {
		os.Remove(p.tmp)
		return Object{}, p.s.fail(p.key, err)
	}
	if d, err := os.Open(filepath.Dir(p.final)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return Object{}, p.s.fail(p.key, err)
		}
	}
	return Object{Key: p.key, Size: p.size, Modified: time.Now(), Meta: meta}, nil
}

func (p *filePutter) Abort() {
	if !p.done {
		p.done = true
		p.f.Close()
		os.Remove(p.tmp)
		p.s.pruneDirs(filepath.Dir(p.final))
	}
}
