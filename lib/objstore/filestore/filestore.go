// Package filestore is the object store in a plain directory
// (file:///dir/): each object a file whose relative path is its key.
package filestore

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
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
)

// fileStore keeps objects as files below a directory, the key being the
// relative path. Metadata lives in "user.bs.*" extended attributes, so
// there are no sidecar files; on a filesystem without user xattrs objects
// are stored without it and verified by the stream's own CRCs only.
//
// A file being written is ".<name>.partial-<random>" in the object's
// directory: never a valid key, linked into place only when complete
// (never over an object).
type fileStore struct {
	loc location.Location
}

const partialMark = ".partial-"

// Open returns the store in dir's directory (dir.Snapshot is ignored;
// opts is for S3 stores). The directory need not exist: the first put
// makes it.
func Open(_ context.Context, dir location.Location, _ objstore.Options) (objstore.Store, error) {
	if dir.Scheme != location.File {
		return nil, fmt.Errorf("%s: not a file:// location", dir)
	}
	return &fileStore{loc: dir.AsDir()}, nil
}

func (s *fileStore) Location() location.Location { return s.loc }

func (s *fileStore) path(key string) string { return filepath.Join(s.loc.Dir, filepath.FromSlash(key)) }

func (s *fileStore) where(key string) string { return s.loc.DirString() + key }

// checkKeys refuses keys that would leave the directory or that S3 could
// not store below it.
func (s *fileStore) checkKeys(keys ...string) error {
	for _, k := range keys {
		if err := names.Key(k, len(s.loc.Dir)+1); err != nil {
			return fmt.Errorf("%s: %w", s.loc.DirString(), err)
		}
	}
	return nil
}

func (s *fileStore) fail(key string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", s.where(key), objstore.ErrNotExist)
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
			return hint.Wrap(fmt.Errorf("%s: %w", s.loc.DirString(), objstore.ErrNoStore),
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

func (s *fileStore) List(ctx context.Context) ([]objstore.Object, error) {
	var out []objstore.Object
	err := s.walk(ctx, func(rel string, d fs.DirEntry) error {
		if strings.Contains(filepath.Base(rel), partialMark) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		o := objstore.Object{Key: rel, Size: fi.Size(), Modified: fi.ModTime()}
		// A piece of a stream stored as several objects may lack the
		// digest its set needs (objstore.Stored): marked for a Stat.
		var buf [8]byte
		if _, err := unix.Lgetxattr(s.path(rel), "user.bs.piece", buf[:]); err == nil {
			o.Meta.Piece = 1
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

func (s *fileStore) Stat(ctx context.Context, key string) (objstore.Object, error) {
	f, fi, err := s.openObject(key)
	if err != nil {
		return objstore.Object{}, err
	}
	defer f.Close()
	return objstore.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime(), Meta: readXattrs(f)}, nil
}

// errSymlink is a symbolic link met on the way to an object: a store's
// objects are below its directory, and links are never followed there.
var errSymlink = errors.New("is a symbolic link, not followed in a store")

// openParents opens, one component at a time and following no symbolic
// link, the directories from the store's down to the one holding key. It
// returns their descriptors (the caller closes them) and key's last
// component.
func (s *fileStore) openParents(key string) ([]int, string, error) {
	if err := s.checkKeys(key); err != nil {
		return nil, "", err
	}
	root, err := unix.Open(s.loc.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", s.fail(key, err)
	}
	fds := []int{root}
	comps := strings.Split(key, "/")
	for i, c := range comps[:len(comps)-1] {
		fd, err := unix.Openat(fds[len(fds)-1], c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			err = s.notFollowed(fds[len(fds)-1], strings.Join(comps[:i+1], "/"), c, err)
			closeFDs(fds)
			return nil, "", err
		}
		fds = append(fds, fd)
	}
	return fds, comps[len(comps)-1], nil
}

// notFollowed explains why name in dirfd did not open: a symbolic link,
// or err.
func (s *fileStore) notFollowed(dirfd int, rel, name string, err error) error {
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s: %w", s.where(rel), errSymlink)
	}
	return s.fail(rel, err)
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// openObject opens the regular file of key, reached without following a
// symbolic link; anything else (a FIFO, a device) is not opened.
func (s *fileStore) openObject(key string) (*os.File, fs.FileInfo, error) {
	fds, name, err := s.openParents(key)
	if err != nil {
		return nil, nil, err
	}
	defer closeFDs(fds)
	dir := fds[len(fds)-1]
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, nil, s.fail(key, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil, nil, fmt.Errorf("%s: %w", s.where(key), errSymlink)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, fmt.Errorf("%s: not a regular file", s.where(key))
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, s.notFollowed(dir, key, name, err)
	}
	f := os.NewFile(uintptr(fd), s.path(key))
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, nil, s.fail(key, err)
	}
	return f, fi, nil
}

// remove unlinks the regular file rel (a key, or a temporary file) and
// then the directories it leaves empty, up to the store's, all through
// descriptors reached without following a symbolic link. A missing file
// is not an error.
func (s *fileStore) remove(rel string) error {
	fds, name, err := s.openParents(rel)
	if errors.Is(err, objstore.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeFDs(fds)
	dir := fds[len(fds)-1]
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return s.fail(rel, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s: %w", s.where(rel), errSymlink)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file; not deleted", s.where(rel))
	}
	if err := unix.Unlinkat(dir, name, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.fail(rel, err)
	}
	// Directories left empty go too, deepest first.
	comps := strings.Split(rel, "/")
	for i := len(fds) - 1; i >= 1; i-- {
		if unix.Unlinkat(fds[i-1], comps[i-1], unix.AT_REMOVEDIR) != nil {
			break
		}
	}
	return nil
}

func readXattrs(f *os.File) objstore.Meta {
	return objstore.MetaFromMap(func(k string) (string, bool) {
		buf := make([]byte, 256)
		n, err := unix.Fgetxattr(int(f.Fd()), "user."+strings.ReplaceAll(k, "-", "."), buf)
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	})
}

func writeXattrs(f *os.File, m objstore.Meta) error {
	for k, v := range m.Map() {
		if err := unix.Fsetxattr(int(f.Fd()), "user."+strings.ReplaceAll(k, "-", "."), []byte(v), 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileStore) Open(ctx context.Context, key string, _ objstore.GetOptions) (io.ReadCloser, objstore.Object, error) {
	f, fi, err := s.openObject(key)
	if err != nil {
		return nil, objstore.Object{}, err
	}
	// Reads block, as on any regular file.
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, objstore.Object{}, s.fail(key, err)
	}
	o := objstore.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime(), Meta: readXattrs(f)}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	return &fileReader{ctx: ctx, f: f, s: s, key: key}, o, nil
}

type fileReader struct {
	ctx context.Context
	f   *os.File
	s   *fileStore
	key string
}

func (r *fileReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", r.s.where(r.key), err)
	}
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.fail(r.key, err)
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

func (s *fileStore) Delete(ctx context.Context, keys ...string) error {
	if err := s.checkKeys(keys...); err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.remove(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneDirs removes the directories of key that fds (from makeParents)
// hold, as far as they are empty, deepest first, through the descriptors.
func pruneDirs(fds []int, key string) {
	comps := strings.Split(key, "/")
	for i := len(fds) - 1; i >= 1; i-- {
		if unix.Unlinkat(fds[i-1], comps[i-1], unix.AT_REMOVEDIR) != nil {
			return
		}
	}
}

func (s *fileStore) ListIncomplete(ctx context.Context) ([]objstore.Upload, error) {
	var out []objstore.Upload
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
		out = append(out, objstore.Upload{Key: key, ID: base[i+len(partialMark):], Started: fi.ModTime(), Size: fi.Size(), Internal: rel})
		return nil
	})
	return out, err
}

func (s *fileStore) Abort(ctx context.Context, u objstore.Upload) error {
	return s.remove(u.Internal)
}

func (s *fileStore) Create(ctx context.Context, key string, meta objstore.Meta, opts objstore.PutOptions) (objstore.Putter, error) {
	if err := s.checkKeys(key); err != nil {
		return nil, err
	}
	if _, err := objkey.ParseKey(key); err != nil {
		return nil, err
	}
	final := s.path(key)
	// The store's directory is the user's (a destination store is made by
	// its first put); below it, no symbolic link is followed: the
	// directories of key are made and opened one at a time, and the
	// temporary file is made, renamed and removed through their
	// descriptors.
	if err := os.MkdirAll(s.loc.Dir, 0o755); err != nil {
		return nil, s.fail(key, err)
	}
	var fds []int
	var tmp string
	var f *os.File
	var err error
	for attempt := 0; ; attempt++ {
		if fds, err = s.makeParents(key); err == nil {
			var rnd [6]byte
			rand.Read(rnd[:])
			tmp = "." + filepath.Base(final) + partialMark + hex.EncodeToString(rnd[:])
			var fd int
			fd, err = unix.Openat(fds[len(fds)-1], tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err == nil {
				f = os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(final), tmp))
				break
			}
			closeFDs(fds)
			err = &fs.PathError{Op: "open", Path: tmp, Err: err}
		}
		// A Delete or Abort beside may prune the directory meanwhile.
		gone := errors.Is(err, fs.ErrNotExist) || errors.Is(err, objstore.ErrNotExist)
		if attempt == 9 || errors.Is(err, errSymlink) || !gone && !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, errSymlink) {
			return nil, err
		}
		return nil, s.fail(key, err)
	}
	return &filePutter{ctx: ctx, s: s, key: key, f: f, dirs: fds, tmp: tmp, name: filepath.Base(final)}, nil
}

// makeParents is openParents that makes the missing directories.
func (s *fileStore) makeParents(key string) ([]int, error) {
	root, err := unix.Open(s.loc.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: s.loc.Dir, Err: err}
	}
	fds := []int{root}
	comps := strings.Split(key, "/")
	for i, c := range comps[:len(comps)-1] {
		if err := unix.Mkdirat(fds[len(fds)-1], c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			closeFDs(fds)
			return nil, &fs.PathError{Op: "mkdir", Path: strings.Join(comps[:i+1], "/"), Err: err}
		}
		fd, err := unix.Openat(fds[len(fds)-1], c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			err = s.notFollowed(fds[len(fds)-1], strings.Join(comps[:i+1], "/"), c, err)
			closeFDs(fds)
			return nil, err
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// filePutter writes to the temporary file; Close fsyncs it, sets the
// metadata, links it into place (ErrExists when the key is stored),
// removes the temporary name and fsyncs the directory, so the object
// is either absent or complete, even across a crash. A cancelled ctx
// fails Write and Close.
type filePutter struct {
	ctx context.Context
	s   *fileStore
	key string
	f   *os.File
	// dirs are the store's directory down to the object's (makeParents);
	// tmp and name are the temporary file's and the object's names in
	// the last of them.
	dirs      []int
	tmp, name string
	size      int64
	err       error
	done      bool
}

func (p *filePutter) Write(b []byte) (int, error) {
	if p.err == nil && p.ctx.Err() != nil {
		p.err = fmt.Errorf("%s: %w", p.s.where(p.key), p.ctx.Err())
	}
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

func (p *filePutter) Close(meta objstore.Meta) (objstore.Object, error) {
	if p.done {
		return objstore.Object{}, fmt.Errorf("%s: closed twice", p.s.where(p.key))
	}
	p.done = true
	defer closeFDs(p.dirs)
	dir := p.dirs[len(p.dirs)-1]
	fail := func(err error) (objstore.Object, error) {
		p.f.Close()
		unix.Unlinkat(dir, p.tmp, 0)
		return objstore.Object{}, p.s.fail(p.key, err)
	}
	if p.err == nil && p.ctx.Err() != nil {
		p.err = fmt.Errorf("%s: %w", p.s.where(p.key), p.ctx.Err())
	}
	if p.err != nil {
		p.f.Close()
		unix.Unlinkat(dir, p.tmp, 0)
		pruneDirs(p.dirs, p.key)
		return objstore.Object{}, p.err
	}
	meta.EncodedSize = p.size
	meta.Format = objstore.MetaFormat
	if err := writeXattrs(p.f, meta); err != nil && !errors.Is(err, unix.ENOTSUP) {
		return fail(fmt.Errorf("set metadata: %w", err))
	}
	// Read-only for everyone: a stored object is never written again.
	// This guards against mistakes only: whoever may write the directory
	// may still unlink the object (see bss3put(1)).
	if err := p.f.Chmod(0o444); err != nil {
		return fail(err)
	}
	if err := p.f.Sync(); err != nil {
		return fail(err)
	}
	if err := p.f.Close(); err != nil {
		return fail(err)
	}
	// Link, never rename: a rename would replace an object stored under
	// the key meanwhile.
	if err := linkNewAt(dir, p.tmp, p.name); err != nil {
		unix.Unlinkat(dir, p.tmp, 0)
		if errors.Is(err, unix.EEXIST) {
			return objstore.Object{}, fmt.Errorf("%s: %w", p.s.where(p.key), objstore.ErrStoredFirst)
		}
		return objstore.Object{}, p.s.fail(p.key, err)
	}
	// The object is in place; a temporary name left by a failed unlink
	// is an incomplete upload for bsrm --incomplete.
	_ = unix.Unlinkat(dir, p.tmp, 0)
	if err := unix.Fsync(dir); err != nil {
		return objstore.Object{}, p.s.fail(p.key, err)
	}
	return objstore.Object{Key: p.key, Size: p.size, Modified: time.Now(), Meta: meta}, nil
}

// linkNewAt makes name in dir a name of the complete file tmp there,
// failing with EEXIST when name exists. On a filesystem without hard links
// it renames without replacing (RENAME_NOREPLACE) instead.
func linkNewAt(dir int, tmp, name string) error {
	err := unix.Linkat(dir, tmp, dir, name, 0)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EMLINK) {
		err = unix.Renameat2(dir, tmp, dir, name, unix.RENAME_NOREPLACE)
	}
	return err
}

func (p *filePutter) Abort() {
	if !p.done {
		p.done = true
		p.f.Close()
		unix.Unlinkat(p.dirs[len(p.dirs)-1], p.tmp, 0)
		pruneDirs(p.dirs, p.key)
		closeFDs(p.dirs)
	}
}
