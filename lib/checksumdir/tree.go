// Package checksumdir lists and hashes a directory tree the way the
// original ButterSink's checksumdir script did (NAME.ls, NAME.files,
// NAME.sha256sum, byte for byte), optionally with a NAME.full listing of
// what the script missed, and compares a tree with such a saved set.
package checksumdir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Entry is one thing below the top directory, as lstat saw it.
type Entry struct {
	// Path is relative to the top directory, as find's %P prints it.
	Path                string
	Mode                uint32
	Nlink               uint64
	UID, GID            uint32
	MtimeSec, MtimeNsec int64
	Size                int64
	Rdev                uint64
	Dev, Ino            uint64

	// sum is the content hash of a regular file, shared by hard links.
	sum *fileSum

	// Only with Options.Full.
	Target  string  // symlink target
	Xattrs  []Xattr // sorted by name
	attr    uint32  // FS_IOC_GETFLAGS of a directory
	hasAttr bool
}

// Xattr is one extended attribute.
type Xattr struct{ Name, Value string }

// IsRegular reports whether the entry is a regular file.
func (e *Entry) IsRegular() bool { return e.Mode&unix.S_IFMT == unix.S_IFREG }

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Mode&unix.S_IFMT == unix.S_IFDIR }

// Options tune Scan.
type Options struct {
	// Jobs is how many files are hashed at once; 0 means one per CPU.
	Jobs int
	// Full also reads symlink targets, xattrs and file attributes.
	Full bool
	// Portable records every directory's link count as 1, as btrfs has
	// it: other filesystems count "." and subdirectories, so a tree
	// restored there would differ from its btrfs source in that alone.
	Portable bool
	// OnProblem is called (from any goroutine, one call at a time) for
	// every entry that could not be read, and for files that changed
	// while being read (changed is then true). Scan goes on.
	OnProblem func(err error, changed bool)
}

// Tree is a scanned directory tree.
type Tree struct {
	// Top is the directory scanned, as given.
	Top string
	// Entries are in walk order; the top directory is not among them, nor
	// directories on another filesystem (mount points) and what is below.
	Entries []*Entry
	// Files and Bytes count the distinct regular files (inodes) hashed.
	Files, Bytes int64
	// Failed counts entries that could not be read, Changed files that
	// changed while being read.
	Failed, Changed int
}

// Progress is read while Scan runs, for progress lines.
type Progress struct {
	Entries atomic.Int64
	Bytes   atomic.Int64
}

// ErrUnreadable is wrapped by Scan's error when entries could not be read.
var ErrUnreadable = errors.New("could not be read")

// Scan walks top without leaving its filesystem, and hashes every regular
// file, several at once. Problems with single entries are reported to
// opts.OnProblem and make Scan fail at the end, never skip silently.
func Scan(ctx context.Context, top string, opts Options, prog *Progress) (*Tree, error) {
	if prog == nil {
		prog = new(Progress)
	}
	var st unix.Stat_t
	if err := unix.Stat(top, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", top, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%s: not a directory", top)
	}
	t := &Tree{Top: top}
	var mu sync.Mutex
	problem := func(err error, changed bool) {
		mu.Lock()
		defer mu.Unlock()
		if changed {
			t.Changed++
		} else {
			t.Failed++
		}
		if opts.OnProblem != nil {
			opts.OnProblem(err, changed)
		}
	}
	h := newHasher(ctx, opts.Jobs, opts.Full, prog, problem)
	walkErr := t.walk(ctx, st.Dev, opts, h, prog, problem)
	files, bytes := h.wait()
	t.Files, t.Bytes = files, bytes
	if walkErr != nil {
		return nil, walkErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.Failed > 0 {
		return nil, fmt.Errorf("%s: %d entries %w", top, t.Failed, ErrUnreadable)
	}
	return t, nil
}

type devIno struct{ dev, ino uint64 }

func (t *Tree) walk(ctx context.Context, topDev uint64, opts Options, h *hasher, prog *Progress, problem func(error, bool)) error {
	type dir struct {
		rel string
		e   *Entry // nil for the top
	}
	full := opts.Full
	stack := []dir{{}}
	links := map[devIno]*fileSum{}
	var linkBuf []byte
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		abs := filepath.Join(t.Top, d.rel)
		flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
		if d.e != nil {
			flags |= unix.O_NOFOLLOW
		}
		uid := uint32(0)
		if d.e != nil {
			uid = d.e.UID
		}
		fd, err := openNoatime(abs, flags, uid)
		if err != nil {
			if d.e == nil {
				return fmt.Errorf("%s: %w", abs, err)
			}
			problem(fmt.Errorf("%s: %w", abs, err), false)
			continue
		}
		f := os.NewFile(uintptr(fd), abs)
		names, err := f.Readdirnames(-1)
		if err != nil {
			f.Close()
			problem(fmt.Errorf("%s: %w", abs, err), false)
			continue
		}
		if full && d.e != nil {
			d.e.attr, d.e.hasAttr, err = getAttr(fd)
			if err != nil {
				problem(fmt.Errorf("%s: file attributes: %w", abs, err), false)
			}
		}
		// Sorted so that directories are visited in a stable order; the
		// output is sorted anyway.
		sort.Strings(names)
		var subdirs []dir
		for _, name := range names {
			rel := name
			if d.rel != "" {
				rel = d.rel + "/" + name
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				problem(fmt.Errorf("%s: %w", filepath.Join(abs, name), err), false)
				continue
			}
			e := &Entry{
				Path: rel, Mode: st.Mode, Nlink: uint64(st.Nlink), UID: st.Uid, GID: st.Gid,
				MtimeSec: st.Mtim.Sec, MtimeNsec: st.Mtim.Nsec, Size: st.Size,
				Rdev: st.Rdev, Dev: st.Dev, Ino: st.Ino,
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if opts.Portable {
					e.Nlink = 1
				}
				if st.Dev != topDev {
					// A mount point (or a nested btrfs subvolume): like
					// find -xdev, neither listed nor entered.
					continue
				}
				subdirs = append(subdirs, dir{rel, e})
			case unix.S_IFREG:
				if st.Nlink > 1 {
					k := devIno{st.Dev, st.Ino}
					if s, ok := links[k]; ok {
						e.sum = s
						break
					}
					e.sum = h.submit(filepath.Join(abs, name), &st)
					links[k] = e.sum
				} else {
					e.sum = h.submit(filepath.Join(abs, name), &st)
				}
			case unix.S_IFLNK:
				if full {
					if cap(linkBuf) < int(st.Size)+1 {
						linkBuf = make([]byte, st.Size+256)
					}
					n, err := unix.Readlinkat(fd, name, linkBuf[:cap(linkBuf)])
					if err != nil {
						problem(fmt.Errorf("%s: %w", filepath.Join(abs, name), err), false)
					} else {
						e.Target = string(linkBuf[:n])
					}
				}
			}
			if full {
				xs, err := readXattrs(filepath.Join(abs, name))
				if err != nil {
					problem(fmt.Errorf("%s: xattrs: %w", filepath.Join(abs, name), err), false)
				}
				e.Xattrs = xs
			}
			t.Entries = append(t.Entries, e)
			prog.Entries.Add(1)
		}
		f.Close()
		// Push in reverse so that the walk goes in name order.
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return nil
}

// euid decides whether O_NOATIME is worth trying.
var euid = uint32(os.Geteuid())

// openNoatime opens path without updating its access time when allowed
// (the owner, uid, or root), so that checking a backup never writes to it.
func openNoatime(path string, flags int, uid uint32) (int, error) {
	noatime := 0
	if euid == 0 || euid == uid {
		noatime = unix.O_NOATIME
	}
	for {
		fd, err := unix.Open(path, flags|noatime, 0)
		if err == unix.EPERM && noatime != 0 {
			fd, err = unix.Open(path, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// getAttr reads the inode flags (chattr/lsattr) of an open file; ok is
// false where the filesystem has none.
func getAttr(fd int) (attr uint32, ok bool, err error) {
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	switch err {
	case nil:
		return v, true, nil
	case unix.ENOTTY, unix.ENOTSUP, unix.EINVAL, unix.ENOSYS:
		return 0, false, nil
	}
	return 0, false, err
}

// readXattrs lists and reads the extended attributes of path (not
// following a symlink), sorted by name.
func readXattrs(path string) ([]Xattr, error) {
	size, err := unix.Llistxattr(path, nil)
	if err == unix.ENOTSUP || size == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size+256)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return nil, err
	}
	var xs []Xattr
	for _, name := range splitNul(buf[:n]) {
		vsize, err := unix.Lgetxattr(path, name, nil)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v := make([]byte, vsize+256)
		vn, err := unix.Lgetxattr(path, name, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		xs = append(xs, Xattr{Name: name, Value: string(v[:vn])})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	return xs, nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}
