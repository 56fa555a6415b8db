// Package btrfs talks to the btrfs kernel module directly through ioctls:
// listing subvolumes, reading their identity (UUIDs, transaction ids,
// times), making and deleting snapshots, marking received subvolumes and
// running send. It uses golang.org/x/sys/unix only: no cgo, and it never
// parses btrfs-progs output.
//
// The argument structs below mirror the kernel's include/uapi/linux/btrfs.h
// and btrfs_tree.h; each names the kernel struct it copies. Their sizes are
// encoded in the ioctl numbers and checked by the unit tests.
package btrfs

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ioctl request numbers (_IO* (0x94, nr, size) from uapi/linux/btrfs.h).
const (
	iocSnapDestroy       = 0x5000940f // _IOW(0x94, 15, btrfs_ioctl_vol_args)
	iocSync              = 0x9408     // _IO(0x94, 8)
	iocTreeSearch        = 0xd0009411 // _IOWR(0x94, 17, btrfs_ioctl_search_args)
	iocTreeSearchV2      = 0xc0709411 // _IOWR(0x94, 17, btrfs_ioctl_search_args_v2)
	iocInoLookup         = 0xd0009412 // _IOWR(0x94, 18, btrfs_ioctl_ino_lookup_args)
	iocSnapCreateV2      = 0x50009417 // _IOW(0x94, 23, btrfs_ioctl_vol_args_v2)
	iocSubvolGetFlags    = 0x80089419 // _IOR(0x94, 25, __u64)
	iocSubvolSetFlags    = 0x4008941a // _IOW(0x94, 26, __u64)
	iocFSInfo            = 0x8400941f // _IOR(0x94, 31, btrfs_ioctl_fs_info_args)
	iocSetReceivedSubvol = 0xc0c89425 // _IOWR(0x94, 37, btrfs_ioctl_received_subvol_args)
	iocSend              = 0x40489426 // _IOW(0x94, 38, btrfs_ioctl_send_args)
	iocGetSubvolInfo     = 0x81f8943c // _IOR(0x94, 60, btrfs_ioctl_get_subvol_info_args)
	iocGetSubvolRootref  = 0xd000943d // _IOWR(0x94, 61, btrfs_ioctl_get_subvol_rootref_args)
	iocInoLookupUser     = 0xd000943e // _IOWR(0x94, 62, btrfs_ioctl_ino_lookup_user_args)
	iocSnapDestroyV2     = 0x5000943f // _IOW(0x94, 63, btrfs_ioctl_vol_args_v2)
)

// On-disk and ioctl constants.
const (
	superMagic = 0x9123683e // BTRFS_SUPER_MAGIC, statfs f_type

	fsTreeObjectID     = 5                     // BTRFS_FS_TREE_OBJECTID: the top-level subvolume
	rootTreeObjectID   = 1                     // BTRFS_ROOT_TREE_OBJECTID
	quotaTreeObjectID  = 8                     // BTRFS_QUOTA_TREE_OBJECTID
	firstFreeObjectID  = 256                   // BTRFS_FIRST_FREE_OBJECTID: a subvolume's root dir inode
	lastFreeObjectID   = ^uint64(0) - 256 + 1  // BTRFS_LAST_FREE_OBJECTID (-256ULL)
	rootItemKey        = 132                   // BTRFS_ROOT_ITEM_KEY
	rootBackrefKey     = 144                   // BTRFS_ROOT_BACKREF_KEY
	qgroupInfoKey      = 242                   // BTRFS_QGROUP_INFO_KEY
	rootSubvolRdonly   = 1 << 0                // BTRFS_ROOT_SUBVOL_RDONLY (root item flags)
	rootSubvolDead     = 1 << 48               // BTRFS_ROOT_SUBVOL_DEAD (root item flags)
	subvolRdonly       = 1 << 1                // BTRFS_SUBVOL_RDONLY (ioctl flags)
	subvolSpecByID     = 1 << 4                // BTRFS_SUBVOL_SPEC_BY_ID
	volNameMax         = 255                   // BTRFS_VOL_NAME_MAX
	pathNameMax        = 4087                  // BTRFS_PATH_NAME_MAX
	subvolNameMax      = 4039                  // BTRFS_SUBVOL_NAME_MAX
	inoLookupPathMax   = 4080                  // BTRFS_INO_LOOKUP_PATH_MAX
	inoLookupUserPath  = 4080 - volNameMax - 1 // BTRFS_INO_LOOKUP_USER_PATH_MAX
	searchArgsBufSize  = 4096 - searchKeySize  // BTRFS_SEARCH_ARGS_BUFSIZE
	searchKeySize      = 104                   // sizeof(struct btrfs_ioctl_search_key)
	searchHeaderSize   = 32                    // sizeof(struct btrfs_ioctl_search_header)
	rootRefMaxItems    = 255                   // BTRFS_MAX_ROOTREF_BUFFER_NUM
	fsInfoFlagGen      = 1 << 1                // BTRFS_FS_INFO_FLAG_GENERATION
	fsInfoFlagMetaUUID = 1 << 2                // BTRFS_FS_INFO_FLAG_METADATA_UUID
)

// ioctlTimespec is struct btrfs_ioctl_timespec (not packed: 16 bytes).
type ioctlTimespec struct {
	Sec  uint64
	Nsec uint32
	_    uint32
}

// searchKey is struct btrfs_ioctl_search_key.
type searchKey struct {
	TreeID      uint64
	MinObjectID uint64
	MaxObjectID uint64
	MinOffset   uint64
	MaxOffset   uint64
	MinTransID  uint64
	MaxTransID  uint64
	MinType     uint32
	MaxType     uint32
	NrItems     uint32
	_           uint32
	_           [4]uint64
}

// searchArgs is struct btrfs_ioctl_search_args (v1, fixed 4 KiB).
type searchArgs struct {
	Key searchKey
	Buf [searchArgsBufSize]byte
}

// searchArgsV2Header is the fixed head of struct btrfs_ioctl_search_args_v2;
// the result buffer (buf_size bytes) follows it directly.
type searchArgsV2Header struct {
	Key     searchKey
	BufSize uint64
}

// inoLookupArgs is struct btrfs_ioctl_ino_lookup_args.
type inoLookupArgs struct {
	TreeID   uint64
	ObjectID uint64
	Name     [inoLookupPathMax]byte
}

// inoLookupUserArgs is struct btrfs_ioctl_ino_lookup_user_args.
type inoLookupUserArgs struct {
	DirID  uint64
	TreeID uint64
	Name   [volNameMax + 1]byte
	Path   [inoLookupUserPath]byte
}

// rootRef is one entry of btrfs_ioctl_get_subvol_rootref_args.rootref.
type rootRef struct {
	TreeID uint64
	DirID  uint64
}

// getSubvolRootrefArgs is struct btrfs_ioctl_get_subvol_rootref_args.
type getSubvolRootrefArgs struct {
	MinTreeID uint64
	RootRef   [rootRefMaxItems]rootRef
	NumItems  uint8
	_         [7]uint8
}

// getSubvolInfoArgs is struct btrfs_ioctl_get_subvol_info_args.
type getSubvolInfoArgs struct {
	TreeID       uint64
	Name         [volNameMax + 1]byte
	ParentID     uint64
	DirID        uint64
	Generation   uint64
	Flags        uint64
	UUID         [16]byte
	ParentUUID   [16]byte
	ReceivedUUID [16]byte
	CTransID     uint64
	OTransID     uint64
	STransID     uint64
	RTransID     uint64
	CTime        ioctlTimespec
	OTime        ioctlTimespec
	STime        ioctlTimespec
	RTime        ioctlTimespec
	_            [8]uint64
}

// volArgs is struct btrfs_ioctl_vol_args (v1).
type volArgs struct {
	FD   int64
	Name [pathNameMax + 1]byte
}

// volArgsV2 is struct btrfs_ioctl_vol_args_v2; Name is the union of name,
// devid and subvolid (the id is its first 8 bytes).
type volArgsV2 struct {
	FD      int64
	TransID uint64
	Flags   uint64
	_       [4]uint64 // union { size, qgroup_inherit; unused[4] }
	Name    [subvolNameMax + 1]byte
}

// receivedSubvolArgs is struct btrfs_ioctl_received_subvol_args.
type receivedSubvolArgs struct {
	UUID     [16]byte
	STransID uint64
	RTransID uint64
	STime    ioctlTimespec
	RTime    ioctlTimespec
	Flags    uint64
	_        [16]uint64
}

// sendArgs is struct btrfs_ioctl_send_args.
type sendArgs struct {
	SendFD            int64
	CloneSourcesCount uint64
	CloneSources      uintptr // __u64 __user *
	ParentRoot        uint64
	Flags             uint64
	Version           uint32
	_                 [28]uint8
}

// fsInfoArgs is struct btrfs_ioctl_fs_info_args.
type fsInfoArgs struct {
	MaxID          uint64
	NumDevices     uint64
	FSID           [16]byte
	NodeSize       uint32
	SectorSize     uint32
	CloneAlignment uint32
	CsumType       uint16
	CsumSize       uint16
	Flags          uint64
	Generation     uint64
	MetadataUUID   [16]byte
	_              [944]uint8
}

// ioctl runs one ioctl, retrying when a signal interrupted it.
func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// cString returns the NUL-terminated string at the start of b.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// openDir opens path for ioctls. Directories (every subvolume root) are
// opened read-only, which needs no write permission.
func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// isNotSupported reports whether err means the kernel lacks an ioctl.
func isNotSupported(err error) bool {
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}
