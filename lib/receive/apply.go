package receive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/buttersink/buttersink/lib/sendstream"
	"golang.org/x/sys/unix"
)

// Applier carries out a stream's commands, one at a time, on Tree. The
// caller feeds it every command after the stream's first (SUBVOL or
// SNAPSHOT, which the caller handled with Dest.Begin), in order, as
// sendstream.Stream.Commands hands them out; END calls Tree.End.
//
// It is strict where btrfs receive is lenient: an unknown command or
// attribute, a duplicate attribute, a missing one or one of the wrong
// size fails the command. Attributes a command does not use are ignored
// (the kernel sends INO with every MK* command, MODE and RDEV with
// MKFIFO and MKSOCK).
//
// A command making a new inode is held back until the next one: the
// kernel makes every new inode under an orphan name in the root and
// renames it at once, so when that RENAME follows, the inode is made at
// its final name directly (no rename, no second lookup); where that name
// is taken, as the stream says. Applied counts a held command only once
// it is carried out: call Flush before Tree.Sync to record a resume
// point.
type Applier struct {
	Tree Tree
	// Self is the subvolume being received: a CLONE naming it clones
	// within the tree.
	Self ID
	// Replay says that the commands given may have been carried out
	// already: a receive resumed after the last point it noted, where
	// bsrecv died with a command (and one held back before it) applied.
	// Errors that say so (the inode exists, the name is gone) are taken
	// as done, and no inode is made at its final name, as the first run
	// may have made it at its orphan name. Every other command may be
	// carried out twice.
	Replay bool

	applied int64
	ended   bool
	attrs   attrSet
	enc     Encoded
	held    held
	wr      heldWrite
}

// heldWrite is a WRITE held back until the next command. The kernel's
// stream rewrites a file as WRITEs up to its new size, then a TRUNCATE to
// that size: a write that ends inside a page of the old file makes the
// kernel read that page from disk first, to keep bytes the truncate then
// drops (a third of an incremental receive's waiting, measured). When
// the TRUNCATE follows at the write's end, the file is cut at the
// write's start first, which leaves the same bytes and reads nothing.
type heldWrite struct {
	on     bool
	offset int64 // in the stream
	len    int64
	path   string
	off    uint64
	data   []byte
}

// maxHeldWrite bounds the data of a held WRITE (copied out of the
// stream's buffer): a kernel stream's WRITE carries at most this much.
const maxHeldWrite = 128 << 10

// held is a command making a new inode, not yet carried out; typ 0: none.
type held struct {
	typ    uint16
	offset int64
	len    int64
	path   string
	link   string
	mode   uint32
	rdev   uint64
}

// heldError is the failure of a held command, named already.
type heldError struct{ err error }

func (e *heldError) Error() string { return e.err.Error() }
func (e *heldError) Unwrap() error { return e.err }

// Applied is the number of stream bytes (headers included) of the
// commands carried out so far.
func (a *Applier) Applied() int64 { return a.applied }

// Command decodes c, checks its attributes and carries it out (a command
// making an inode maybe only with the next command, or Flush).
func (a *Applier) Command(c *sendstream.Command) error {
	held, err := a.command(c)
	if err != nil && a.Replay && alreadyDone(c.Type, err) {
		held, err = false, nil
	}
	if err != nil {
		if _, ok := err.(*heldError); ok {
			return err
		}
		return fmt.Errorf("%s at byte %d: %w", sendstream.CmdName(c.Type), c.Offset, err)
	}
	if !held {
		a.applied += int64(c.Len())
	}
	return nil
}

// Holding reports whether a command is held back: the tree is then not
// at the point of the commands given so far, until the next one or Flush.
func (a *Applier) Holding() bool { return a.held.typ != 0 || a.wr.on }

// alreadyDone reports whether err, carrying out a command of type typ
// again, says that it was carried out before.
func alreadyDone(typ uint16, err error) bool {
	switch typ {
	case sendstream.CmdMkfile, sendstream.CmdMkdir, sendstream.CmdMknod, sendstream.CmdMkfifo, sendstream.CmdMksock,
		sendstream.CmdSymlink, sendstream.CmdLink, sendstream.CmdEnableVerity:
		return errors.Is(err, unix.EEXIST)
	case sendstream.CmdRename, sendstream.CmdUnlink, sendstream.CmdRmdir:
		return errors.Is(err, unix.ENOENT)
	case sendstream.CmdRemoveXattr:
		return errors.Is(err, unix.ENODATA)
	}
	return false
}

// Flush carries out the command held back, if any.
func (a *Applier) Flush() error {
	if err := a.flushWrite(); err != nil {
		return err
	}
	h := a.held
	if h.typ == 0 {
		return nil
	}
	a.held = held{}
	if err := a.make(&h, h.path); err != nil && !(a.Replay && alreadyDone(h.typ, err)) {
		return &heldError{fmt.Errorf("%s at byte %d: %w", sendstream.CmdName(h.typ), h.offset, err)}
	}
	a.applied += h.len
	return nil
}

// holdWrite holds back a WRITE of data at off in path, when it ends
// inside a page and so may be followed by the TRUNCATE that cuts the file
// there; it reports whether it did.
func (a *Applier) holdWrite(c *sendstream.Command, path string, off uint64, data []byte) bool {
	end := off + uint64(len(data))
	if len(data) == 0 || len(data) > maxHeldWrite || end%4096 == 0 || end < off {
		return false
	}
	a.wr = heldWrite{on: true, offset: c.Offset, len: int64(c.Len()), path: path, off: off, data: append(a.wr.data[:0], data...)}
	return true
}

// flushWrite carries out the held WRITE, if any.
func (a *Applier) flushWrite() error {
	if !a.wr.on {
		return nil
	}
	w := &a.wr
	w.on = false
	if err := a.Tree.Write(w.path, w.off, w.data); err != nil {
		return &heldError{fmt.Errorf("%s at byte %d: %w", sendstream.CmdName(sendstream.CmdWrite), w.offset, err)}
	}
	a.applied += w.len
	return nil
}

// truncateHeldWrite carries out the held WRITE and the TRUNCATE to its end
// that follows it: the file is cut at the write's start, then written.
func (a *Applier) truncateHeldWrite() error {
	if err := a.Tree.Truncate(a.wr.path, a.wr.off); err != nil {
		a.wr.on = false
		return err
	}
	return a.flushWrite()
}

// make carries out the held command h at path.
func (a *Applier) make(h *held, path string) error {
	t := a.Tree
	switch h.typ {
	case sendstream.CmdMkfile:
		return t.Mkfile(path)
	case sendstream.CmdMkdir:
		return t.Mkdir(path)
	case sendstream.CmdMknod:
		return t.Mknod(path, h.mode, h.rdev)
	case sendstream.CmdMkfifo:
		return t.Mkfifo(path)
	case sendstream.CmdMksock:
		return t.Mksock(path)
	}
	return t.Symlink(path, h.link)
}

// renameHeld carries out the held command and the RENAME of its path to
// to that follows it: it makes the inode at to where the Tree says that
// makes the same inode, and otherwise, or where that fails (to is taken:
// the rename would replace it), as the stream says.
func (a *Applier) renameHeld(to string) error {
	h := a.held
	if al, ok := a.Tree.(alike); ok && !a.Replay && al.Alike(to) {
		a.held = held{}
		if a.make(&h, to) == nil {
			a.applied += h.len
			return nil
		}
		a.held = h
	}
	if err := a.Flush(); err != nil {
		return err
	}
	return a.Tree.Rename(h.path, to)
}

// alike is a Tree that tells whether an inode made at path comes out
// as one made in the root and renamed to path.
type alike interface {
	Alike(path string) bool
}

// hold holds back c, a command making the inode path.
func (a *Applier) hold(c *sendstream.Command, path string) {
	a.held = held{typ: c.Type, offset: c.Offset, len: int64(c.Len()), path: path}
}

func (a *Applier) command(c *sendstream.Command) (held bool, err error) {
	if a.ended {
		return false, errors.New("command after END")
	}
	if c.Type == sendstream.CmdSubvol || c.Type == sendstream.CmdSnapshot {
		return false, errors.New("a second subvolume in one stream")
	}
	if c.Type == 0 || c.Type > maxCommand(c.Version) {
		return false, fmt.Errorf("unknown command in a protocol %d stream", c.Version)
	}
	s := &a.attrs
	if err := s.decode(c); err != nil {
		return false, err
	}
	if missing := required[c.Type] &^ s.present; missing != 0 {
		return false, fmt.Errorf("no %s attribute", attrName(uint16(bits.TrailingZeros64(missing))))
	}
	path := s.str(sendstream.AttrPath)
	if a.wr.on {
		if c.Type == sendstream.CmdTruncate && path == a.wr.path && s.u64(sendstream.AttrSize) == a.wr.off+uint64(len(a.wr.data)) {
			return false, a.truncateHeldWrite()
		}
		if err := a.flushWrite(); err != nil {
			return false, err
		}
	}
	if a.held.typ != 0 {
		if c.Type == sendstream.CmdRename && path == a.held.path {
			return false, a.renameHeld(s.str(sendstream.AttrPathTo))
		}
		if err := a.Flush(); err != nil {
			return false, err
		}
	}
	switch c.Type {
	case sendstream.CmdMkfile, sendstream.CmdMkdir, sendstream.CmdMkfifo, sendstream.CmdMksock:
		a.hold(c, path)
		return true, nil
	case sendstream.CmdMknod:
		mode, err := s.u32From64(sendstream.AttrMode)
		if err != nil {
			return false, err
		}
		a.hold(c, path)
		a.held.mode, a.held.rdev = mode, s.u64(sendstream.AttrRdev)
		return true, nil
	case sendstream.CmdSymlink:
		a.hold(c, path)
		// The link's content, not a path of the tree.
		a.held.link = s.str(sendstream.AttrPathLink)
		return true, nil
	case sendstream.CmdWrite:
		if a.holdWrite(c, path, s.u64(sendstream.AttrFileOffset), s.val[sendstream.AttrData]) {
			return true, nil
		}
	}
	return false, a.apply(c, path)
}

// apply carries out c, a command that makes no inode, on path.
func (a *Applier) apply(c *sendstream.Command, path string) error {
	s := &a.attrs
	t := a.Tree
	switch c.Type {
	case sendstream.CmdRename:
		return t.Rename(path, s.str(sendstream.AttrPathTo))
	case sendstream.CmdLink:
		return t.Link(path, s.str(sendstream.AttrPathLink))
	case sendstream.CmdUnlink:
		return t.Unlink(path)
	case sendstream.CmdRmdir:
		return t.Rmdir(path)
	case sendstream.CmdSetXattr:
		return t.SetXattr(path, s.str(sendstream.AttrXattrName), s.val[sendstream.AttrXattrData])
	case sendstream.CmdRemoveXattr:
		return t.RemoveXattr(path, s.str(sendstream.AttrXattrName))
	case sendstream.CmdWrite:
		return t.Write(path, s.u64(sendstream.AttrFileOffset), s.val[sendstream.AttrData])
	case sendstream.CmdClone:
		src := ID{CTransID: s.u64(sendstream.AttrCloneCTransID)}
		copy(src.UUID[:], s.val[sendstream.AttrCloneUUID])
		if src.UUID == a.Self.UUID {
			// Whatever the ctransid, the subvolume being received: an
			// older copy of it elsewhere shares its UUID.
			src = a.Self
		}
		return t.Clone(path, s.u64(sendstream.AttrFileOffset), src, s.str(sendstream.AttrClonePath),
			s.u64(sendstream.AttrCloneOffset), s.u64(sendstream.AttrCloneLen))
	case sendstream.CmdTruncate:
		return t.Truncate(path, s.u64(sendstream.AttrSize))
	case sendstream.CmdChmod:
		mode := s.u64(sendstream.AttrMode)
		if mode&^0o7777 != 0 {
			return fmt.Errorf("mode %#o has more than permission bits", mode)
		}
		return t.Chmod(path, uint32(mode))
	case sendstream.CmdChown:
		return t.Chown(path, s.u64(sendstream.AttrUID), s.u64(sendstream.AttrGID))
	case sendstream.CmdUtimes:
		for _, a := range []uint16{sendstream.AttrATime, sendstream.AttrMTime, sendstream.AttrCTime} {
			if ns := s.time(a).Nsec; ns >= 1e9 {
				return fmt.Errorf("attribute %s with %d nanoseconds", attrName(a), ns)
			}
		}
		return t.Utimes(path, s.time(sendstream.AttrATime), s.time(sendstream.AttrMTime), s.time(sendstream.AttrCTime))
	case sendstream.CmdEnd:
		a.ended = true
		return t.End()
	case sendstream.CmdUpdateExtent:
		return t.UpdateExtent(path, s.u64(sendstream.AttrFileOffset), s.u64(sendstream.AttrSize))
	case sendstream.CmdFallocate:
		return t.Fallocate(path, s.u32(sendstream.AttrFallocateMode), s.u64(sendstream.AttrFileOffset), s.u64(sendstream.AttrSize))
	case sendstream.CmdFileattr:
		return t.Fileattr(path, s.u64(sendstream.AttrFileattr))
	case sendstream.CmdEncodedWrite:
		a.enc = Encoded{
			Offset:           s.u64(sendstream.AttrFileOffset),
			UnencodedFileLen: s.u64(sendstream.AttrUnencodedFileLen),
			UnencodedLen:     s.u64(sendstream.AttrUnencodedLen),
			UnencodedOffset:  s.u64(sendstream.AttrUnencodedOffset),
			Compression:      s.u32(sendstream.AttrCompression),
			Encryption:       s.u32(sendstream.AttrEncryption),
			Data:             s.val[sendstream.AttrData],
		}
		e := &a.enc
		if e.UnencodedOffset > e.UnencodedLen || e.UnencodedFileLen > e.UnencodedLen-e.UnencodedOffset {
			return fmt.Errorf("unencoded range %d+%d beyond the %d unencoded bytes", e.UnencodedOffset, e.UnencodedFileLen, e.UnencodedLen)
		}
		err := t.EncodedWrite(path, e)
		a.enc.Data = nil
		return err
	case sendstream.CmdEnableVerity:
		alg := s.val[attrVerityAlgorithm]
		return t.EnableVerity(path, &Verity{
			Algorithm: alg[0],
			BlockSize: s.u32(attrVerityBlockSize),
			Salt:      s.val[attrVeritySalt],
			Signature: s.val[attrVeritySig],
		})
	}
	return fmt.Errorf("unknown command in a protocol %d stream", c.Version)
}

// Protocol 3 attributes, which lib/sendstream does not name.
const (
	attrVerityAlgorithm = 32
	attrVerityBlockSize = 33
	attrVeritySalt      = 34
	attrVeritySig       = 35
	maxAttr             = attrVeritySig
)

func maxCommand(version uint32) uint16 {
	switch version {
	case 1:
		return sendstream.CmdUpdateExtent
	case 2:
		return sendstream.CmdEncodedWrite
	}
	return sendstream.CmdEnableVerity
}

func maxAttrOf(version uint32) uint16 {
	switch version {
	case 1:
		return sendstream.AttrCloneLen
	case 2:
		return sendstream.AttrEncryption
	}
	return maxAttr
}

// attrSize is the exact size of each fixed-size attribute (0: any).
var attrSize = [maxAttr + 1]int{
	sendstream.AttrUUID: 16, sendstream.AttrCTransID: 8, sendstream.AttrIno: 8,
	sendstream.AttrSize: 8, sendstream.AttrMode: 8, sendstream.AttrUID: 8,
	sendstream.AttrGID: 8, sendstream.AttrRdev: 8, sendstream.AttrCTime: 12,
	sendstream.AttrMTime: 12, sendstream.AttrATime: 12, sendstream.AttrOTime: 12,
	sendstream.AttrFileOffset: 8, sendstream.AttrCloneUUID: 16,
	sendstream.AttrCloneCTransID: 8, sendstream.AttrCloneOffset: 8,
	sendstream.AttrCloneLen: 8, sendstream.AttrFallocateMode: 4,
	sendstream.AttrFileattr: 8, sendstream.AttrUnencodedFileLen: 8,
	sendstream.AttrUnencodedLen: 8, sendstream.AttrUnencodedOffset: 8,
	sendstream.AttrCompression: 4, sendstream.AttrEncryption: 4,
	attrVerityAlgorithm: 1, attrVerityBlockSize: 4,
}

var attrNames = [maxAttr + 1]string{
	"UNSPEC", "UUID", "CTRANSID", "INO", "SIZE", "MODE", "UID", "GID", "RDEV",
	"CTIME", "MTIME", "ATIME", "OTIME", "XATTR_NAME", "XATTR_DATA", "PATH",
	"PATH_TO", "PATH_LINK", "FILE_OFFSET", "DATA", "CLONE_UUID",
	"CLONE_CTRANSID", "CLONE_PATH", "CLONE_OFFSET", "CLONE_LEN",
	"FALLOCATE_MODE", "FILEATTR", "UNENCODED_FILE_LEN", "UNENCODED_LEN",
	"UNENCODED_OFFSET", "COMPRESSION", "ENCRYPTION", "VERITY_ALGORITHM",
	"VERITY_BLOCK_SIZE", "VERITY_SALT_DATA", "VERITY_SIG_DATA",
}

func attrName(t uint16) string {
	if int(t) < len(attrNames) {
		return attrNames[t]
	}
	return fmt.Sprintf("attribute %d", t)
}

func mask(ts ...uint16) uint64 {
	var m uint64
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// required lists each command's attributes that must be there. The
// optional ones (ENCODED_WRITE's COMPRESSION and ENCRYPTION, ENABLE_VERITY's
// salt and signature) are zero or empty when absent.
var required = [sendstream.CmdEnableVerity + 1]uint64{
	sendstream.CmdMkfile:       mask(sendstream.AttrPath),
	sendstream.CmdMkdir:        mask(sendstream.AttrPath),
	sendstream.CmdMknod:        mask(sendstream.AttrPath, sendstream.AttrMode, sendstream.AttrRdev),
	sendstream.CmdMkfifo:       mask(sendstream.AttrPath),
	sendstream.CmdMksock:       mask(sendstream.AttrPath),
	sendstream.CmdSymlink:      mask(sendstream.AttrPath, sendstream.AttrPathLink),
	sendstream.CmdRename:       mask(sendstream.AttrPath, sendstream.AttrPathTo),
	sendstream.CmdLink:         mask(sendstream.AttrPath, sendstream.AttrPathLink),
	sendstream.CmdUnlink:       mask(sendstream.AttrPath),
	sendstream.CmdRmdir:        mask(sendstream.AttrPath),
	sendstream.CmdSetXattr:     mask(sendstream.AttrPath, sendstream.AttrXattrName, sendstream.AttrXattrData),
	sendstream.CmdRemoveXattr:  mask(sendstream.AttrPath, sendstream.AttrXattrName),
	sendstream.CmdWrite:        mask(sendstream.AttrPath, sendstream.AttrFileOffset, sendstream.AttrData),
	sendstream.CmdClone:        mask(sendstream.AttrPath, sendstream.AttrFileOffset, sendstream.AttrCloneLen, sendstream.AttrCloneUUID, sendstream.AttrCloneCTransID, sendstream.AttrClonePath, sendstream.AttrCloneOffset),
	sendstream.CmdTruncate:     mask(sendstream.AttrPath, sendstream.AttrSize),
	sendstream.CmdChmod:        mask(sendstream.AttrPath, sendstream.AttrMode),
	sendstream.CmdChown:        mask(sendstream.AttrPath, sendstream.AttrUID, sendstream.AttrGID),
	sendstream.CmdUtimes:       mask(sendstream.AttrPath, sendstream.AttrATime, sendstream.AttrMTime, sendstream.AttrCTime),
	sendstream.CmdUpdateExtent: mask(sendstream.AttrPath, sendstream.AttrFileOffset, sendstream.AttrSize),
	sendstream.CmdFallocate:    mask(sendstream.AttrPath, sendstream.AttrFallocateMode, sendstream.AttrFileOffset, sendstream.AttrSize),
	sendstream.CmdFileattr:     mask(sendstream.AttrPath, sendstream.AttrFileattr),
	sendstream.CmdEncodedWrite: mask(sendstream.AttrPath, sendstream.AttrFileOffset, sendstream.AttrUnencodedFileLen, sendstream.AttrUnencodedLen, sendstream.AttrUnencodedOffset, sendstream.AttrData),
	sendstream.CmdEnableVerity: mask(sendstream.AttrPath, attrVerityAlgorithm, attrVerityBlockSize),
}

// attrSet is one command's attributes, pointing into its payload.
type attrSet struct {
	present uint64
	val     [maxAttr + 1][]byte
}

func (s *attrSet) decode(c *sendstream.Command) error {
	for t := range s.val {
		if s.present&(1<<t) != 0 {
			s.val[t] = nil
		}
	}
	s.present = 0
	limit := maxAttrOf(c.Version)
	return c.Attrs(func(t uint16, v []byte) error {
		if t == 0 || t > limit {
			return fmt.Errorf("unknown attribute %d in a protocol %d stream", t, c.Version)
		}
		if s.present&(1<<t) != 0 {
			return fmt.Errorf("attribute %s twice", attrName(t))
		}
		if n := attrSize[t]; n != 0 && len(v) != n {
			return fmt.Errorf("attribute %s of %d bytes, want %d", attrName(t), len(v), n)
		}
		s.present |= 1 << t
		s.val[t] = v
		return nil
	})
}

func (s *attrSet) str(t uint16) string { return string(s.val[t]) }

// u64 and the like read a checked fixed-size attribute, zero if absent.
func (s *attrSet) u64(t uint16) uint64 {
	if v := s.val[t]; len(v) == 8 {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (s *attrSet) u32(t uint16) uint32 {
	if v := s.val[t]; len(v) == 4 {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (s *attrSet) u32From64(t uint16) (uint32, error) {
	v := s.u64(t)
	if v > math.MaxUint32 {
		return 0, fmt.Errorf("attribute %s %#x out of range", attrName(t), v)
	}
	return uint32(v), nil
}

func (s *attrSet) time(t uint16) Timespec {
	v := s.val[t]
	return Timespec{Sec: int64(binary.LittleEndian.Uint64(v)), Nsec: binary.LittleEndian.Uint32(v[8:])}
}
