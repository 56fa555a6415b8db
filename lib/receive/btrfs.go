package receive

import (
	"errors"
	"fmt"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Scope is the subvolumes below one directory of a btrfs filesystem: the
// only ones a stream received there may take as its parent or clone from.
// btrfs receive takes the first subvolume the filesystem's UUID tree
// lists, wherever it is; a Scope looks at every one the tree lists and
// keeps those below its directory, so that a stream can neither read
// from a subvolume elsewhere nor be refused because of an older copy
// elsewhere.
type Scope struct {
	fd   int
	byID map[uint64]btrfs.Subvol
	// found memoises Find: a stream may name one clone source in
	// thousands of CLONEs, each checked before it is applied.
	found map[sourceKey]found
}

type sourceKey struct {
	u        uuid.UUID
	ctransid uint64
}

type found struct {
	sub btrfs.Subvol
	err error
}

// LoadScope lists the subvolumes below the directory open at fd, which
// must stay open while the Scope is used. Subvolumes made later are not
// in it: load one for each stream.
func LoadScope(fd int) (*Scope, error) {
	subs, err := btrfs.ListFD(fd)
	if err != nil {
		return nil, err
	}
	s := &Scope{fd: fd, byID: make(map[uint64]btrfs.Subvol, len(subs))}
	for _, sub := range subs {
		s.byID[sub.ID] = sub
	}
	return s, nil
}

// SourceError says why no subvolume below the destination stands for a
// parent or clone source.
type SourceError struct {
	UUID     uuid.UUID
	CTransID uint64
	// Changed is a subvolume below the destination with that UUID or
	// received UUID that cannot stand for it: writable, or of another
	// transaction (Path is relative to the destination).
	Changed *btrfs.Subvol
	// Outside are the subvolumes elsewhere on the filesystem with that
	// UUID or received UUID, by id, received UUIDs first.
	Outside []uint64
}

func (e *SourceError) Error() string {
	return "subvolume " + e.UUID.Canonical() + " " + e.Reason("")
}

// Reason is the error after the UUID; outside names the first subvolume
// of Outside when the caller found its path ("" for its id).
func (e *SourceError) Reason(outside string) string {
	switch {
	case e.Changed != nil:
		s := e.Changed
		transid := s.CTransID
		if s.ReceivedUUID == e.UUID {
			transid = s.STransID
		}
		return fmt.Sprintf("is at the destination but not as the stream needs it: %s (read-only %v, transid %d; the stream wants a read-only copy of transid %d)",
			s.Path, s.ReadOnly, transid, e.CTransID)
	case len(e.Outside) > 0:
		if outside == "" {
			outside = fmt.Sprintf("subvolume %d", e.Outside[0])
		}
		return "is outside the destination: " + outside
	}
	return "is not at the destination: no subvolume with that uuid or received uuid"
}

// Find is the subvolume below the directory that stands for the
// subvolume a stream names by u and ctransid (a parent, or a clone
// source other than the subvolume being received): one whose received
// UUID is u and whose stransid is ctransid, else one whose UUID is u and
// whose ctransid is ctransid, read-only either way (a writable one may
// have changed since), the first the UUID tree lists. btrfs receive
// checks the transaction of a parent the same way; a clone source is
// held to it too, as cloning from another version of a file would
// silently receive other data. The error is a *SourceError.
func (s *Scope) Find(u uuid.UUID, ctransid uint64) (btrfs.Subvol, error) {
	k := sourceKey{u, ctransid}
	if f, ok := s.found[k]; ok {
		return f.sub, f.err
	}
	received, others, err := btrfs.UUIDSubvols(s.fd, u)
	if err != nil {
		return btrfs.Subvol{}, err
	}
	sub, err := choose(u, ctransid, received, others, s.byID)
	if s.found == nil {
		s.found = map[sourceKey]found{}
	}
	s.found[k] = found{sub, err}
	return sub, err
}

// choose is Find's choice among the subvolume ids the UUID tree lists
// for u, given those below the directory (byID).
func choose(u uuid.UUID, ctransid uint64, received, others []uint64, byID map[uint64]btrfs.Subvol) (btrfs.Subvol, error) {
	e := &SourceError{UUID: u, CTransID: ctransid}
	for i, ids := range [][]uint64{received, others} {
		for _, id := range ids {
			sub, ok := byID[id]
			if !ok {
				e.Outside = append(e.Outside, id)
				continue
			}
			transid := sub.CTransID
			if i == 0 {
				transid = sub.STransID
			}
			if sub.ReadOnly && transid == ctransid {
				return sub, nil
			}
			if e.Changed == nil {
				e.Changed = &sub
			}
		}
	}
	return btrfs.Subvol{}, e
}

// Open opens the root of sub, which Find returned, beneath the
// directory, and checks that it is still that subvolume, read-only and
// unchanged. The caller closes the descriptor.
func (s *Scope) Open(sub btrfs.Subvol) (int, error) {
	fd, err := openBeneath(s.fd, sub.Path, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", sub.Path, err)
	}
	now, err := btrfs.InfoFD(fd)
	if err == nil && (now.ID != sub.ID || !now.ReadOnly || now.CTransID != sub.CTransID || now.STransID != sub.STransID) {
		err = errors.New("changed while receiving")
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", sub.Path, err)
	}
	return fd, nil
}

// openBeneath opens path beneath the directory dir, never through a magic
// link or a mount point (and with resolve, not through what it forbids
// either), never following a last symbolic link.
func openBeneath(dir int, path string, flags int, resolve uint64) (int, error) {
	if path == "" {
		path = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV | resolve,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dir, path, &how)
		// EAGAIN: a rename raced the lookup; it is safe to retry.
		if err == unix.EINTR || (err == unix.EAGAIN && i < 16) {
			continue
		}
		return fd, err
	}
}

// BtrfsDest makes received subvolumes in one directory of a btrfs
// filesystem, as btrfs receive does: a full stream's as a new subvolume,
// an incremental one's as a writable snapshot of its parent, which must
// be below the Scope's directory. It borrows both descriptors: they must
// stay open while it and its Trees are in use.
type BtrfsDest struct {
	dir   int
	scope *Scope
}

// NewBtrfsDest returns a Dest making subvolumes in the directory open at
// dirFD, taking parents and clone sources from scope only.
func NewBtrfsDest(dirFD int, scope *Scope) *BtrfsDest {
	return &BtrfsDest{dir: dirFD, scope: scope}
}

// Begin makes the subvolume name. If it fails after making it, the
// subvolume is left for the caller to delete, as after any failure.
func (d *BtrfsDest) Begin(name string, id ID, parent *ID) (Tree, error) {
	var want uuid.UUID
	if parent == nil {
		if err := btrfs.SubvolCreateAt(d.dir, name); err != nil {
			return nil, err
		}
	} else {
		p, err := d.scope.Find(parent.UUID, parent.CTransID)
		if err != nil {
			return nil, err
		}
		pfd, err := d.scope.Open(p)
		if err != nil {
			return nil, err
		}
		err = btrfs.SnapshotAt(pfd, d.dir, name, false)
		unix.Close(pfd)
		if err != nil {
			return nil, err
		}
		want = p.UUID
	}
	return d.open(name, id, func(sub btrfs.Subvol) bool { return sub.ReceivedUUID.IsZero() && sub.ParentUUID == want })
}

// Reopen goes on with the partial subvolume name: writable, its own UUID
// self, made from the parent the Scope finds for parent (none for a full
// stream) and not yet marked received (or marked as id, when the receive
// was cut between marking it and making it read-only).
func (d *BtrfsDest) Reopen(name string, id ID, parent *ID, self uuid.UUID) (Tree, error) {
	var want uuid.UUID
	if parent != nil {
		p, err := d.scope.Find(parent.UUID, parent.CTransID)
		if err != nil {
			return nil, err
		}
		want = p.UUID
	}
	return d.open(name, id, func(sub btrfs.Subvol) bool {
		return sub.UUID == self && sub.ParentUUID == want && (sub.ReceivedUUID.IsZero() || sub.ReceivedUUID == id.UUID)
	})
}

// open opens the writable subvolume name as the Tree receiving id, if ok
// says it is the one expected.
func (d *BtrfsDest) open(name string, id ID, ok func(btrfs.Subvol) bool) (Tree, error) {
	fd, sub, err := btrfs.OpenSubvolumeAt(d.dir, name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if sub.ReadOnly || !ok(sub) {
		return nil, errors.New("another subvolume took its name")
	}
	dt, err := NewDirTree(fd)
	if err != nil {
		return nil, err
	}
	dt.Self = id
	return &btrfsTree{DirTree: dt, dest: d, id: id}, nil
}

// btrfsTree is a DirTree on a subvolume being received, where btrfs does
// natively what DirTree emulates: clones share extents, compressed
// extents are stored as they come, and End marks the subvolume received.
type btrfsTree struct {
	*DirTree
	dest *BtrfsDest
	id   ID
	// sources are the clone sources' roots opened so far.
	sources map[ID]int
}

// Clone shares the source's extents. The source is the subvolume being
// received when src has its UUID (as in btrfs receive), else the one the
// Scope finds; srcPath must be a regular file of that subvolume, found
// beneath its root.
func (t *btrfsTree) Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	root := t.Root()
	if src.UUID != t.id.UUID {
		var err error
		if root, err = t.source(src); err != nil {
			return fmt.Errorf("clone source: %w", err)
		}
	}
	sfd, err := openSource(root, srcPath)
	if err != nil {
		return pathErr("clone from", srcPath, err)
	}
	defer unix.Close(sfd)
	dfd, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	if err := btrfs.CloneRange(dfd, sfd, srcOffset, n, offset); err != nil {
		return pathErr("clone", path, err)
	}
	return nil
}

// openSource opens p, a regular file of the subvolume whose root is open
// at root (not one of a subvolume nested in it), read-only. What p names
// is looked at before it is opened, as opening a FIFO or a device could
// block or act; it cannot change in between unless it is in the
// subvolume being received, which only this process writes to, and is
// checked again once open.
func openSource(root int, p string) (int, error) {
	dir, base := path.Split(p)
	if base == "" {
		return -1, errNotRegular
	}
	var rst, st, ost unix.Stat_t
	if err := unix.Fstat(root, &rst); err != nil {
		return -1, err
	}
	dfd, err := openBeneath(root, dir, unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	if err := fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != rst.Dev {
		return -1, errors.New("not a regular file of the source subvolume")
	}
	fd, err := openBeneath(dfd, base, unix.O_RDONLY|unix.O_NONBLOCK, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return -1, err
	}
	if err := unix.Fstat(fd, &ost); err != nil || ost.Dev != st.Dev || ost.Ino != st.Ino {
		unix.Close(fd)
		return -1, errors.New("changed while opened")
	}
	return fd, nil
}

// source is the root of the clone source src, opened once per stream.
func (t *btrfsTree) source(src ID) (int, error) {
	if fd, ok := t.sources[src]; ok {
		return fd, nil
	}
	sub, err := t.dest.scope.Find(src.UUID, src.CTransID)
	if err != nil {
		return -1, err
	}
	fd, err := t.dest.scope.Open(sub)
	if err != nil {
		return -1, err
	}
	if t.sources == nil {
		t.sources = map[ID]int{}
	}
	t.sources[src] = fd
	return fd, nil
}

// EncodedWrite stores the compressed extent as it is; where btrfs cannot
// take it that way, DirTree writes it decompressed.
func (t *btrfsTree) EncodedWrite(path string, e *Encoded) error {
	if e.Encryption != 0 {
		return pathErr("encoded write", path, fmt.Errorf("encryption %d is not supported", e.Encryption))
	}
	fd, err := t.WriteFD(path)
	if err != nil {
		return err
	}
	err = btrfs.WriteEncoded(fd, &btrfs.EncodedWrite{
		Offset: e.Offset, Len: e.UnencodedFileLen, UnencodedLen: e.UnencodedLen, UnencodedOffset: e.UnencodedOffset,
		Compression: e.Compression, Data: e.Data,
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return t.DirTree.EncodedWrite(path, e)
	}
	return pathErr("encoded write", path, err)
}

// Fileattr does nothing: btrfs receive ignores FILEATTR, and a received
// subvolume is to be what btrfs receive makes of the stream.
func (t *btrfsTree) Fileattr(string, uint64) error { return nil }

// Sync makes the whole filesystem durable (syncfs): btrfs has no
// narrower way to make a subvolume's data and names durable together.
func (t *btrfsTree) Sync() error {
	if err := btrfs.Syncfs(t.Root()); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// End marks the subvolume received from the stream's snapshot and makes
// it read-only. Its data is made durable first: a subvolume that looks
// complete after a crash must be complete.
func (t *btrfsTree) End() error {
	if err := t.DirTree.End(); err != nil {
		return err
	}
	if err := t.Sync(); err != nil {
		return err
	}
	if err := btrfs.SetReceivedFD(t.Root(), t.id.UUID, t.id.CTransID, time.Time{}); err != nil {
		return err
	}
	return btrfs.SetReadOnlyFD(t.Root())
}

// Close closes the clone sources and the DirTree.
func (t *btrfsTree) Close() error {
	for _, fd := range t.sources {
		unix.Close(fd)
	}
	t.sources = nil
	return t.DirTree.Close()
}
