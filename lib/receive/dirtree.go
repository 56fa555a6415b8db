package receive

import (
	"errors"
	"fmt"
	"strings"

	"github.com/buttersink/buttersink/lib/names"
	"golang.org/x/sys/unix"
)

// DirTree is a Tree on a directory: every command acts beneath its root
// descriptor, through openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
// | RESOLVE_NO_XDEV. It carries out the POSIX part of every command, as
// btrfs receive does it; Clone copies data within the tree, EncodedWrite
// decompresses, Fileattr does nothing (as in btrfs receive), End and
// Sync work on the directory. A btrfs target embeds it and replaces what
// btrfs does natively.
//
// A path's parent directory is opened once and kept (a bounded cache
// keyed by the directory's path) and the name acted on with the *at
// calls: a command costs one system call, not a walk of its whole path.
type DirTree struct {
	root int
	// Self is the subvolume being received: Clone copies only from it.
	Self ID

	dirs dirCache

	// The write descriptor: wpath's, open for writing.
	wfd   int
	wpath string
	// wplain: wpath was resolved without a symbolic link, so that a
	// rename of exactly wpath is all that changes what it names.
	wplain bool

	// decoded holds an ENCODED_WRITE's extent, decompressed.
	decoded []byte

	// noXattrat: the kernel lacks setxattrat (before 6.13).
	noXattrat bool

	// rootPlain is Alike's finding on the root, 0 not known yet.
	rootPlain int8
}

// resolve is how every path is resolved: never above the root, never
// through /proc-style magic links or onto another mount.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// NewDirTree returns a DirTree on the directory open at rootFD; the
// DirTree opens its own descriptor of that directory, closed by Close.
func NewDirTree(rootFD int) (*DirTree, error) {
	fd, err := openat2(rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("open receive directory: %w", err)
	}
	t := &DirTree{root: fd, wfd: -1}
	t.dirs.init(dirCacheLimit())
	return t, nil
}

// Root is the root directory's descriptor (open O_RDONLY), valid until
// Close.
func (t *DirTree) Root() int { return t.root }

// Open opens path beneath the root (flags as for openat2; O_NOFOLLOW and
// O_CLOEXEC are added). The caller closes the descriptor.
func (t *DirTree) Open(path string, flags int) (int, error) {
	d, base, err := t.parent(path, true)
	if err != nil {
		return -1, err
	}
	defer t.release(d)
	fd, err := openat2(d.fd, base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve)
	if err != nil {
		return -1, pathErr("open", path, err)
	}
	return fd, nil
}

// WriteFD is the descriptor WRITE, CLONE, FALLOCATE and the like use for
// path, a regular file: opened once and kept until another path is
// written or the name stops naming it (an unlink, or a rename onto it or
// of a directory above it; a rename of the file itself keeps it, under
// its new name), End or Close. The caller must not close it.
func (t *DirTree) WriteFD(path string) (int, error) {
	if t.wfd >= 0 && path == t.wpath {
		return t.wfd, nil
	}
	t.dropWrite()
	d, base, err := t.parent(path, false)
	if err != nil {
		return -1, err
	}
	defer t.release(d)
	// A FIFO or device is never opened: opening one can block or act.
	if err := isRegular(d.fd, base); err != nil {
		return -1, pathErr("write", path, err)
	}
	fd, err := openat2(d.fd, base, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve)
	if err != nil {
		return -1, pathErr("write", path, err)
	}
	t.setWrite(fd, path, d.cached)
	return fd, nil
}

func (t *DirTree) setWrite(fd int, path string, plain bool) {
	t.dropWrite()
	t.wfd, t.wpath, t.wplain = fd, path, plain
}

func (t *DirTree) dropWrite() {
	if t.wfd >= 0 {
		rawClose(t.wfd)
		t.wfd, t.wpath = -1, ""
	}
}

// renamed keeps the write descriptor and the directory cache true to
// their paths after from was renamed to to.
func (t *DirTree) renamed(from, to string) {
	t.dirs.forget(from)
	t.dirs.forget(to)
	if t.wfd < 0 {
		return
	}
	switch {
	case !t.wplain || t.wpath == to || under(t.wpath, from) || under(t.wpath, to):
		t.dropWrite()
	case t.wpath == from:
		t.wpath = to
	}
}

// removed does the same after path was unlinked or removed.
func (t *DirTree) removed(path string) {
	t.dirs.forget(path)
	if t.wfd >= 0 && (!t.wplain || t.wpath == path || under(t.wpath, path)) {
		t.dropWrite()
	}
}

// under reports whether p lies inside the directory dir.
func under(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// isRegular checks that base in dir is a regular file, not following it.
func isRegular(dir int, base string) error {
	var st unix.Stat_t
	if err := fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errNotRegular
	}
	return nil
}

var errNotRegular = errors.New("not a regular file")

// dirFD is a parent directory's descriptor: cached (owned by the cache)
// or to be closed after use.
type dirFD struct {
	fd     int
	cached bool
	temp   bool
}

func (t *DirTree) release(d dirFD) {
	if d.temp {
		unix.Close(d.fd)
	}
}

// parent checks path and opens its parent directory, returning it and
// path's last component. The root itself ("") is the root descriptor
// and "." when root is true, an error otherwise.
func (t *DirTree) parent(path string, root bool) (dirFD, string, error) {
	if path == "" {
		if root {
			return dirFD{fd: t.root, cached: true}, ".", nil
		}
		return dirFD{}, "", errors.New("empty path")
	}
	if err := names.StreamPath(path); err != nil {
		return dirFD{}, "", err
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return dirFD{fd: t.root, cached: true}, path, nil
	}
	dir, base := path[:i], path[i+1:]
	if fd, ok := t.dirs.get(dir); ok {
		return dirFD{fd: fd, cached: true}, base, nil
	}
	const how = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC
	// Without a symbolic link on the way, a directory keeps being what
	// its path names until that path is renamed or removed: cache it.
	fd, err := openat2(t.root, dir, how, 0, resolve|unix.RESOLVE_NO_SYMLINKS)
	if err == nil {
		t.dirs.put(dir, fd)
		return dirFD{fd: fd, cached: true}, base, nil
	}
	if err != unix.ELOOP {
		return dirFD{}, "", pathErr("open", dir, err)
	}
	fd, err = openat2(t.root, dir, how, 0, resolve)
	if err != nil {
		return dirFD{}, "", pathErr("open", dir, err)
	}
	return dirFD{fd: fd, temp: true}, base, nil
}

// openat2 retries where the kernel asks to (EAGAIN: a rename raced the
// lookup) or a signal interrupted it.
func openat2(dir int, path string, flags int, mode uint32, res uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: res}
	for range 16 {
		fd, err := rawOpenat2(dir, path, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

func fstatat(dir int, path string, st *unix.Stat_t, flags int) error {
	for {
		if err := rawFstatat(dir, path, st, flags); err != unix.EINTR {
			return err
		}
	}
}

// pathErr names the operation and the (quoted, hostile) path.
func pathErr(op, path string, err error) error {
	if err == unix.EXDEV {
		return fmt.Errorf("%s %q: leads out of the receive directory (symbolic link or mount): %w", op, path, err)
	}
	return fmt.Errorf("%s %q: %w", op, path, err)
}

// Close releases every descriptor, the root's included.
func (t *DirTree) Close() error {
	t.dropWrite()
	t.dirs.clear()
	if t.root < 0 {
		return nil
	}
	err := unix.Close(t.root)
	t.root = -1
	return err
}

// Alike reports whether an inode made at path comes out as one made in
// the root and renamed to path, as the kernel's streams do: a new inode
// takes from the directory it is made in a default ACL, the group of a
// set-group-ID directory and inheritable inode flags (btrfs: no
// copy-on-write, compression), so it is the same only where neither
// directory has any of them. Anything in the way is a no.
func (t *DirTree) Alike(path string) bool {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return true
	}
	if t.rootPlain == 0 {
		t.rootPlain = plainDir(t.root)
	}
	if t.rootPlain < 0 {
		return false
	}
	e := t.dirs.entry(path[:i])
	if e == nil {
		d, _, err := t.parent(path, false)
		if err != nil {
			return false
		}
		t.release(d)
		if e = t.dirs.entry(path[:i]); e == nil {
			return false
		}
	}
	if e.plain == 0 {
		e.plain = plainDir(e.fd)
	}
	return e.plain > 0
}

// changed forgets what Alike found out about path, whose mode, owner or
// extended attributes changed.
func (t *DirTree) changed(path string) {
	if path == "" {
		t.rootPlain = 0
	} else if e := t.dirs.entry(path); e != nil {
		e.plain = 0
	}
}

// inheritable are the inode flags a new inode may take from its
// directory, on btrfs and elsewhere.
const inheritable = 0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x400 | 0x4000 | 0x8000 | 0x10000 |
	0x800000 | 0x2000000 | 0x20000000 | 0x40000000

// plainDir is 1 when the directory at dir gives a new inode nothing of
// its own (Alike), -1 otherwise.
func plainDir(dir int) int8 {
	fd, err := openat2(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve)
	if err != nil {
		return -1
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_ISGID != 0 {
		return -1
	}
	if _, err := unix.Fgetxattr(fd, "system.posix_acl_default", nil); err != unix.ENODATA && err != unix.EOPNOTSUPP {
		return -1
	}
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if (err != nil && err != unix.ENOTTY && err != unix.EOPNOTSUPP) || (err == nil && flags&inheritable != 0) {
		return -1
	}
	return 1
}
