package receive

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/uuid"
)

// PlainDest receives snapshots into a plain-directory mirror (dir://) on
// any filesystem: each one a directory DIR/NAME beside its marker
// (plainmarker.go). A full stream starts from an empty directory; an
// incremental one from a copy of its parent's directory, found by its
// marker below the mirror's root only, made cheaply: each regular file a
// reflink (FICLONE) where the filesystem has them, else a hard link to
// the parent's file, broken (copied to a new inode) before any command
// changes that file's data or metadata. So no completed directory ever
// changes, and a chain costs about its changed data.
type PlainDest struct {
	root int
	dir  int
	// NonRoot receives as a user who cannot set owners: a chown, the
	// making of a device file and the setting of a trusted. or security.
	// xattr that fail with EPERM are counted (PlainTree.Unset) instead
	// of failing the stream; a device file is then an empty regular
	// file.
	NonRoot bool
	// noReflink: FICLONE failed once on this destination.
	noReflink bool
	// now is the clock (tests set it).
	now func() time.Time
}

// NewPlainDest returns a Dest making snapshot directories in the
// directory open at dir, which is the mirror's root (open at root) or
// below it. Both descriptors are borrowed: they must stay open while the
// PlainDest and its Trees are in use.
func NewPlainDest(root, dir int) *PlainDest {
	return &PlainDest{root: root, dir: dir, now: time.Now}
}

// PlainState is what holds a snapshot's name in a mirror.
type PlainState int

// What Examine finds.
const (
	// PlainNone: nothing; Begin may make it.
	PlainNone PlainState = iota
	// PlainComplete: the same snapshot, complete.
	PlainComplete
	// PlainLeftover: the trace of an interrupted receive, which
	// RemoveLeftover deletes.
	PlainLeftover
)

// Examine says what holds name in the directory, for a stream of the
// snapshot id. Anything not made by a receive into the mirror (or
// another snapshot) is an error.
func (d *PlainDest) Examine(name string, id ID) (PlainState, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	m, err := ReadMarker(d.dir, name)
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	nameErr := fstatat(d.dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	var tst unix.Stat_t
	tempErr := fstatat(d.dir, TempName(name), &tst, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case m == nil && nameErr == nil:
		return 0, fmt.Errorf("%q already exists and is not a received snapshot (no marker %s)", name, MarkerName(name))
	case m == nil && tempErr == nil:
		return 0, fmt.Errorf("%s exists without a marker: not left by bsrecv, delete it by hand", TempName(name))
	case m == nil:
		return PlainNone, nil
	case m.State == StateComplete && nameErr == nil && st.Ino == m.Ino && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		if m.Filter != nil {
			return 0, fmt.Errorf("%q holds part of a snapshot (a restore with --include/--exclude), not the snapshot", name)
		}
		if m.ReceivedUUID == id.UUID && m.STransID == id.CTransID {
			return PlainComplete, nil
		}
		return 0, fmt.Errorf("%q already holds another snapshot (received uuid %s, stransid %d)", name, m.ReceivedUUID.Canonical(), m.STransID)
	case nameErr != nil && (tempErr != nil || tst.Ino == m.Ino):
		// Receiving, or complete but cut before the rename to its name.
		return PlainLeftover, nil
	}
	return 0, fmt.Errorf("%q and its marker %s do not match (state %s): not left by bsrecv, move them away", name, MarkerName(name), m.State)
}

// RemoveLeftover deletes what an interrupted receive of name left: its
// temporary directory (only the one its marker names, by inode) and the
// marker. Call it after Examine found PlainLeftover.
func (d *PlainDest) RemoveLeftover(name string) error {
	m, err := ReadMarker(d.dir, name)
	if err != nil || m == nil {
		return fmt.Errorf("%q: no leftover of a receive", name)
	}
	var st unix.Stat_t
	if m.State == StateComplete && m.PartIno != 0 && fstatat(d.dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Ino == m.Ino {
		// Beside a complete in-place directory: only the temporary one.
		if fstatat(d.dir, TempName(name), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Ino != m.PartIno || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return fmt.Errorf("%s is not the directory its marker names", TempName(name))
			}
			if err := RemoveTree(d.dir, TempName(name)); err != nil {
				return err
			}
		}
		m.PartIno = 0
		return WriteMarker(d.dir, m)
	}
	if m.Filter != nil {
		// A selective restore's stash, which only it makes.
		if err := RemoveTree(d.dir, StashName(name)); err != nil {
			return err
		}
	}
	if err := fstatat(d.dir, TempName(name), &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if st.Ino != m.Ino || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s is not the directory its marker names", TempName(name))
		}
		if err := RemoveTree(d.dir, TempName(name)); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(d.dir, MarkerName(name), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("%s: %w", MarkerName(name), err)
	}
	return unix.Fsync(d.dir)
}

func checkName(name string) error {
	if err := names.Component(name); err != nil {
		return err
	}
	if Reserved(name) {
		return fmt.Errorf("%q: a name a plain-directory mirror keeps for its markers", name)
	}
	return nil
}

// Begin makes the temporary directory of name, writes its marker
// (receiving) and, for an incremental stream, copies the parent into it.
// On an error after the marker is written, the leftover is for
// RemoveLeftover.
func (d *PlainDest) Begin(name string, id ID, parent *ID) (Tree, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var pm *Marker
	var pfd = -1
	if parent != nil {
		var err error
		if pm, pfd, err = d.findDir(*parent); err != nil {
			return nil, fmt.Errorf("parent %s: %w", parent.UUID.Canonical(), err)
		}
		defer unix.Close(pfd)
	}
	temp := TempName(name)
	tfd, st, err := d.makeTemp(temp)
	if err != nil {
		return nil, err
	}
	defer unix.Close(tfd)
	own, err := newUUID()
	if err != nil {
		return nil, err
	}
	m := &Marker{Format: MarkerFormat, State: StateReceiving, Name: name, Ino: st.Ino, Temp: temp,
		UUID: own, ReceivedUUID: id.UUID, STransID: id.CTransID, OTime: d.now().UTC()}
	if pm != nil {
		m.ParentUUID, m.ParentReceivedUUID, m.ParentSTransID = pm.UUID, parent.UUID, parent.CTransID
	}
	if err := WriteMarker(d.dir, m); err != nil {
		unix.Unlinkat(d.dir, temp, unix.AT_REMOVEDIR)
		return nil, err
	}
	dt, err := NewDirTree(tfd)
	if err != nil {
		return nil, err
	}
	dt.Self = id
	t := &PlainTree{DirTree: dt, dest: d, marker: m, shared: map[devIno]struct{}{}}
	if pfd >= 0 {
		if err := t.copyParent(pfd); err != nil {
			dt.Close()
			return nil, fmt.Errorf("copying parent %s: %w", pm.Name, err)
		}
	}
	return t, nil
}

// findDir finds the complete snapshot directory below the mirror's root
// holding the snapshot id, and opens it beneath the root.
func (d *PlainDest) findDir(id ID) (*Marker, int, error) {
	ents, err := ListPlain(d.root)
	if err != nil {
		return nil, -1, err
	}
	for _, e := range ents {
		m := e.Marker
		if !e.Complete || m.Filter != nil || m.ReceivedUUID != id.UUID || m.STransID != id.CTransID {
			continue
		}
		fd, err := openIn(d.root, e.Path, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			return nil, -1, fmt.Errorf("%s: %w", e.Path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Ino != m.Ino {
			unix.Close(fd)
			return nil, -1, fmt.Errorf("%s: changed while receiving", e.Path)
		}
		return m, fd, nil
	}
	return nil, -1, fmt.Errorf("no complete snapshot directory with received uuid %s and stransid %d below the destination", id.UUID.Canonical(), id.CTransID)
}

type devIno struct{ dev, ino uint64 }

// errNoReflink: the destination cannot share data by reflink.
var errNoReflink = errors.New("no reflinks")

// PlainTree is a Tree on the temporary directory of a snapshot being
// received into a mirror: a DirTree that first breaks the hard links it
// shares with the parent's directory, takes clone sources from other
// snapshot directories of the mirror, and at End makes the directory
// complete.
type PlainTree struct {
	*DirTree
	dest   *PlainDest
	marker *Marker
	// shared are the inodes hard-linked to the parent's directory, which
	// must not change: a command changing one first copies it.
	shared map[devIno]struct{}
	// sources are the other snapshots' directories cloned from.
	sources map[ID]int
	unset   Unset
	inPlace bool
	// dirModes are, for a non-root receive, the modes of the directories
	// without full owner permission, which are left rwx for the owner
	// until End: the user could not make their entries otherwise.
	dirModes map[devIno]uint32
}

// Unset counts what a non-root receive could not set.
type Unset struct {
	Owners, Devices, Xattrs int
}

// Unset is what could not be set (PlainDest.NonRoot).
func (t *PlainTree) Unset() Unset { return t.unset }

// Marker is the snapshot directory's marker (complete after End).
func (t *PlainTree) Marker() *Marker { return t.marker }

// breakLink makes path, if it is a file shared with the parent's
// directory, a copy of its own (same data, holes, owner, mode, xattrs,
// times) under the same name.
func (t *PlainTree) breakLink(path string) error {
	if len(t.shared) == 0 {
		return nil
	}
	if t.wfd >= 0 && path == t.wpath {
		// Opened for writing after its check: already its own.
		return nil
	}
	d, base, err := t.parent(path, true)
	if err != nil {
		return err
	}
	defer t.release(d)
	var st unix.Stat_t
	if err := fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // the command itself reports it
	}
	k := devIno{st.Dev, st.Ino}
	if _, ok := t.shared[k]; !ok || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	t.dropWrite()
	if err := t.copyOver(d.fd, base, d.fd, base, &st, false); err != nil {
		return pathErr("copy before changing", path, err)
	}
	delete(t.shared, k)
	return nil
}

// copyOver copies the regular file sbase in sdir (stat st) to dbase in
// ddir through a new name, renamed over dbase, so that dbase is never
// missing or partial. With reflink it is a reflink or errNoReflink.
func (t *PlainTree) copyOver(sdir int, sbase string, ddir int, dbase string, st *unix.Stat_t, reflink bool) error {
	src, err := openat2(sdir, sbase, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, resolve)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	// The directory's times are the stream's (or the parent's): the
	// new name and the rename must not change them.
	var dst0 unix.Stat_t
	if err := unix.Fstat(ddir, &dst0); err != nil {
		return err
	}
	defer futimes(ddir, &dst0)
	var tmp string
	var dst int
	for i := 0; ; i++ {
		tmp = ".bsrecv-copy." + strconv.Itoa(i)
		dst, err = openat2(ddir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600, resolve)
		if err != unix.EEXIST || i > 1000 {
			break
		}
	}
	if err != nil {
		return err
	}
	err = t.copyData(src, dst, st, reflink)
	if err == nil {
		err = t.copyMeta(dst, src, st)
	}
	if err == nil {
		// The times last: nothing after them changes the file.
		err = futimes(dst, st)
	}
	unix.Close(dst)
	if err == nil {
		err = unix.Renameat(ddir, tmp, ddir, dbase)
	}
	if err != nil {
		unix.Unlinkat(ddir, tmp, 0)
	}
	return err
}

func futimes(fd int, st *unix.Stat_t) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), statTimes(st), 0)
}

func statTimes(st *unix.Stat_t) []unix.Timespec {
	return []unix.Timespec{st.Atim, st.Mtim}
}

// copyData copies a regular file's data: with reflink a reflink or
// errNoReflink, else its data ranges only (holes stay holes).
func (t *PlainTree) copyData(src, dst int, st *unix.Stat_t, reflink bool) error {
	if reflink {
		if err := unix.IoctlFileClone(dst, src); err != nil {
			t.dest.noReflink = true
			return errNoReflink
		}
		return nil
	}
	size := st.Size
	var off int64
	for off < size {
		data, err := unix.Seek(src, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			// No SEEK_DATA: all of it is data.
			data = off
		}
		hole, err := unix.Seek(src, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if err := copyRange(src, data, dst, data, uint64(hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return unix.Ftruncate(dst, size)
}

// copyRange copies n bytes with copy_file_range (which shares extents
// where the filesystem can).
func copyRange(src int, soff int64, dst int, doff int64, n uint64) error {
	for n > 0 {
		c, err := unix.CopyFileRange(src, &soff, dst, &doff, int(min(n, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if c == 0 {
			return errors.New("source ends before the range")
		}
		n -= uint64(c)
	}
	return nil
}

// copyMeta gives the open file dst src's owner, mode and xattrs.
func (t *PlainTree) copyMeta(dst, src int, st *unix.Stat_t) error {
	if err := t.fchown(dst, st); err != nil {
		return err
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	return t.copyXattrs(func(b []byte) (int, error) { return unix.Flistxattr(src, b) },
		func(n string, b []byte) (int, error) { return unix.Fgetxattr(src, n, b) },
		func(n string, b []byte) error { return unix.Fsetxattr(dst, n, b, 0) })
}

func (t *PlainTree) fchown(fd int, st *unix.Stat_t) error {
	err := unix.Fchown(fd, int(st.Uid), int(st.Gid))
	if err == unix.EPERM && t.dest.NonRoot {
		t.unset.Owners++
		return nil
	}
	return err
}

// copyXattrs copies every xattr through the given calls.
func (t *PlainTree) copyXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error), set func(string, []byte) error) error {
	n, err := list(nil)
	if err == unix.ENOTSUP || n == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	buf := make([]byte, n)
	if n, err = list(buf); err != nil {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vn, err := get(name, nil)
		if err != nil {
			return err
		}
		val := make([]byte, vn)
		if vn, err = get(name, val); err != nil {
			return err
		}
		if err := set(name, val[:vn]); err != nil {
			if t.tolerated(err, name) {
				continue
			}
			return fmt.Errorf("xattr %q: %w", name, err)
		}
	}
	return nil
}

// tolerated counts an xattr a non-root user may not set.
func (t *PlainTree) tolerated(err error, name string) bool {
	if t.dest.NonRoot && err == unix.EPERM && (strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")) {
		t.unset.Xattrs++
		return true
	}
	return false
}

// The commands that change a file's data or metadata break its link to
// the parent first.

func (t *PlainTree) Write(path string, offset uint64, data []byte) error {
	return t.dataOp(path, func() error { return t.DirTree.Write(path, offset, data) })
}

func (t *PlainTree) Truncate(path string, size uint64) error {
	return t.dataOp(path, func() error { return t.DirTree.Truncate(path, size) })
}

func (t *PlainTree) Fallocate(path string, mode uint32, offset, n uint64) error {
	return t.dataOp(path, func() error { return t.DirTree.Fallocate(path, mode, offset, n) })
}

func (t *PlainTree) EncodedWrite(path string, e *Encoded) error {
	return t.dataOp(path, func() error { return t.DirTree.EncodedWrite(path, e) })
}

// dataOp changes path's data with op, after breaking its link. A
// non-root user's write clears the set-user-ID and set-group-ID bits
// (root keeps them, as btrfs receive does): they are put back.
func (t *PlainTree) dataOp(path string, op func() error) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	if !t.dest.NonRoot {
		return op()
	}
	var before unix.Stat_t
	fd, err := t.WriteFD(path)
	if errors.Is(err, unix.EACCES) {
		fd, err = t.writeFDAnyMode(path)
	}
	if err == nil {
		err = unix.Fstat(fd, &before)
	}
	if err != nil {
		return op() // the operation reports it
	}
	if err := op(); err != nil {
		return err
	}
	const setID = unix.S_ISUID | unix.S_ISGID
	if before.Mode&setID == 0 {
		return nil
	}
	var after unix.Stat_t
	if fd, err = t.WriteFD(path); err == nil {
		err = unix.Fstat(fd, &after)
	}
	if err == nil && after.Mode&setID != before.Mode&setID {
		err = unix.Fchmod(fd, before.Mode&0o7777)
	}
	if err != nil {
		return pathErr("keep set-id bits of", path, err)
	}
	return nil
}

func (t *PlainTree) Chmod(path string, mode uint32) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	if t.dest.NonRoot {
		var st unix.Stat_t
		d, base, err := t.parent(path, true)
		if err != nil {
			return err
		}
		err = fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		t.release(d)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			k := devIno{st.Dev, st.Ino}
			delete(t.dirModes, k)
			if mode&0o700 != 0o700 {
				t.keepDirMode(k, mode)
				mode |= 0o700
			}
		}
	}
	return t.DirTree.Chmod(path, mode)
}

func (t *PlainTree) keepDirMode(k devIno, mode uint32) {
	if t.dirModes == nil {
		t.dirModes = map[devIno]uint32{}
	}
	t.dirModes[k] = mode
}

// writeFDAnyMode opens path for writing where its mode does not let its
// owner (a non-root receive) write: with the owner's write permission
// for the open only.
func (t *PlainTree) writeFDAnyMode(path string) (int, error) {
	var st unix.Stat_t
	d, base, err := t.parent(path, false)
	if err != nil {
		return -1, err
	}
	defer t.release(d)
	if err := fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return t.WriteFD(path)
	}
	if err := unix.Fchmodat(d.fd, base, st.Mode&0o7777|0o200, 0); err != nil {
		return -1, pathErr("write", path, err)
	}
	fd, err := t.WriteFD(path)
	if err == nil {
		err = unix.Fchmod(fd, st.Mode&0o7777)
	}
	return fd, err
}

// restoreDirModes gives the directories of dirModes their modes, each
// after its entries (a mode may forbid entering it).
func (t *PlainTree) restoreDirModes(dir int) error {
	ents, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := openIn(dir, e, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			continue // not a directory
		}
		err = t.restoreDirModes(fd)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(dir, &st); err != nil {
		return err
	}
	if mode, ok := t.dirModes[devIno{st.Dev, st.Ino}]; ok {
		return unix.Fchmod(dir, mode)
	}
	return nil
}

func (t *PlainTree) Utimes(path string, atime, mtime, ctime Timespec) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	return t.DirTree.Utimes(path, atime, mtime, ctime)
}

func (t *PlainTree) EnableVerity(path string, v *Verity) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	return t.DirTree.EnableVerity(path, v)
}

func (t *PlainTree) Chown(path string, uid, gid uint64) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	err := t.DirTree.Chown(path, uid, gid)
	if t.dest.NonRoot && errors.Is(err, unix.EPERM) {
		t.unset.Owners++
		return nil
	}
	return err
}

func (t *PlainTree) SetXattr(path, name string, data []byte) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	err := t.DirTree.SetXattr(path, name, data)
	if err != nil && t.tolerated(errors.Unwrap(err), name) {
		return nil
	}
	return err
}

func (t *PlainTree) RemoveXattr(path, name string) error {
	if err := t.breakLink(path); err != nil {
		return err
	}
	return t.DirTree.RemoveXattr(path, name)
}

// Link breaks target's link to the parent first: the new name must be a
// link to the new snapshot's file, not to the parent's.
func (t *PlainTree) Link(path, target string) error {
	if err := t.breakLink(target); err != nil {
		return err
	}
	return t.DirTree.Link(path, target)
}

// Mknod makes an empty regular file where a non-root user cannot make a
// device file.
func (t *PlainTree) Mknod(path string, mode uint32, rdev uint64) error {
	err := t.DirTree.Mknod(path, mode, rdev)
	if t.dest.NonRoot && errors.Is(err, unix.EPERM) {
		t.unset.Devices++
		return t.at("mknod", path, false, func(dir int, base string) error {
			return unix.Mknodat(dir, base, unix.S_IFREG|0o600, 0)
		})
	}
	return err
}

// Clone copies the range. A source in another snapshot of the mirror is
// found by its marker, below the mirror's root only.
func (t *PlainTree) Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	return t.dataOp(path, func() error { return t.clone(path, offset, src, srcPath, srcOffset, n) })
}

func (t *PlainTree) clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	if src == t.Self {
		return t.DirTree.Clone(path, offset, src, srcPath, srcOffset, n)
	}
	root, err := t.source(src)
	if err != nil {
		return pathErr("clone", path, err)
	}
	sfd, err := openIn(root, srcPath, unix.O_RDONLY|unix.O_NONBLOCK, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return pathErr("clone from", srcPath, err)
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return pathErr("clone from", srcPath, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return pathErr("clone from", srcPath, errNotRegular)
	}
	if n == 0 && uint64(st.Size) > srcOffset {
		n = uint64(st.Size) - srcOffset
	}
	if srcOffset > math.MaxInt64-n || offset > math.MaxInt64-n {
		return pathErr("clone", path, errors.New("range out of range"))
	}
	dst, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	if err := copyRange(sfd, int64(srcOffset), dst, int64(offset), n); err != nil {
		return pathErr("clone", path, err)
	}
	return nil
}

// source is the root of the snapshot directory src, opened once.
func (t *PlainTree) source(src ID) (int, error) {
	if fd, ok := t.sources[src]; ok {
		return fd, nil
	}
	_, fd, err := t.dest.findDir(src)
	if err != nil {
		return -1, fmt.Errorf("source %s: %w", src.UUID.Canonical(), err)
	}
	if t.sources == nil {
		t.sources = map[ID]int{}
	}
	t.sources[src] = fd
	return fd, nil
}

// End makes the directory complete: its data durable, the marker
// complete and durable, then the directory renamed to its name.
func (t *PlainTree) End() error {
	if err := t.DirTree.End(); err != nil {
		return err
	}
	if len(t.dirModes) > 0 {
		if err := t.restoreDirModes(t.root); err != nil {
			return fmt.Errorf("directory modes: %w", err)
		}
	}
	if err := t.Sync(); err != nil {
		return err
	}
	if t.inPlace {
		return t.endInPlace()
	}
	d := t.dest
	m := *t.marker
	m.State, m.Temp, m.CTime = StateComplete, "", d.now().UTC()
	if err := WriteMarker(d.dir, &m); err != nil {
		return err
	}
	if err := unix.Renameat2(d.dir, TempName(m.Name), d.dir, m.Name, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rename %s to %q: %w", TempName(m.Name), m.Name, err)
	}
	if err := unix.Fsync(d.dir); err != nil {
		return err
	}
	*t.marker = m
	return nil
}

// Close closes the clone sources and the DirTree.
func (t *PlainTree) Close() error {
	for _, fd := range t.sources {
		unix.Close(fd)
	}
	t.sources = nil
	return t.DirTree.Close()
}

// openIn opens path beneath dir, never through a magic link or a mount
// point, nor (with extra) what extra forbids, never following a last
// symbolic link.
func openIn(dir int, path string, flags int, extra uint64) (int, error) {
	if path == "" {
		path = "."
	}
	return openat2(dir, path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, resolve|extra)
}

// Lookup returns the marker of the complete snapshot directory name, nil
// when there is neither a directory nor a marker of that name; anything
// else (a receive under way, a directory the marker does not name) is an
// error.
func (d *PlainDest) Lookup(name string) (*Marker, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	m, err := ReadMarker(d.dir, name)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	nameErr := fstatat(d.dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case m == nil && nameErr != nil:
		return nil, nil
	case m == nil:
		return nil, fmt.Errorf("%q is not a snapshot directory (no marker %s)", name, MarkerName(name))
	case m.State != StateComplete || nameErr != nil || st.Ino != m.Ino || m.PartIno != 0:
		return nil, fmt.Errorf("%q is not a complete snapshot directory (a receive under way or cut)", name)
	}
	return m, nil
}

// Remove deletes the complete snapshot directory name, whose marker's own
// UUID must be own: renamed to its temporary name first (a run cut then
// leaves what the next receive deletes as a leftover, never a partial
// snapshot under its name), its content deleted without following a
// symbolic link, then its marker.
func (d *PlainDest) Remove(name string, own uuid.UUID) error {
	m, err := d.Lookup(name)
	if err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	if m.UUID != own {
		return fmt.Errorf("%q is snapshot directory %s, not %s", name, m.UUID.Canonical(), own.Canonical())
	}
	temp := TempName(name)
	if err := unix.Renameat2(d.dir, name, d.dir, temp, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rename %q to %s: %w", name, temp, err)
	}
	if err := unix.Fsync(d.dir); err != nil {
		return err
	}
	if err := RemoveTree(d.dir, temp); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.dir, MarkerName(name), 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("%s: %w", MarkerName(name), err)
	}
	return unix.Fsync(d.dir)
}

// makeTemp makes the temporary directory temp a stream works in and
// opens it.
func (d *PlainDest) makeTemp(temp string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Mkdirat(d.dir, temp, 0o700); err != nil {
		return -1, st, fmt.Errorf("%s: %w", temp, err)
	}
	fd, err := openIn(d.dir, temp, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return -1, st, fmt.Errorf("%s: %w", temp, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	return fd, st, nil
}
