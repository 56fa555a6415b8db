package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

// scope is what a stream may refer to: the subvolumes below the
// destination directory, on the filesystem mounted at mnt.
type scope struct {
	mnt   string
	below map[uint64]bool // subvolume ids below the destination
}

func (rv *receiver) loadScope() (*scope, error) {
	if rv.scope != nil {
		return rv.scope, nil
	}
	mnt, err := mountPoint(rv.dest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rv.dest, err)
	}
	sc := &scope{mnt: mnt, below: map[uint64]bool{}}
	inDest, err := btrfs.List(rv.dest)
	if err != nil {
		return nil, err
	}
	for _, s := range inDest {
		sc.below[s.ID] = true
	}
	rv.scope = sc
	return sc, nil
}

// inScope checks that the subvolume btrfs receive will take for u (a
// parent or a clone source) lies below the destination. btrfs receive
// looks u up in the filesystem's UUID tree, among received UUIDs first,
// then among UUIDs, and takes the first subvolume the tree lists, wherever
// it is: that one must be below the destination. (Other copies elsewhere
// on the filesystem do not matter; where the first is outside, a copy
// below the destination cannot be used: bsrecv(1), BUGS.) The error reads
// after the UUID ("parent UUID ...").
func (rv *receiver) inScope(u uuid.UUID) error {
	sc, err := rv.loadScope()
	if err != nil {
		return err
	}
	id, found, err := btrfs.ReceiveParent(sc.mnt, u)
	if err != nil {
		return err
	}
	if !found {
		return errors.New("is not at the destination: no subvolume with that uuid or received uuid")
	}
	if sc.below[id] {
		return nil
	}
	// Refused: name the subvolume, and say whether a copy elsewhere is
	// why (the whole filesystem is listed only now).
	all, err := btrfs.List(sc.mnt)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("subvolume %d", id)
	var copies int
	for _, s := range all {
		if s.ID == id {
			where = filepath.Join(sc.mnt, s.Path)
		}
		if s.ReceivedUUID == u || s.UUID == u {
			copies++
		}
	}
	if copies > 1 {
		return hint.Wrap(fmt.Errorf("is outside the destination: %s (btrfs receive takes that one, the first of %d copies on this filesystem)", where, copies),
			"receive this chain into a filesystem without an older copy of it, or delete the older copy")
	}
	return fmt.Errorf("is outside the destination: %s", where)
}

// check is called for every command of the input once its CRC matched,
// before btrfs receive sees any of it: every path must stay below the
// subvolume being received, and every clone source must lie below the
// destination (or be the subvolume being received).
func (rv *receiver) check(_ *sendstream.Stream, c *sendstream.Command) error {
	fault := func(err error) error {
		return &sendstream.Error{Offset: c.Offset, Reason: "refused: " + err.Error(), Err: err}
	}
	if err := sendstream.CheckPaths(c); err != nil {
		return fault(err)
	}
	switch c.Type {
	case sendstream.CmdSubvol, sendstream.CmdSnapshot:
		// A new stream: the subvolumes it may use are those there now.
		rv.scope = nil
		rv.cur = uuid.UUID{}
		if v, ok := c.Attr(sendstream.AttrUUID); ok && len(v) == 16 {
			copy(rv.cur[:], v)
		}
	case sendstream.CmdClone:
		// Every CLONE_UUID, as a receiver may take any of two.
		return c.Attrs(func(t uint16, v []byte) error {
			if t != sendstream.AttrCloneUUID {
				return nil
			}
			if len(v) != 16 {
				return fault(fmt.Errorf("CLONE: clone uuid of %d bytes", len(v)))
			}
			u := uuid.UUID(v)
			if u == rv.cur {
				return nil // a clone within the subvolume being received
			}
			if err := rv.inScope(u); err != nil {
				return fault(fmt.Errorf("CLONE: clone source %s %v", u.Canonical(), err))
			}
			return nil
		})
	}
	return nil
}
