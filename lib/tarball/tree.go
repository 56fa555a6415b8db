package tarball

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Options say what WriteTree writes.
type Options struct {
	// Prefix starts every name: the root is Prefix/, a file below it
	// Prefix/etc/passwd. Empty: the root is ./ and names are relative.
	Prefix string
	// Select reports whether the path (relative to the root, "" for the
	// root) is written; nil selects all. The directories above a
	// selected path are written too. What it refuses of a directory's
	// own path is still walked: an include may select below it.
	Select func(path string) bool
	// Prune reports that nothing below the directory path can be
	// selected: it is not walked.
	Prune func(path string) bool
	// Adjust corrects an entry's header from what the tree cannot hold
	// (owners, modes, devices, attributes a user could not set); st is
	// the inode's stat. An error stops the archive.
	Adjust func(st *unix.Stat_t, h *Header) error
}

// Stats count what WriteTree wrote and left out.
type Stats struct {
	Entries int64
	Bytes   int64
	// Sockets were left out: tar cannot hold them.
	Sockets int64
}

// maxSegments bounds a sparse file's map, which is built before the
// data is written: a file of more data segments is written whole.
const maxSegments = 1 << 16

// resolve keeps the walk beneath the root: no symbolic link followed,
// no mount crossed.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV

type devIno struct{ dev, ino uint64 }

type walker struct {
	tw    *Writer
	opt   Options
	st    Stats
	links map[devIno]string
	// pending are directories walked into but not yet written: they
	// are written before the first selected entry below them.
	pending []Header
	xbuf    []byte
	vbuf    []byte
}

// WriteTree writes the tree below the directory open at rootFD to tw, in
// sorted name order (the same tree gives the same bytes). It opens every
// file beneath rootFD without following a symbolic link. Memory is
// bounded by the tree's depth, its largest directory and the hard-linked
// inodes (nlink > 1) written so far. It does not end the archive.
func WriteTree(tw *Writer, rootFD int, opt Options) (Stats, error) {
	w := &walker{tw: tw, opt: opt, links: map[devIno]string{}}
	fd, err := openNoatime(rootFD, ".", unix.O_DIRECTORY, 0)
	if err != nil {
		return w.st, fmt.Errorf("open tree: %w", err)
	}
	dir := os.NewFile(uintptr(fd), ".")
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return w.st, err
	}
	h, err := w.header(&st, rootFD, ".", "")
	if err != nil {
		return w.st, err
	}
	w.pending = append(w.pending, h)
	if err := w.flush(); err != nil {
		return w.st, err
	}
	return w.st, w.walk(dir, "")
}

func (w *walker) name(rel string) string {
	switch {
	case w.opt.Prefix == "" && rel == "":
		return "."
	case w.opt.Prefix == "":
		return rel
	case rel == "":
		return w.opt.Prefix
	}
	return w.opt.Prefix + "/" + rel
}

func (w *walker) selected(rel string) bool { return w.opt.Select == nil || w.opt.Select(rel) }

func (w *walker) flush() error {
	for i := range w.pending {
		if err := w.write(&w.pending[i], -1, nil); err != nil {
			return err
		}
	}
	w.pending = w.pending[:0]
	return nil
}

func (w *walker) walk(dir *os.File, rel string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", w.name(rel), err)
	}
	slices.Sort(names)
	dfd := int(dir.Fd())
	depth := len(w.pending)
	for _, base := range names {
		p := base
		if rel != "" {
			p = rel + "/" + base
		}
		var st unix.Stat_t
		if err := fstatat(dfd, base, &st); err != nil {
			return fmt.Errorf("stat %q: %w", w.name(p), err)
		}
		if err := w.entry(dfd, base, p, &st); err != nil {
			return err
		}
		// A directory below that wrote nothing leaves nothing pending.
		w.pending = w.pending[:min(len(w.pending), depth)]
	}
	return nil
}

func (w *walker) entry(dfd int, base, rel string, st *unix.Stat_t) error {
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && w.opt.Prune != nil && w.opt.Prune(rel) {
		return nil
	}
	sel := w.selected(rel)
	if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		if sel {
			w.st.Sockets++
		}
		return nil
	}
	if !sel && !isDir {
		return nil
	}
	h, err := w.header(st, dfd, base, rel)
	if err != nil {
		return err
	}
	if isDir {
		w.pending = append(w.pending, h)
		if sel {
			if err := w.flush(); err != nil {
				return err
			}
		}
		fd, err := openNoatime(dfd, base, unix.O_DIRECTORY, resolve)
		if err != nil {
			return fmt.Errorf("open %q: %w", w.name(rel), err)
		}
		d := os.NewFile(uintptr(fd), base)
		defer d.Close()
		return w.walk(d, rel)
	}
	if err := w.flush(); err != nil {
		return err
	}
	if st.Nlink > 1 {
		k := devIno{uint64(st.Dev), st.Ino}
		if first, ok := w.links[k]; ok {
			l := Header{Type: TypeLink, Name: h.Name, Linkname: first, Mode: h.Mode, UID: h.UID, GID: h.GID, MTime: h.MTime, ATime: h.ATime}
			return w.write(&l, -1, nil)
		}
		w.links[k] = h.Name
	}
	if h.Type != TypeReg || h.Size == 0 {
		return w.write(&h, -1, nil)
	}
	fd, err := openNoatime(dfd, base, 0, resolve)
	if err != nil {
		return fmt.Errorf("open %q: %w", h.Name, err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	segs, err := segments(fd, h.Size)
	if err != nil {
		return fmt.Errorf("read %q: %w", h.Name, err)
	}
	if len(segs) != 1 || segs[0] != (Segment{0, h.Size}) {
		h.Sparse = segs
	}
	return w.write(&h, fd, f)
}

// write writes h and, for a regular file, its data from f.
func (w *walker) write(h *Header, fd int, f *os.File) error {
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	w.st.Entries++
	if f == nil {
		return nil
	}
	segs := h.Sparse
	if segs == nil {
		segs = []Segment{{0, h.Size}}
	}
	for _, s := range segs {
		n, err := w.tw.ReadFrom(io.NewSectionReader(f, s.Offset, s.Length))
		w.st.Bytes += n
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if n != s.Length {
			return fmt.Errorf("%s: %w", h.Name, ErrShort)
		}
	}
	return nil
}

// segments finds the data of a file of size bytes with SEEK_DATA and
// SEEK_HOLE; a file system without them reports all of it as data.
func segments(fd int, size int64) ([]Segment, error) {
	var segs []Segment
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return nil, err
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		segs = append(segs, Segment{data, hole - data})
		if len(segs) > maxSegments {
			return []Segment{{0, size}}, nil
		}
		off = hole
	}
	if segs == nil {
		segs = []Segment{}
	}
	return segs, nil
}

// header builds the entry of the inode st, base in the directory dfd.
func (w *walker) header(st *unix.Stat_t, dfd int, base, rel string) (Header, error) {
	h := Header{
		Name:  w.name(rel),
		Mode:  st.Mode & 0o7777,
		UID:   uint64(st.Uid),
		GID:   uint64(st.Gid),
		MTime: Time{st.Mtim.Sec, st.Mtim.Nsec},
		ATime: Time{st.Atim.Sec, st.Atim.Nsec},
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		h.Type, h.Size = TypeReg, st.Size
	case unix.S_IFDIR:
		h.Type = TypeDir
	case unix.S_IFLNK:
		h.Type = TypeSymlink
		t, err := readlinkat(dfd, base, st.Size)
		if err != nil {
			return h, fmt.Errorf("read link %q: %w", h.Name, err)
		}
		h.Linkname = t
		// readlink updates the access time; it is put back (where the
		// user may), so that the tree stays as it was archived.
		ts := []unix.Timespec{{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec}, {Nsec: unix.UTIME_OMIT}}
		unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFCHR:
		h.Type = TypeChar
	case unix.S_IFBLK:
		h.Type = TypeBlock
	case unix.S_IFIFO:
		h.Type = TypeFifo
	default:
		return h, fmt.Errorf("%q: file type %#o cannot be archived", h.Name, st.Mode&unix.S_IFMT)
	}
	if h.Type == TypeChar || h.Type == TypeBlock {
		h.DevMajor, h.DevMinor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	x, err := w.xattrs(dfd, base)
	if err != nil {
		return h, fmt.Errorf("xattrs of %q: %w", h.Name, err)
	}
	h.Xattrs = x
	if w.opt.Adjust != nil {
		if err := w.opt.Adjust(st, &h); err != nil {
			return h, err
		}
	}
	sortXattrs(h.Xattrs)
	return h, nil
}

// xattrs lists base's extended attributes, not following it: through
// the directory's descriptor, as the *xattrat calls are not everywhere.
func (w *walker) xattrs(dfd int, base string) ([]Xattr, error) {
	p := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + base
	var list []byte
	for {
		n, err := retry(func() (int, error) { return unix.Llistxattr(p, nil) })
		if err == unix.ENOTSUP || (err == nil && n == 0) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if cap(w.xbuf) < n {
			w.xbuf = make([]byte, n)
		}
		n, err = retry(func() (int, error) { return unix.Llistxattr(p, w.xbuf[:cap(w.xbuf)]) })
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		list = w.xbuf[:n]
		break
	}
	var out []Xattr
	for len(list) > 0 {
		i := slices.Index(list, 0)
		if i < 0 {
			return nil, errors.New("malformed attribute list")
		}
		name := string(list[:i])
		list = list[i+1:]
		v, err := w.xattr(p, name)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, Xattr{Name: name, Value: v})
	}
	return out, nil
}

func (w *walker) xattr(p, name string) ([]byte, error) {
	for {
		n, err := retry(func() (int, error) { return unix.Lgetxattr(p, name, nil) })
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return []byte{}, nil
		}
		if cap(w.vbuf) < n {
			w.vbuf = make([]byte, n)
		}
		n, err = retry(func() (int, error) { return unix.Lgetxattr(p, name, w.vbuf[:cap(w.vbuf)]) })
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return slices.Clone(w.vbuf[:n]), nil
	}
}

func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func readlinkat(dfd int, base string, size int64) (string, error) {
	buf := make([]byte, max(size+1, 64))
	for {
		n, err := unix.Readlinkat(dfd, base, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// openNoatime opens for reading without changing the access time the
// archive records (O_NOATIME needs the file's owner, or root).
func openNoatime(dir int, path string, flags int, res uint64) (int, error) {
	flags |= unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := openat2(dir, path, flags|unix.O_NOATIME, res)
	if err == unix.EPERM {
		fd, err = openat2(dir, path, flags, res)
	}
	return fd, err
}

func openat2(dir int, path string, flags int, res uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: res}
	for range 16 {
		fd, err := unix.Openat2(dir, path, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

func fstatat(dir int, path string, st *unix.Stat_t) error {
	for {
		if err := unix.Fstatat(dir, path, st, unix.AT_SYMLINK_NOFOLLOW); err != unix.EINTR {
			return err
		}
	}
}
