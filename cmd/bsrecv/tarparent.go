package bsrecv

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/receive"
)

// An incremental stream applied in place has no parent snapshot beside
// it: the directory was the parent when the stream began and changes
// under it. The kernel still names clone sources in the parent, by their
// path there, when no file already sent holds the extent (a reflinked
// copy of a file since deleted or rewritten, for one). parentView answers
// such clones from what is left of the parent:
//
//   - every rename, unlink and rmdir of the stream is logged, so that a
//     path of the parent maps to the name its inode has now;
//   - a regular file about to lose a name (unlink, or replaced by a
//     rename) is first hard-linked into a stash directory beside the
//     tree, so that it stays there until the stream ends;
//   - the ranges each inode had written, truncated or cloned into are
//     kept: a clone from a parent range changed since fails, clearly,
//     rather than copy the new bytes.
//
// Memory grows with the stream's renames and removals and the inodes it
// writes to: bounded by the number of files, like the overlay.
type parentView struct {
	id    receive.ID
	stash int // directory descriptor
	dir   string
	n     int
	log   []logEntry
	// written holds the ranges changed of each inode, merged.
	written map[devIno][]span
}

type logEntry struct {
	from, to string
	// gone: from lost its name; stash is where its inode stays ("" for
	// a directory).
	gone  bool
	stash string
}

type span struct{ off, end uint64 }

// maxSpans bounds the ranges kept per inode; more are merged into one
// span covering them all (a clone from between them then fails too).
const maxSpans = 256

func newParentView(id receive.ID, dir string) (*parentView, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &parentView{id: id, stash: fd, dir: dir, written: map[devIno][]span{}}, nil
}

// close removes the stash: the stream is over.
func (v *parentView) close() error {
	unix.Close(v.stash)
	return os.RemoveAll(v.dir)
}

// wrote records that [off, off+n) of inode k changed (n 0: to the end).
func (v *parentView) wrote(k devIno, off, n uint64) {
	end := uint64(math.MaxUint64)
	if n != 0 && off <= math.MaxUint64-n {
		end = off + n
	}
	s := v.written[k]
	if l := len(s); l > 0 && s[l-1].off <= end && off <= s[l-1].end {
		s[l-1] = span{min(s[l-1].off, off), max(s[l-1].end, end)}
	} else {
		s = append(s, span{off, end})
	}
	if len(s) > maxSpans {
		all := s[0]
		for _, x := range s[1:] {
			all = span{min(all.off, x.off), max(all.end, x.end)}
		}
		s = append(s[:0], all)
	}
	v.written[k] = s
}

func (v *parentView) changed(k devIno, off, n uint64) bool {
	end := uint64(math.MaxUint64)
	if n != 0 && off <= math.MaxUint64-n {
		end = off + n
	}
	for _, s := range v.written[k] {
		if s.off < end && off < s.end {
			return true
		}
	}
	return false
}

// where maps a path of the parent to its inode's name now: a path in the
// tree, or (stashed) a name in the stash directory.
func (v *parentView) where(p string) (path string, stashed bool) {
	for _, e := range v.log {
		switch {
		case e.gone && p == e.from:
			if e.stash == "" {
				return "", false
			}
			return e.stash, true
		case e.gone:
		case p == e.from:
			p = e.to
		case under(p, e.from):
			p = e.to + p[len(e.from):]
		}
	}
	return p, false
}

func under(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// keep stashes path's inode, if a regular file, before it loses that
// name, and logs the loss.
func (t *overlayTree) keep(path string) error {
	v := t.parent
	e := logEntry{from: path, gone: true}
	_, st, err := t.stat(path)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		fd, err := t.Open(path, unix.O_PATH)
		if err != nil {
			return err
		}
		v.n++
		e.stash = strconv.Itoa(v.n)
		err = unix.Linkat(fd, "", v.stash, e.stash, unix.AT_EMPTY_PATH)
		if err == unix.ENOENT || err == unix.EPERM {
			// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH before 6.10;
			// the magic link works for everyone.
			err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), v.stash, e.stash, unix.AT_SYMLINK_FOLLOW)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("keep %q of the parent for clones: %w", path, err)
		}
	}
	v.log = append(v.log, e)
	return nil
}

// cloneFromParent carries out a CLONE whose source is the parent
// snapshot.
func (t *overlayTree) cloneFromParent(path string, offset uint64, srcPath string, srcOffset, n uint64) error {
	v := t.parent
	p, stashed := v.where(srcPath)
	fail := func(why string) error {
		return fmt.Errorf("clone %q from %q of the parent: %s; a tar restore applies a chain in place, without the parent beside it (receive into btrfs, or into a directory)", path, srcPath, why)
	}
	switch {
	case p == "":
		return fail("not a file")
	case !stashed:
		k, _, err := t.stat(p)
		if err != nil {
			return fail(err.Error())
		}
		if v.changed(k, srcOffset, n) {
			return fail("that range changed earlier in the stream")
		}
		return t.DirTree.Clone(path, offset, t.Self, p, srcOffset, n)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(v.stash, p, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail(err.Error())
	}
	if v.changed(devIno{uint64(st.Dev), st.Ino}, srcOffset, n) {
		return fail("that range changed earlier in the stream")
	}
	src, err := unix.Openat(v.stash, p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err.Error())
	}
	defer unix.Close(src)
	dst, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	if n == 0 && uint64(st.Size) > srcOffset {
		n = uint64(st.Size) - srcOffset
	}
	if srcOffset > math.MaxInt64-n || offset > math.MaxInt64-n {
		return fail("range out of range")
	}
	roff, woff := int64(srcOffset), int64(offset)
	for n > 0 {
		c, err := unix.CopyFileRange(src, &roff, dst, &woff, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("clone %q: %w", path, err)
		}
		if c == 0 {
			return fail("the source ends before the range")
		}
		n -= uint64(c)
	}
	return nil
}

// changedAt records a data change of path's inode, for parent clones.
func (t *overlayTree) changedAt(path string, off, n uint64) error {
	if t.parent == nil {
		return nil
	}
	if path != t.lastChanged {
		k, _, err := t.stat(path)
		if err != nil {
			return err
		}
		t.lastChanged, t.lastChangedIno = path, k
	}
	t.parent.wrote(t.lastChangedIno, off, n)
	return nil
}

// stashDir names the stash of the stream number i beside the tree.
func stashDir(tmp string, i int) string { return filepath.Join(tmp, "stash"+strconv.Itoa(i)) }
