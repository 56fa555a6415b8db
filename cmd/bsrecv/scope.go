package bsrecv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

// loadScope is what the current stream may refer to: the subvolumes
// below the destination, loaded once per stream (the previous stream's
// is among them).
func (rv *receiver) loadScope() (*receive.Scope, error) {
	if rv.scope != nil {
		return rv.scope, nil
	}
	sc, err := receive.LoadScope(rv.destFD)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rv.dest, err)
	}
	rv.scope = sc
	return sc, nil
}

// inScope checks that a subvolume below the destination stands for the
// parent or clone source u of transaction ctransid, as the receiver
// takes it (receive.Scope.Find). The error reads after the UUID ("parent
// UUID ...").
func (rv *receiver) inScope(u uuid.UUID, ctransid uint64) error {
	sc, err := rv.loadScope()
	if err != nil {
		return err
	}
	_, err = sc.Find(u, ctransid)
	var se *receive.SourceError
	if !errors.As(err, &se) {
		return err
	}
	cp := *se // the Scope keeps its own for the next CLONE
	se = &cp
	if se.Changed != nil {
		c := *se.Changed
		c.Path = filepath.Join(rv.dest, c.Path)
		se.Changed = &c
		return errors.New(se.Reason(""))
	}
	if len(se.Outside) == 0 {
		return errors.New(se.Reason(""))
	}
	// Refused: name the subvolume outside (the whole filesystem is
	// listed only now).
	mnt, err := mountPoint(rv.dest)
	if err != nil {
		return fmt.Errorf("%s: %w", rv.dest, err)
	}
	all, err := btrfs.List(mnt)
	if err != nil {
		return err
	}
	where := ""
	for _, s := range all {
		if s.ID == se.Outside[0] {
			where = filepath.Join(mnt, s.Path)
		}
	}
	return errors.New(se.Reason(where))
}

// check is called for every command of the input once its CRC matched,
// before it is applied: every path must be a clean path below the
// subvolume being received (where the kernel confines it anyway), and
// every clone source must be the subvolume being received or one below
// the destination that the receiver takes.
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
		// Every CLONE_UUID with every CLONE_CTRANSID, whichever the
		// applier takes.
		var uuids []uuid.UUID
		var ctransids []uint64
		err := c.Attrs(func(t uint16, v []byte) error {
			switch {
			case t == sendstream.AttrCloneUUID && len(v) != 16:
				return fault(fmt.Errorf("CLONE: clone uuid of %d bytes", len(v)))
			case t == sendstream.AttrCloneUUID:
				uuids = append(uuids, uuid.UUID(v))
			case t == sendstream.AttrCloneCTransID && len(v) == 8:
				ctransids = append(ctransids, binary.LittleEndian.Uint64(v))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(ctransids) == 0 {
			ctransids = []uint64{0}
		}
		for _, u := range uuids {
			if u == rv.cur {
				continue // a clone within the subvolume being received
			}
			for _, ct := range ctransids {
				if err := rv.inScope(u, ct); err != nil {
					return fault(fmt.Errorf("CLONE: clone source %s %v", u.Canonical(), err))
				}
			}
		}
	}
	return nil
}
