// Package receive applies btrfs send streams: it decodes each verified
// command of a stream (lib/sendstream) and has a Target carry it out.
//
// Two targets implement the file operations: a btrfs subvolume (bsrecv,
// where clones and compressed extents go through ioctls and the result
// is marked received and read-only) and, later, a plain directory
// (restores where there is no btrfs). Both act through a Dir, which opens
// every path of the stream beneath one directory with openat2
// (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): the kernel,
// not a string check, keeps a hostile stream inside it.
package receive

import (
	"github.com/buttersink/buttersink/lib/uuid"
)

// ID identifies a subvolume in a stream: its UUID (the received UUID when
// the sender had one) and its ctransid.
type ID struct {
	UUID     uuid.UUID
	CTransID uint64
}

// Timespec is a time as the stream carries it.
type Timespec struct {
	Sec  int64
	Nsec uint32
}

// Encoded is an ENCODED_WRITE: Data holds Compression-compressed bytes
// that decode to UnencodedLen bytes, of which
// [UnencodedOffset, UnencodedOffset+UnencodedFileLen) belong at Offset.
type Encoded struct {
	Offset           uint64
	UnencodedFileLen uint64
	UnencodedLen     uint64
	UnencodedOffset  uint64
	Compression      uint32 // 1 zlib, 2 zstd, 3..7 lzo with 4..64 KiB sectors
	Encryption       uint32
	Data             []byte
}

// Verity is an ENABLE_VERITY command's arguments.
type Verity struct {
	Algorithm uint8
	BlockSize uint32
	Salt      []byte
	Signature []byte
}

// Dest is where a stream's subvolume is made. Begin makes it (a full
// stream: parent nil) or makes it from its parent (an incremental: parent
// is the stream's CLONE_UUID and CLONE_CTRANSID), and returns the Tree the
// stream's other commands apply to. name is the stream's PATH, checked to
// be one path component.
type Dest interface {
	Begin(name string, id ID, parent *ID) (Tree, error)
}

// Reopener is a Dest that can go on with a receive cut short: Reopen
// returns the Tree of the partial subvolume name, which Begin made for
// the same id and parent, provided it still is that very subvolume (its
// own UUID is self) and still partial.
type Reopener interface {
	Reopen(name string, id ID, parent *ID, self uuid.UUID) (Tree, error)
}

// Tree carries out a stream's commands on the subvolume (or directory)
// being received. Every path is relative to its root ("" is the root
// itself) and, as far as Tree is concerned, hostile: implementations open
// it beneath the root only. Buffers passed in are valid during the call
// only.
type Tree interface {
	Mkfile(path string) error
	Mkdir(path string) error
	Mknod(path string, mode uint32, rdev uint64) error
	Mkfifo(path string) error
	Mksock(path string) error
	Symlink(path, target string) error
	Rename(from, to string) error
	// Link makes path a new name of the existing file target.
	Link(path, target string) error
	Unlink(path string) error
	Rmdir(path string) error
	SetXattr(path, name string, data []byte) error
	RemoveXattr(path, name string) error
	Write(path string, offset uint64, data []byte) error
	// Clone copies n bytes (0: up to the source's end) at srcOffset of
	// srcPath in the subvolume src to offset of path. src is the ID of
	// the subvolume being received for a clone within it.
	Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error
	Truncate(path string, size uint64) error
	Chmod(path string, mode uint32) error
	Chown(path string, uid, gid uint64) error
	Utimes(path string, atime, mtime, ctime Timespec) error
	// UpdateExtent stands for data a --no-data send left out.
	UpdateExtent(path string, offset, n uint64) error
	Fallocate(path string, mode uint32, offset, n uint64) error
	// Fileattr sets the btrfs inode flags (BTRFS_INODE_*) of path.
	Fileattr(path string, flags uint64) error
	EncodedWrite(path string, e *Encoded) error
	EnableVerity(path string, v *Verity) error

	// Sync makes every command applied so far durable: after it returns,
	// a crash loses none of them. A resume point is recorded only after
	// Sync, and after Applier.Flush (the applier may hold one back).
	Sync() error
	// End finishes the tree at the stream's END: for btrfs, the received
	// UUID and stransid are set and the subvolume made read-only. Nothing
	// before End may make it look complete.
	End() error
	// Close releases what the Tree holds (descriptors), whether or not
	// End was called. It never deletes anything.
	Close() error
}
