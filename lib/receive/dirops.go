package receive

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"unsafe"

	"github.com/buttersink/buttersink/lib/extent"
	"golang.org/x/sys/unix"
)

// The Tree methods of DirTree. Each opens the parent directory of its
// path (cached) and acts on the last name with an *at call that does not
// follow it; what must follow it (data, chmod) first checks what it is.

// Mkfile creates an empty file, mode 0600 until CHMOD, and keeps it open
// as the write descriptor: its data comes next. btrfs receive uses
// creat(), which would truncate an existing file or write through a
// symbolic link; the kernel only ever creates new (orphan) names, so
// O_EXCL makes no difference on its streams and refuses the rest.
func (t *DirTree) Mkfile(path string) error {
	d, base, err := t.parent(path, false)
	if err != nil {
		return err
	}
	defer t.release(d)
	fd, err := openat2(d.fd, base, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600, resolve)
	if err != nil {
		return pathErr("create", path, err)
	}
	t.setWrite(fd, path, d.cached)
	return nil
}

func (t *DirTree) Mkdir(path string) error {
	return t.at("mkdir", path, false, func(dir int, base string) error {
		return rawAt(unix.SYS_MKDIRAT, dir, base, 0o700, 0, 0, 0)
	})
}

// Mknod makes a node of the type in mode (its permission bits are left
// to CHMOD, as btrfs receive does).
func (t *DirTree) Mknod(path string, mode uint32, rdev uint64) error {
	if rdev > math.MaxUint32 {
		return pathErr("mknod", path, fmt.Errorf("device number %#x out of range", rdev))
	}
	return t.at("mknod", path, false, func(dir int, base string) error {
		return unix.Mknodat(dir, base, mode&unix.S_IFMT, int(rdev))
	})
}

func (t *DirTree) Mkfifo(path string) error {
	return t.at("mkfifo", path, false, func(dir int, base string) error {
		return unix.Mkfifoat(dir, base, 0o600)
	})
}

func (t *DirTree) Mksock(path string) error {
	return t.at("mksock", path, false, func(dir int, base string) error {
		return unix.Mknodat(dir, base, unix.S_IFSOCK|0o600, 0)
	})
}

// Symlink makes path a symbolic link holding target, bytes never
// resolved here.
func (t *DirTree) Symlink(path, target string) error {
	return t.at("symlink", path, false, func(dir int, base string) error {
		return rawSymlinkat(target, dir, base)
	})
}

// Rename is rename(2), as in btrfs receive: it replaces an existing file,
// or an empty directory with a directory.
func (t *DirTree) Rename(from, to string) error {
	fd, fbase, err := t.parent(from, false)
	if err != nil {
		return err
	}
	defer t.release(fd)
	td, tbase, err := t.parent(to, false)
	if err != nil {
		return err
	}
	defer t.release(td)
	if err := rawAt2(unix.SYS_RENAMEAT2, fd.fd, fbase, td.fd, tbase, 0); err != nil {
		return fmt.Errorf("rename %q to %q: %w", from, to, err)
	}
	t.renamed(from, to)
	return nil
}

// Link makes path a new name of target, not following target.
func (t *DirTree) Link(path, target string) error {
	od, obase, err := t.parent(target, false)
	if err != nil {
		return err
	}
	defer t.release(od)
	nd, nbase, err := t.parent(path, false)
	if err != nil {
		return err
	}
	defer t.release(nd)
	if err := rawAt2(unix.SYS_LINKAT, od.fd, obase, nd.fd, nbase, 0); err != nil {
		return fmt.Errorf("link %q to %q: %w", path, target, err)
	}
	return nil
}

func (t *DirTree) Unlink(path string) error {
	if err := t.at("unlink", path, false, func(dir int, base string) error {
		return rawAt(unix.SYS_UNLINKAT, dir, base, 0, 0, 0, 0)
	}); err != nil {
		return err
	}
	t.removed(path)
	return nil
}

func (t *DirTree) Rmdir(path string) error {
	if err := t.at("rmdir", path, false, func(dir int, base string) error {
		return rawAt(unix.SYS_UNLINKAT, dir, base, unix.AT_REMOVEDIR, 0, 0, 0)
	}); err != nil {
		return err
	}
	t.removed(path)
	return nil
}

// at runs fn on path's parent directory and last name; with root, path
// may be the root itself ("").
func (t *DirTree) at(op, path string, root bool, fn func(dir int, base string) error) error {
	d, base, err := t.parent(path, root)
	if err != nil {
		return err
	}
	defer t.release(d)
	if err := fn(d.fd, base); err != nil {
		return pathErr(op, path, err)
	}
	return nil
}

// SetXattr sets an attribute of path itself, never of a symbolic link's
// target.
func (t *DirTree) SetXattr(path, name string, data []byte) error {
	t.changed(path)
	if fd := t.openFD(path); fd >= 0 {
		if err := rawFsetxattr(fd, name, data); err != nil {
			return pathErr("set xattr "+strconv.Quote(name)+" of", path, err)
		}
		return nil
	}
	return t.at("set xattr "+strconv.Quote(name)+" of", path, true, func(dir int, base string) error {
		if !t.noXattrat {
			err := setxattrat(dir, base, name, data)
			if err != unix.ENOSYS {
				return err
			}
			t.noXattrat = true
		}
		return unix.Lsetxattr(procPath(dir, base), name, data, 0)
	})
}

func (t *DirTree) RemoveXattr(path, name string) error {
	t.changed(path)
	return t.at("remove xattr "+strconv.Quote(name)+" of", path, true, func(dir int, base string) error {
		if !t.noXattrat {
			err := removexattrat(dir, base, name)
			if err != unix.ENOSYS {
				return err
			}
			t.noXattrat = true
		}
		return unix.Lremovexattr(procPath(dir, base), name)
	})
}

// procPath names base in the open directory dir for the calls that have
// no *at form: the magic link is this process's own descriptor, and
// base, the last name, is not followed by the l* calls.
func procPath(dir int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dir) + "/" + base
}

// xattrArgs is struct xattr_args.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

func setxattrat(dir int, base, name string, data []byte) error {
	p, err := unix.BytePtrFromString(base)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	args := xattrArgs{size: uint32(len(data))}
	if len(data) > 0 {
		args.value = uint64(uintptr(unsafe.Pointer(&data[0])))
	}
	_, _, e := unix.RawSyscall6(unix.SYS_SETXATTRAT, uintptr(dir), uintptr(unsafe.Pointer(p)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(data)
	return errnoErr(e)
}

func removexattrat(dir int, base, name string) error {
	p, err := unix.BytePtrFromString(base)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_REMOVEXATTRAT, uintptr(dir), uintptr(unsafe.Pointer(p)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(n)), 0, 0)
	return errnoErr(e)
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func (t *DirTree) Write(path string, offset uint64, data []byte) error {
	fd, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	if offset > math.MaxInt64-uint64(len(data)) {
		return pathErr("write", path, errors.New("offset out of range"))
	}
	off := int64(offset)
	for len(data) > 0 {
		n, err := rawPwrite(fd, data, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathErr("write", path, err)
		}
		if n == 0 {
			return pathErr("write", path, io.ErrShortWrite)
		}
		data = data[n:]
		off += int64(n)
	}
	return nil
}

// Clone copies the bytes: a directory shares no extents. Only a clone
// within the tree can be done; the sources of other subvolumes are not
// there.
func (t *DirTree) Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	if src != t.Self {
		return pathErr("clone", path, fmt.Errorf("source %q is in subvolume %s, not the one received", srcPath, src.UUID.Canonical()))
	}
	dst, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	d, base, err := t.parent(srcPath, false)
	if err != nil {
		return err
	}
	defer t.release(d)
	if err := isRegular(d.fd, base); err != nil {
		return pathErr("clone from", srcPath, err)
	}
	sfd, err := openat2(d.fd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve)
	if err != nil {
		return pathErr("clone from", srcPath, err)
	}
	defer unix.Close(sfd)
	if n == 0 {
		var st unix.Stat_t
		if err := unix.Fstat(sfd, &st); err != nil {
			return pathErr("clone from", srcPath, err)
		}
		if uint64(st.Size) > srcOffset {
			n = uint64(st.Size) - srcOffset
		}
	}
	if srcOffset > math.MaxInt64-n || offset > math.MaxInt64-n {
		return pathErr("clone", path, errors.New("range out of range"))
	}
	roff, woff := int64(srcOffset), int64(offset)
	for n > 0 {
		c, err := unix.CopyFileRange(sfd, &roff, dst, &woff, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathErr("clone", path, err)
		}
		if c == 0 {
			return pathErr("clone", path, fmt.Errorf("source %q ends before the range", srcPath))
		}
		n -= uint64(c)
	}
	return nil
}

func (t *DirTree) Truncate(path string, size uint64) error {
	fd, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	if size > math.MaxInt64 {
		return pathErr("truncate", path, errors.New("size out of range"))
	}
	if err := rawFtruncate(fd, int64(size)); err != nil {
		return pathErr("truncate", path, err)
	}
	return nil
}

// Chmod never follows a symbolic link: the kernel sends no CHMOD for one,
// and chmod(2) on one would change whatever it points to.
func (t *DirTree) Chmod(path string, mode uint32) error {
	t.changed(path)
	if fd := t.openFD(path); fd >= 0 {
		if err := rawFchmod(fd, mode); err != nil {
			return pathErr("chmod", path, err)
		}
		return nil
	}
	return t.at("chmod", path, true, func(dir int, base string) error {
		err := rawFchmodat2(dir, base, mode, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EOPNOTSUPP {
			return err
		}
		// A symbolic link, or a kernel without fchmodat2 (before 6.6):
		// look at what base is through a descriptor of it.
		fd, err := openat2(dir, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return errors.New("a symbolic link")
		}
		return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
	})
}

// Chown is lchown(2), as in btrfs receive; it clears setuid, setgid and
// capabilities, which CHMOD and SET_XATTR bring back after it.
func (t *DirTree) Chown(path string, uid, gid uint64) error {
	// (uid_t)-1 would mean "leave unchanged".
	if uid >= math.MaxUint32 || gid >= math.MaxUint32 {
		return pathErr("chown", path, fmt.Errorf("owner %d:%d out of range", uid, gid))
	}
	t.changed(path)
	if fd := t.openFD(path); fd >= 0 {
		if err := rawFchown(fd, int(uid), int(gid)); err != nil {
			return pathErr("chown", path, err)
		}
		return nil
	}
	return t.at("chown", path, true, func(dir int, base string) error {
		return rawFchownat(dir, base, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Utimes sets the access and modification times; a change time cannot be
// set.
func (t *DirTree) Utimes(path string, atime, mtime, _ Timespec) error {
	if atime.Nsec >= 1e9 || mtime.Nsec >= 1e9 {
		// UTIME_NOW and UTIME_OMIT live there.
		return pathErr("utimes", path, errors.New("nanoseconds out of range"))
	}
	ts := []unix.Timespec{{Sec: atime.Sec, Nsec: int64(atime.Nsec)}, {Sec: mtime.Sec, Nsec: int64(mtime.Nsec)}}
	if fd := t.openFD(path); fd >= 0 {
		if err := rawUtimensat(fd, "", ts, 0); err != nil {
			return pathErr("utimes", path, err)
		}
		return nil
	}
	return t.at("utimes", path, true, func(dir int, base string) error {
		return rawUtimensat(dir, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// openFD is the write descriptor when it is path's, else -1: the file
// just made or written, whose owner, mode, times and attributes come
// next, set through it without a lookup. It is the very inode path names
// (WriteFD); never a symbolic link, so an f* call on it is the l* one on
// path.
func (t *DirTree) openFD(path string) int {
	if t.wfd >= 0 && path == t.wpath {
		return t.wfd
	}
	return -1
}

// UpdateExtent stands for data a --no-data send left out: nothing to do.
func (t *DirTree) UpdateExtent(string, uint64, uint64) error { return nil }

func (t *DirTree) Fallocate(path string, mode uint32, offset, n uint64) error {
	fd, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	if offset > math.MaxInt64 || n > math.MaxInt64-offset {
		return pathErr("fallocate", path, errors.New("range out of range"))
	}
	if err := unix.Fallocate(fd, mode, int64(offset), int64(n)); err != nil {
		return pathErr("fallocate", path, err)
	}
	return nil
}

// Fileattr does nothing: btrfs receive ignores FILEATTR, and the tree
// must come out as it makes it.
func (t *DirTree) Fileattr(string, uint64) error { return nil }

// EncodedWrite decompresses the extent and writes its bytes that belong
// to the file, as btrfs receive does where the ioctl is refused.
func (t *DirTree) EncodedWrite(path string, e *Encoded) error {
	switch {
	case e.Encryption != 0:
		return pathErr("encoded write", path, fmt.Errorf("encryption %d: %w", e.Encryption, errors.ErrUnsupported))
	case e.UnencodedLen > extent.MaxLen:
		return pathErr("encoded write", path, fmt.Errorf("unencoded length %d over %d", e.UnencodedLen, extent.MaxLen))
	case e.UnencodedOffset > e.UnencodedLen || e.UnencodedFileLen > e.UnencodedLen-e.UnencodedOffset:
		return pathErr("encoded write", path, fmt.Errorf("range %d+%d beyond the %d unencoded bytes", e.UnencodedOffset, e.UnencodedFileLen, e.UnencodedLen))
	}
	if t.decoded == nil {
		t.decoded = make([]byte, extent.MaxLen)
	}
	buf := t.decoded[:e.UnencodedLen]
	clear(buf)
	if err := extent.Decode(buf, e.Compression, e.Data); err != nil {
		return pathErr("encoded write", path, err)
	}
	return t.Write(path, e.Offset, buf[e.UnencodedOffset:e.UnencodedOffset+e.UnencodedFileLen])
}

// EnableVerity enables fs-verity on path, through a read-only descriptor:
// a file open for writing cannot have it (ETXTBSY).
func (t *DirTree) EnableVerity(path string, v *Verity) error {
	t.dropWrite()
	d, base, err := t.parent(path, false)
	if err != nil {
		return err
	}
	defer t.release(d)
	if err := isRegular(d.fd, base); err != nil {
		return pathErr("enable verity", path, err)
	}
	fd, err := openat2(d.fd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve)
	if err != nil {
		return pathErr("enable verity", path, err)
	}
	defer unix.Close(fd)
	arg := unix.FsverityEnableArg{
		Version:        1,
		Hash_algorithm: uint32(v.Algorithm),
		Block_size:     v.BlockSize,
		Salt_size:      uint32(len(v.Salt)),
		Sig_size:       uint32(len(v.Signature)),
	}
	if len(v.Salt) > 0 {
		arg.Salt_ptr = uint64(uintptr(unsafe.Pointer(&v.Salt[0])))
	}
	if len(v.Signature) > 0 {
		arg.Sig_ptr = uint64(uintptr(unsafe.Pointer(&v.Signature[0])))
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.FS_IOC_ENABLE_VERITY, uintptr(unsafe.Pointer(&arg)))
	runtime.KeepAlive(v)
	if e != 0 {
		return pathErr("enable verity", path, e)
	}
	return nil
}

// Sync makes everything applied so far durable: syncfs of the
// directory's filesystem.
func (t *DirTree) Sync() error {
	if err := unix.Syncfs(t.root); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// End releases the descriptors a stream needed; the directory stays.
func (t *DirTree) End() error {
	t.dropWrite()
	t.dirs.clear()
	return nil
}
