package bsrecv

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/pathmatch"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/tarball"
)

// A tar restore applies streams in a temporary directory that the user
// may not be allowed to make exact: without root, files cannot be given
// away (CHOWN), devices not made (MKNOD), security.* and trusted.*
// attributes not set, and a mode without the owner's read or write bits
// would lock this very process out of the rest of the stream and of the
// archive. What the directory cannot hold is kept in an overlay, keyed by
// the temporary inode (device and inode number), and the archive takes
// it from there: it carries what the stream said, whoever runs bsrecv.
// Memory is bounded by the number of inodes with such metadata (without
// root: every inode, as every one gets a CHOWN).

type devIno struct{ dev, ino uint64 }

// meta is what the overlay holds of one inode.
type meta struct {
	uid, gid uint64
	owner    bool
	mode     uint32
	hasMode  bool
	// devType is S_IFCHR or S_IFBLK for a device that stands in the
	// directory as an empty regular file.
	devType uint32
	rdev    uint64
	xattrs  map[string][]byte
}

type overlay struct {
	byIno map[devIno]*meta
	// filter selects what is restored; skipped are the inodes whose
	// data was dropped since their path was not selected.
	filter  *pathmatch.Filter
	skipped map[devIno]struct{}
	// modes: every CHMOD goes to the overlay, and the directory gets a
	// mode the owner can read, write and search (not root).
	modes bool
}

func newOverlay(filter *pathmatch.Filter) *overlay {
	return &overlay{byIno: map[devIno]*meta{}, modes: os.Geteuid() != 0, filter: filter, skipped: map[devIno]struct{}{}}
}

// forget drops what the overlay holds of an inode whose last name went:
// a new inode may get its number.
func (o *overlay) forget(k devIno) {
	delete(o.byIno, k)
	delete(o.skipped, k)
}

func (o *overlay) get(k devIno, create bool) *meta {
	m := o.byIno[k]
	if m == nil && create {
		m = &meta{}
		o.byIno[k] = m
	}
	return m
}

// adjust is tarball.Options.Adjust.
func (o *overlay) adjust(st *unix.Stat_t, h *tarball.Header) error {
	k := devIno{uint64(st.Dev), st.Ino}
	if _, ok := o.skipped[k]; ok && h.Type == tarball.TypeReg {
		return hint.Wrap(fmt.Errorf("%s: selected, but its data was dropped when it was written under a name not selected (renamed into the selection later)", h.Name),
			"restore without --include/--exclude and pick with tar: bsrecv --tar | tar -x --wildcards 'NAME/PATH*'")
	}
	m := o.byIno[k]
	if m == nil {
		return nil
	}
	if m.owner {
		h.UID, h.GID = m.uid, m.gid
	}
	if m.hasMode {
		h.Mode = m.mode
	}
	if m.devType != 0 && h.Type == tarball.TypeReg {
		h.Type, h.Size = tarball.TypeChar, 0
		if m.devType == unix.S_IFBLK {
			h.Type = tarball.TypeBlock
		}
		h.DevMajor, h.DevMinor = unix.Major(m.rdev), unix.Minor(m.rdev)
	}
	if len(m.xattrs) > 0 {
		x := h.Xattrs[:0]
		for _, a := range h.Xattrs {
			if _, ok := m.xattrs[a.Name]; !ok {
				x = append(x, a)
			}
		}
		for k, v := range m.xattrs {
			x = append(x, tarball.Xattr{Name: k, Value: v})
		}
		h.Xattrs = x
	}
	return nil
}

// overlayTree is the DirTree of the temporary directory, with what it
// cannot hold going to the overlay.
type overlayTree struct {
	*receive.DirTree
	ov *overlay
	// lastSkip is the path whose data was dropped last: the writes of
	// one file come one after the other.
	lastSkip string
	// parent answers clones from the parent of an incremental stream
	// (tarparent.go); nil for a full stream.
	parent *parentView
	// lastChanged is the path (and its inode) whose change was recorded
	// last for parent.
	lastChanged    string
	lastChangedIno devIno
}

// moved forgets the paths cached: a name changed.
func (t *overlayTree) moved() { t.lastSkip, t.lastChanged = "", "" }

// denied reports the errors of an operation the directory or the user
// cannot carry out, for which the overlay stands in.
func denied(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.EINVAL)
}

// stat is path's inode, not following it.
func (t *overlayTree) stat(path string) (devIno, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := t.Open(path, unix.O_PATH)
	if err != nil {
		return devIno{}, st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return devIno{}, st, err
	}
	return devIno{uint64(st.Dev), st.Ino}, st, nil
}

func (t *overlayTree) Chown(path string, uid, gid uint64) error {
	err := t.DirTree.Chown(path, uid, gid)
	if err != nil && !denied(err) {
		return err
	}
	k, _, serr := t.stat(path)
	if serr != nil {
		return serr
	}
	if err == nil {
		if m := t.ov.get(k, false); m != nil {
			m.owner = false
		}
		return nil
	}
	m := t.ov.get(k, true)
	m.uid, m.gid, m.owner = uid, gid, true
	return nil
}

func (t *overlayTree) Chmod(path string, mode uint32) error {
	if !t.ov.modes {
		return t.DirTree.Chmod(path, mode)
	}
	k, st, err := t.stat(path)
	if err != nil {
		return err
	}
	m := t.ov.get(k, true)
	m.mode, m.hasMode = mode, true
	// Owner read and write (and search for a directory): this process
	// goes on working in it and archives it.
	own := mode&0o777 | 0o600
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		own |= 0o700
	}
	return t.DirTree.Chmod(path, own)
}

func (t *overlayTree) Mknod(path string, mode uint32, rdev uint64) error {
	err := t.DirTree.Mknod(path, mode, rdev)
	typ := mode & unix.S_IFMT
	if err == nil || !denied(err) || (typ != unix.S_IFCHR && typ != unix.S_IFBLK) {
		return err
	}
	if err := t.Mkfile(path); err != nil {
		return err
	}
	k, _, err := t.stat(path)
	if err != nil {
		return err
	}
	m := t.ov.get(k, true)
	m.devType, m.rdev = typ, rdev
	return nil
}

func (t *overlayTree) SetXattr(path, name string, data []byte) error {
	err := t.DirTree.SetXattr(path, name, data)
	if err != nil && !denied(err) {
		return err
	}
	k, _, serr := t.stat(path)
	if serr != nil {
		return serr
	}
	if err == nil {
		if m := t.ov.get(k, false); m != nil {
			delete(m.xattrs, name)
		}
		return nil
	}
	m := t.ov.get(k, true)
	if m.xattrs == nil {
		m.xattrs = map[string][]byte{}
	}
	m.xattrs[name] = append([]byte(nil), data...)
	return nil
}

func (t *overlayTree) RemoveXattr(path, name string) error {
	k, _, err := t.stat(path)
	if err != nil {
		return err
	}
	if m := t.ov.get(k, false); m != nil {
		if _, ok := m.xattrs[name]; ok {
			delete(m.xattrs, name)
			return nil
		}
	}
	return t.DirTree.RemoveXattr(path, name)
}

// gone drops the overlay of the inode path names when its last name is
// about to go: a new inode may get its number.
func (t *overlayTree) goneAfter(path string, op func() error) error {
	k, st, serr := t.stat(path)
	if t.parent != nil {
		if err := t.keep(path); err != nil {
			return err
		}
	}
	if err := op(); err != nil {
		return err
	}
	t.moved()
	if serr == nil && (st.Nlink <= 1 || st.Mode&unix.S_IFMT == unix.S_IFDIR) {
		t.ov.forget(k)
	}
	return nil
}

func (t *overlayTree) Unlink(path string) error {
	return t.goneAfter(path, func() error { return t.DirTree.Unlink(path) })
}

func (t *overlayTree) Rmdir(path string) error {
	return t.goneAfter(path, func() error { return t.DirTree.Rmdir(path) })
}

func (t *overlayTree) Rename(from, to string) error {
	t.moved()
	kf, _, _ := t.stat(from)
	kt, st, err := t.stat(to)
	replaces := err == nil && kt != kf
	if t.parent != nil {
		if replaces {
			if err := t.keep(to); err != nil {
				return err
			}
		}
		t.parent.log = append(t.parent.log, logEntry{from: from, to: to})
	}
	if !replaces {
		return t.DirTree.Rename(from, to)
	}
	if err := t.DirTree.Rename(from, to); err != nil {
		return err
	}
	if st.Nlink <= 1 || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		t.ov.forget(kt)
	}
	return nil
}

// Selective restores drop the data of what is not selected rather than
// write it. The path a command names is not always the file's last: the
// kernel makes new inodes under orphan names (o<ino>-<gen>-<idx>) in the
// root and renames them, a directory can be renamed after its files
// were written, and a file with hard links is written under one of its
// names only. So data is dropped only for a path that is not selected,
// not below an orphan name and the inode's only name, the inode is
// remembered, and the restore fails rather than carry a remembered inode
// that a later rename brought into the selection.

// skip reports whether the data written to path is dropped, and
// remembers the inode if so.
func (t *overlayTree) skip(path string) (bool, error) {
	if t.ov.filter == nil {
		return false, nil
	}
	if path == t.lastSkip {
		return true, nil
	}
	if t.ov.filter.Match(path) || orphan(path) {
		return false, nil
	}
	k, st, err := t.stat(path)
	if err != nil {
		return false, err
	}
	if st.Nlink > 1 {
		// Another of its names may be selected: the stream writes a
		// file once, under any one of them.
		return false, nil
	}
	t.ov.skipped[k] = struct{}{}
	t.lastSkip = path
	return true, nil
}

// orphan reports whether path lies below a name of the form the kernel
// gives new and displaced inodes in the root: o<ino>-<gen>-<idx>.
func orphan(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	if len(first) < 6 || first[0] != 'o' {
		return false
	}
	parts := strings.Split(first[1:], "-")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func (t *overlayTree) Write(path string, offset uint64, data []byte) error {
	if skip, err := t.skip(path); skip || err != nil {
		return err
	}
	if err := t.changedAt(path, offset, max(uint64(len(data)), 1)); err != nil {
		return err
	}
	return t.DirTree.Write(path, offset, data)
}

func (t *overlayTree) EncodedWrite(path string, e *receive.Encoded) error {
	if skip, err := t.skip(path); skip || err != nil {
		return err
	}
	if err := t.changedAt(path, e.Offset, max(e.UnencodedFileLen, 1)); err != nil {
		return err
	}
	return t.DirTree.EncodedWrite(path, e)
}

func (t *overlayTree) Fallocate(path string, mode uint32, offset, n uint64) error {
	if skip, err := t.skip(path); skip || err != nil {
		return err
	}
	if err := t.changedAt(path, offset, max(n, 1)); err != nil {
		return err
	}
	err := t.DirTree.Fallocate(path, mode, offset, n)
	if errors.Is(err, unix.EOPNOTSUPP) && mode&unix.FALLOC_FL_PUNCH_HOLE != 0 {
		// A filesystem that cannot punch holes (NFS, for one) gets
		// zeros: the same bytes, in the archive too.
		return t.zero(path, offset, n)
	}
	return err
}

// zero writes zeros over [offset, offset+n) of path, within its size.
func (t *overlayTree) zero(path string, offset, n uint64) error {
	fd, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	size := uint64(st.Size)
	if offset >= size {
		return nil
	}
	end := size
	if n < size-offset {
		end = offset + n
	}
	buf := make([]byte, min(end-offset, 1<<20))
	for off := offset; off < end; {
		c := min(end-off, uint64(len(buf)))
		if err := t.DirTree.Write(path, off, buf[:c]); err != nil {
			return err
		}
		off += c
	}
	return nil
}

// EnableVerity does nothing: an archive cannot hold fs-verity, and the
// temporary directory's filesystem may not have it.
func (t *overlayTree) EnableVerity(string, *receive.Verity) error { return nil }

func (t *overlayTree) Truncate(path string, size uint64) error {
	if err := t.changedAt(path, size, 0); err != nil {
		return err
	}
	return t.DirTree.Truncate(path, size)
}

// Clone drops the copy into a file not selected; a copy from a file
// whose data was dropped into one that is kept cannot be made.
func (t *overlayTree) Clone(path string, offset uint64, src receive.ID, srcPath string, srcOffset, n uint64) error {
	if skip, err := t.skip(path); skip || err != nil {
		return err
	}
	if err := t.changedAt(path, offset, n); err != nil {
		return err
	}
	if t.parent != nil && src == t.parent.id {
		return t.cloneFromParent(path, offset, srcPath, srcOffset, n)
	}
	if len(t.ov.skipped) > 0 {
		k, _, err := t.stat(srcPath)
		if err != nil {
			return err
		}
		if _, ok := t.ov.skipped[k]; ok {
			return hint.Wrap(fmt.Errorf("clone %q from %q: its data was dropped, it was not selected", path, srcPath),
				"restore without --include/--exclude and pick with tar: bsrecv --tar | tar -x --wildcards 'NAME/PATH*'")
		}
	}
	return t.DirTree.Clone(path, offset, src, srcPath, srcOffset, n)
}
