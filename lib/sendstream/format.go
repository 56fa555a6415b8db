// Package sendstream reads btrfs send streams: it splits concatenated
// streams apart, verifies every command's CRC32C before letting its bytes
// through, decodes the first command (what the stream creates) and, for
// callers that need it, every command.
//
// Stream format (all integers little-endian):
//
//	stream header  17 bytes: "btrfs-stream\0", u32 version (1..3)
//	command        10 bytes: u32 payload length, u16 type, u32 crc32c
//	               then the payload: attributes as u16 type, u16 length, value
//	               (from version 2 on, DATA runs to the end of its command
//	               without a length)
//
// The CRC is CRC32C (Castagnoli) over the command header with its crc
// field zeroed, followed by the payload, seeded with 0 and not inverted at
// either end (the kernel's crc32c(0, ...)). A stream ends with an END
// command; streams follow each other back to back.
package sendstream

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
)

// Magic starts every stream.
const Magic = "btrfs-stream\x00"

// Sizes of the fixed parts.
const (
	HeaderLen    = 17 // len(Magic) + 4
	CmdHeaderLen = 10
	// MaxVersion is the newest protocol this package reads.
	MaxVersion = 3
	// MaxCommand caps one command's payload. The kernel's send buffer is
	// 64 KiB for protocol 1 and 144 KiB for 2 (128 KiB encoded writes plus
	// metadata); the cap leaves room for growth yet bounds the memory a
	// corrupt length field can make the reader allocate.
	MaxCommand = 16 << 20
)

// Command types.
const (
	CmdSubvol       = 1
	CmdSnapshot     = 2
	CmdMkfile       = 3
	CmdMkdir        = 4
	CmdMknod        = 5
	CmdMkfifo       = 6
	CmdMksock       = 7
	CmdSymlink      = 8
	CmdRename       = 9
	CmdLink         = 10
	CmdUnlink       = 11
	CmdRmdir        = 12
	CmdSetXattr     = 13
	CmdRemoveXattr  = 14
	CmdWrite        = 15
	CmdClone        = 16
	CmdTruncate     = 17
	CmdChmod        = 18
	CmdChown        = 19
	CmdUtimes       = 20
	CmdEnd          = 21
	CmdUpdateExtent = 22
	CmdFallocate    = 23
	CmdFileattr     = 24
	CmdEncodedWrite = 25
	CmdEnableVerity = 26
)

var cmdNames = [...]string{
	"UNSPEC", "SUBVOL", "SNAPSHOT", "MKFILE", "MKDIR", "MKNOD", "MKFIFO", "MKSOCK",
	"SYMLINK", "RENAME", "LINK", "UNLINK", "RMDIR", "SET_XATTR", "REMOVE_XATTR",
	"WRITE", "CLONE", "TRUNCATE", "CHMOD", "CHOWN", "UTIMES", "END",
	"UPDATE_EXTENT", "FALLOCATE", "FILEATTR", "ENCODED_WRITE", "ENABLE_VERITY",
}

// CmdName is the name of a command type, as btrfs-progs prints it.
func CmdName(t uint16) string {
	if int(t) < len(cmdNames) {
		return cmdNames[t]
	}
	if t == CmdResume {
		return "RESUME"
	}
	return "command " + strconv.Itoa(int(t))
}

// Attribute types.
const (
	AttrUUID          = 1
	AttrCTransID      = 2
	AttrIno           = 3
	AttrSize          = 4
	AttrMode          = 5
	AttrUID           = 6
	AttrGID           = 7
	AttrRdev          = 8
	AttrCTime         = 9
	AttrMTime         = 10
	AttrATime         = 11
	AttrOTime         = 12
	AttrXattrName     = 13
	AttrXattrData     = 14
	AttrPath          = 15
	AttrPathTo        = 16
	AttrPathLink      = 17
	AttrFileOffset    = 18
	AttrData          = 19
	AttrCloneUUID     = 20
	AttrCloneCTransID = 21
	AttrClonePath     = 22
	AttrCloneOffset   = 23
	AttrCloneLen      = 24
	// Protocol 2.
	AttrFallocateMode    = 25
	AttrFileattr         = 26
	AttrUnencodedFileLen = 27
	AttrUnencodedLen     = 28
	AttrUnencodedOffset  = 29
	AttrCompression      = 30
	AttrEncryption       = 31
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c continues the kernel-style CRC32C (no inversion at either end)
// crc over p. Go's crc32.Update inverts on entry and exit; undo both.
func crc32c(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, p)
}

var zeroCRC [4]byte

// commandCRC is the CRC of the command whose header and payload are cmd.
func commandCRC(cmd []byte) uint32 {
	c := crc32c(0, cmd[:6])
	c = crc32c(c, zeroCRC[:])
	return crc32c(c, cmd[CmdHeaderLen:])
}

// Command is one verified command. Payload is valid only until the
// function it was passed to returns.
type Command struct {
	Type uint16
	// Offset is the absolute byte offset of the command header in the input.
	Offset int64
	// Version is the protocol version of the stream holding the command.
	Version uint32
	// CRC is the command's verified CRC (0 where only a command's
	// payload is at hand, such as Stream.Subvol's source).
	CRC     uint32
	Payload []byte
}

// Len is the command's length in the stream, header included.
func (c *Command) Len() int { return CmdHeaderLen + len(c.Payload) }

// Header is the command's 10-byte header as it was in the stream (what
// a resume digest is fed with).
func (c *Command) Header() [CmdHeaderLen]byte {
	var h [CmdHeaderLen]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(c.Payload)))
	binary.LittleEndian.PutUint16(h[4:], c.Type)
	binary.LittleEndian.PutUint32(h[6:], c.CRC)
	return h
}

// Attrs calls fn for each attribute in order. From protocol 2 on, DATA
// has no length and holds the rest of the command.
func (c *Command) Attrs(fn func(typ uint16, val []byte) error) error {
	p := c.Payload
	for len(p) > 0 {
		if len(p) < 2 {
			return fmt.Errorf("%s: truncated attribute header", CmdName(c.Type))
		}
		typ := binary.LittleEndian.Uint16(p)
		if typ == AttrData && c.Version >= 2 {
			return fn(typ, p[2:])
		}
		if len(p) < 4 {
			return fmt.Errorf("%s: truncated attribute header", CmdName(c.Type))
		}
		n := int(binary.LittleEndian.Uint16(p[2:]))
		if len(p) < 4+n {
			return fmt.Errorf("%s: attribute %d length %d beyond the command", CmdName(c.Type), typ, n)
		}
		if err := fn(typ, p[4:4+n]); err != nil {
			return err
		}
		p = p[4+n:]
	}
	return nil
}

// Attr returns the value of the first attribute of type typ.
func (c *Command) Attr(typ uint16) ([]byte, bool) {
	var val []byte
	found := false
	errStop := fmt.Errorf("stop")
	c.Attrs(func(t uint16, v []byte) error {
		if t == typ {
			val, found = v, true
			return errStop
		}
		return nil
	})
	return val, found
}

// Uint64 returns a u64 attribute.
func (c *Command) Uint64(typ uint16) (uint64, bool) {
	v, ok := c.Attr(typ)
	if !ok || len(v) != 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(v), true
}

// DataLen is the file data this command carries or stands for: the DATA
// length of WRITE and ENCODED_WRITE, the SIZE of UPDATE_EXTENT (what a
// NO_FILE_DATA send emits instead of WRITE), 0 for anything else. Summing
// it over a NO_FILE_DATA stream estimates the data of the full stream.
func (c *Command) DataLen() int64 {
	switch c.Type {
	case CmdWrite, CmdEncodedWrite:
		v, _ := c.Attr(AttrData)
		return int64(len(v))
	case CmdUpdateExtent:
		n, _ := c.Uint64(AttrSize)
		return int64(n)
	}
	return 0
}

// A resumed stream carries the rest of a stream that a receiver already
// holds in part (buttersink-formats(5), RESUME): its header's version has
// ResumeFlag set, so that btrfs receive refuses it; the original first
// command follows verbatim, then a RESUME command saying where in the
// original stream the bytes after it belong, then those bytes through END.
const (
	ResumeFlag = 0x100
	// CmdResume is ours, far beyond btrfs's command numbers ("BS").
	CmdResume = 0x4253
	// AttrResumeDigest is the RESUME command's digest (32 bytes); its
	// AttrFileOffset (u64) is the resume point's offset.
	AttrResumeDigest = 0x4253
)
