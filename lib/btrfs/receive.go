package btrfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/uuid"
)

// What a receiver needs, on descriptors only: every path it acts on was
// opened beneath its destination first, so that nothing here resolves a
// name the stream or another process could redirect.

const (
	iocSubvolCreate = 0x5000940e // _IOW(0x94, 14, btrfs_ioctl_vol_args)
	iocEncodedWrite = 0x40809440 // _IOW(0x94, 64, btrfs_ioctl_encoded_io_args)
)

// encodedIOArgs is struct btrfs_ioctl_encoded_io_args.
type encodedIOArgs struct {
	Iov             uintptr // const struct iovec __user *
	IovCnt          uint64
	Offset          int64
	Flags           uint64
	Len             uint64
	UnencodedLen    uint64
	UnencodedOffset uint64
	Compression     uint32
	Encryption      uint32
	_               [64]uint8
}

// SubvolCreateAt makes an empty subvolume name in the directory dirfd
// (SUBVOL_CREATE); EEXIST when the name is taken.
func SubvolCreateAt(dirfd int, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	a := new(volArgs)
	copy(a.Name[:], name)
	if err := ioctl(dirfd, iocSubvolCreate, unsafe.Pointer(a)); err != nil {
		return fmt.Errorf("create subvolume: %w", needRoot(err))
	}
	return nil
}

// SnapshotAt makes name in the directory dirfd a snapshot of the
// subvolume open at srcfd (SNAP_CREATE_V2), read-only when readOnly. A
// writable snapshot starts without received UUID.
func SnapshotAt(srcfd, dirfd int, name string, readOnly bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	a := new(volArgsV2)
	a.FD = int64(srcfd)
	if readOnly {
		a.Flags = subvolRdonly
	}
	copy(a.Name[:], name)
	if err := ioctl(dirfd, iocSnapCreateV2, unsafe.Pointer(a)); err != nil {
		return fmt.Errorf("snapshot: %w", needRoot(err))
	}
	return nil
}

// SetReceivedFD records on the writable subvolume open at fd that it was
// received from the snapshot u whose ctransid was stransid, sent at stime
// (zero: unknown). The kernel fills rtransid and rtime.
func SetReceivedFD(fd int, u uuid.UUID, stransid uint64, stime time.Time) error {
	a := new(receivedSubvolArgs)
	a.UUID = u
	a.STransID = stransid
	if !stime.IsZero() {
		a.STime.Sec, a.STime.Nsec = uint64(stime.Unix()), uint32(stime.Nanosecond())
	}
	if err := ioctl(fd, iocSetReceivedSubvol, unsafe.Pointer(a)); err != nil {
		return fmt.Errorf("set received uuid: %w", needRoot(err))
	}
	return nil
}

// SetReadOnlyFD makes the subvolume open at fd read-only.
func SetReadOnlyFD(fd int) error {
	var flags uint64
	if err := ioctl(fd, iocSubvolGetFlags, unsafe.Pointer(&flags)); err != nil {
		return fmt.Errorf("get subvolume flags: %w", err)
	}
	if flags&subvolRdonly != 0 {
		return nil
	}
	flags |= subvolRdonly
	if err := ioctl(fd, iocSubvolSetFlags, unsafe.Pointer(&flags)); err != nil {
		return fmt.Errorf("set subvolume read-only: %w", needRoot(err))
	}
	return nil
}

// CloneRange makes n bytes (0: up to the source's end) at srcOffset of
// the file open at src share their extents with dst at dstOffset
// (FICLONERANGE, which is BTRFS_IOC_CLONE_RANGE).
func CloneRange(dst, src int, srcOffset, n, dstOffset uint64) error {
	r := unix.FileCloneRange{Src_fd: int64(src), Src_offset: srcOffset, Src_length: n, Dest_offset: dstOffset}
	return retryEINTR(func() error { return unix.IoctlFileCloneRange(dst, &r) })
}

// EncodedWrite is the extent ENCODED_WRITE stores: Data, compressed with
// Compression (1 zlib, 2 zstd, 3..7 lzo), decodes to UnencodedLen bytes of
// which [UnencodedOffset, UnencodedOffset+Len) belong at Offset.
type EncodedWrite struct {
	Offset          uint64
	Len             uint64
	UnencodedLen    uint64
	UnencodedOffset uint64
	Compression     uint32
	Encryption      uint32
	Data            []byte
}

// WriteEncoded stores e in the file open for writing at fd as it is,
// without decompressing it (BTRFS_IOC_ENCODED_WRITE, Linux 5.18+,
// CAP_SYS_ADMIN). The kernel refuses what it cannot take as one extent
// (ENOTTY, EINVAL, EOPNOTSUPP, ENOSPC among others): the caller may then
// write the decompressed bytes instead.
func WriteEncoded(fd int, e *EncodedWrite) error {
	if e.Offset > 1<<63-1 {
		return fmt.Errorf("encoded write at offset %d: %w", e.Offset, unix.EINVAL)
	}
	var iov unix.Iovec
	if len(e.Data) > 0 {
		iov.Base = &e.Data[0]
		iov.SetLen(len(e.Data))
	}
	a := encodedIOArgs{
		Iov: uintptr(unsafe.Pointer(&iov)), IovCnt: 1, Offset: int64(e.Offset), Len: e.Len,
		UnencodedLen: e.UnencodedLen, UnencodedOffset: e.UnencodedOffset,
		Compression: e.Compression, Encryption: e.Encryption,
	}
	for {
		// The kernel writes the extent whole or not at all.
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), iocEncodedWrite, uintptr(unsafe.Pointer(&a)))
		runtime.KeepAlive(&iov)
		runtime.KeepAlive(e.Data)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// Syncfs makes everything written to the filesystem holding fd durable.
func Syncfs(fd int) error {
	return retryEINTR(func() error { return unix.Syncfs(fd) })
}

// InfoFD describes the subvolume whose root is open at fd.
func InfoFD(fd int) (Subvol, error) {
	if err := checkSubvolumeFD(fd, ""); err != nil {
		return Subvol{}, errors.Unwrap(err)
	}
	s, err := infoFD(fd)
	if err != nil {
		return Subvol{}, fmt.Errorf("subvolume info: %w", err)
	}
	return s, nil
}

// ListFD is List for the directory open at fd.
func ListFD(fd int) ([]Subvol, error) {
	var sfs unix.Statfs_t
	if err := retryEINTR(func() error { return unix.Fstatfs(fd, &sfs) }); err != nil {
		return nil, err
	}
	if uint32(sfs.Type) != superMagic {
		return nil, ErrNotBtrfs
	}
	subs, err := listPrivileged(fd)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		subs, err = listUnprivileged(fd)
	}
	if err != nil {
		return nil, fmt.Errorf("list subvolumes: %w", err)
	}
	return sortByPath(subs), nil
}

// UUIDSubvols lists every subvolume id the UUID tree of fd's filesystem
// holds for u: received, those whose received UUID is u; others, those
// whose UUID is u; each in the tree's order. It needs CAP_SYS_ADMIN.
func UUIDSubvols(fd int, u uuid.UUID) (received, others []uint64, err error) {
	if received, err = uuidTreeAll(fd, u, uuidKeyReceived); err != nil {
		return nil, nil, needRoot(err)
	}
	if others, err = uuidTreeAll(fd, u, uuidKeySubvol); err != nil {
		return nil, nil, needRoot(err)
	}
	return received, others, nil
}

// uuidTreeAll is every subvolume id the UUID tree lists for u under key
// type typ.
func uuidTreeAll(fd int, u uuid.UUID, typ uint32) ([]uint64, error) {
	if u.IsZero() {
		return nil, nil
	}
	hi, lo := binary.LittleEndian.Uint64(u[0:8]), binary.LittleEndian.Uint64(u[8:16])
	var ids []uint64
	err := treeSearch(fd, searchKey{
		TreeID: uuidTreeObjectID, MinObjectID: hi, MaxObjectID: hi,
		MinType: typ, MaxType: typ, MinOffset: lo, MaxOffset: lo,
		MaxTransID: ^uint64(0),
	}, func(it searchItem) error {
		if it.ObjectID != hi || it.Type != typ || it.Offset != lo || len(it.Data)%8 != 0 {
			return nil
		}
		for b := it.Data; len(b) >= 8; b = b[8:] {
			ids = append(ids, binary.LittleEndian.Uint64(b))
		}
		return nil
	})
	return ids, err
}
