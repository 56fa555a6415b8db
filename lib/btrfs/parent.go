package btrfs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/uuid"
)

const (
	uuidTreeObjectID = 9   // BTRFS_UUID_TREE_OBJECTID
	uuidKeySubvol    = 251 // BTRFS_UUID_KEY_SUBVOL
	uuidKeyReceived  = 252 // BTRFS_UUID_KEY_RECEIVED_SUBVOL
)

// ErrNoParent is returned by SendParent when no clone source can be the
// parent.
var ErrNoParent = errors.New("no parent among the clone sources")

// SendParent picks the parent of an incremental send of snap when clone
// sources are given and no parent, as btrfs send does (btrfs-progs
// cmds/send.c, find_good_parent): let the origin be the subvolume snap was
// snapshotted from (its parent UUID, looked up in the UUID tree). If the
// origin is one of clones, it is the parent. Otherwise the parent is the
// clone source whose own origin is the same subvolume (a sibling of snap)
// and whose ctransid is nearest the origin's ctransid, the first of equals
// in the order of clones. It returns the parent's index in clones, or an
// error wrapping ErrNoParent when snap has no origin left or no clone
// source is the origin or a sibling: btrfs send then refuses too.
func SendParent(snap string, clones []string) (int, error) {
	fd, err := openSubvolume(snap)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	s, err := infoFD(fd)
	if err != nil {
		return -1, fmt.Errorf("%s: subvolume info: %w", snap, err)
	}
	origin, found, err := subvolByUUID(fd, s.ParentUUID)
	if err != nil {
		return -1, fmt.Errorf("%s: looking up its origin: %w", snap, err)
	}
	if !found {
		return -1, fmt.Errorf("%s: %w (it is not a snapshot of a subvolume that still exists)", snap, ErrNoParent)
	}
	cands := make([]parentCandidate, len(clones))
	for i, c := range clones {
		ci, err := Info(c)
		if err != nil {
			return -1, err
		}
		cands[i].id, cands[i].ctransid = ci.ID, ci.CTransID
		o, found, err := subvolByUUID(fd, ci.ParentUUID)
		if err != nil {
			return -1, fmt.Errorf("%s: looking up its origin: %w", c, err)
		}
		if found {
			cands[i].origin = o.ID
		}
	}
	i := pickParent(origin.ID, origin.CTransID, cands)
	if i < 0 {
		return -1, fmt.Errorf("%s: %w (none is its origin or a snapshot of the same subvolume)", snap, ErrNoParent)
	}
	return i, nil
}

// parentCandidate is a clone source as pickParent sees it: its subvolume
// id, ctransid and the id of its origin (0: none found).
type parentCandidate struct {
	id, ctransid, origin uint64
}

// pickParent is btrfs-progs' choice of a parent among clone sources for
// a snapshot of the subvolume originID (see SendParent); -1 is none.
func pickParent(originID, originCTransID uint64, cands []parentCandidate) int {
	for i, c := range cands {
		if c.id == originID {
			return i
		}
	}
	best, bestDiff := -1, ^uint64(0)
	for i, c := range cands {
		if c.origin == 0 || c.origin != originID {
			continue
		}
		// btrfs-progs: an s64 of the u64 difference, negated when
		// negative, compared as a u64.
		d := int64(c.ctransid - originCTransID)
		if d < 0 {
			d = -d
		}
		if uint64(d) < bestDiff {
			best, bestDiff = i, uint64(d)
		}
	}
	return best
}

// subvolByUUID finds the subvolume whose UUID is u through the UUID tree
// (the first id its item lists, as btrfs-progs takes) and reads its root
// item. A zero UUID or one not in the tree is not found. It needs
// CAP_SYS_ADMIN (tree searches), as send does.
func subvolByUUID(fd int, u uuid.UUID) (Subvol, bool, error) {
	id, found, err := uuidTreeFirst(fd, u, uuidKeySubvol)
	if err != nil || !found {
		return Subvol{}, false, err
	}
	s := Subvol{ID: id}
	found = false
	err = treeSearch(fd, searchKey{
		TreeID: rootTreeObjectID, MinObjectID: id, MaxObjectID: id,
		MinType: rootItemKey, MaxType: rootItemKey, MaxOffset: ^uint64(0),
		MaxTransID: ^uint64(0),
	}, func(it searchItem) error {
		if it.ObjectID != id || it.Type != rootItemKey {
			return nil
		}
		// Snapshots pending deletion may leave more than one ROOT_ITEM:
		// the last one counts, as in btrfs-progs.
		found = true
		return parseRootItem(it.Data, &s)
	})
	if err != nil {
		return Subvol{}, false, fmt.Errorf("subvolume %d: %w", id, err)
	}
	return s, found, nil
}

// uuidTreeFirst is the first subvolume id the UUID tree lists for u under
// key type typ (SUBVOL or RECEIVED_SUBVOL): the one btrfs-progs takes.
func uuidTreeFirst(fd int, u uuid.UUID, typ uint32) (uint64, bool, error) {
	if u.IsZero() {
		return 0, false, nil
	}
	hi, lo := binary.LittleEndian.Uint64(u[0:8]), binary.LittleEndian.Uint64(u[8:16])
	var id uint64
	found := false
	err := treeSearch(fd, searchKey{
		TreeID: uuidTreeObjectID, MinObjectID: hi, MaxObjectID: hi,
		MinType: typ, MaxType: typ, MinOffset: lo, MaxOffset: lo,
		MaxTransID: ^uint64(0),
	}, func(it searchItem) error {
		if found || it.ObjectID != hi || it.Type != typ || it.Offset != lo {
			return nil
		}
		if len(it.Data) == 0 || len(it.Data)%8 != 0 {
			return nil // btrfs-progs: an item of an illegal size is not found
		}
		id, found = binary.LittleEndian.Uint64(it.Data), true
		return nil
	})
	return id, found, err
}

// ReceiveParent is the subvolume id btrfs receive takes for a parent or
// clone source u on the filesystem of path: the first the UUID tree lists
// by received UUID, else by UUID; found is false when there is none.
func ReceiveParent(path string, u uuid.UUID) (id uint64, found bool, err error) {
	fd, err := openDir(path)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	if id, found, err = uuidTreeFirst(fd, u, uuidKeyReceived); err != nil || found {
		return id, found, needRoot(err)
	}
	id, found, err = uuidTreeFirst(fd, u, uuidKeySubvol)
	return id, found, needRoot(err)
}
