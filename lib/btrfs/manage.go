package btrfs

import (
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/uuid"
)

// checkName rejects a subvolume name the kernel would misread.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid subvolume name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid subvolume name %q: contains '/' or NUL", name)
	case len(name) > volNameMax:
		return fmt.Errorf("subvolume name %.20q…: longer than %d bytes", name, volNameMax)
	}
	return nil
}

// Snapshot makes dstDir/name a snapshot of the subvolume src
// (SNAP_CREATE_V2), read-only when readOnly. A writable snapshot starts
// without received UUID; a read-only one keeps src's.
func Snapshot(src, dstDir, name string, readOnly bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	sfd, err := openSubvolume(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	dfd, err := openDir(dstDir)
	if err != nil {
		return fmt.Errorf("%s: %w", dstDir, err)
	}
	defer unix.Close(dfd)
	a := new(volArgsV2)
	a.FD = int64(sfd)
	if readOnly {
		a.Flags = subvolRdonly
	}
	copy(a.Name[:], name)
	if err := ioctl(dfd, iocSnapCreateV2, unsafe.Pointer(a)); err != nil {
		return fmt.Errorf("%s: snapshot of %s: %w", filepath.Join(dstDir, name), src, needRoot(err))
	}
	return nil
}

// Delete deletes the subvolume at path, read-only or not. It names the
// subvolume by id to its parent directory (SNAP_DESTROY_V2, Linux 5.7+), so
// what is deleted is the subvolume checked here even if the name is
// replaced meanwhile; older kernels get the by-name v1 call. A subvolume
// holding other subvolumes fails with ENOTEMPTY. Space is freed
// asynchronously by the kernel.
func Delete(path string) error {
	path = filepath.Clean(path)
	fd, err := openSubvolume(path)
	if err != nil {
		return err
	}
	s, err := infoFD(fd)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("%s: subvolume info: %w", path, err)
	}
	if s.ID == fsTreeObjectID {
		return fmt.Errorf("%s: the top-level subvolume cannot be deleted", path)
	}
	parent, name := filepath.Dir(path), filepath.Base(path)
	pfd, err := openDir(parent)
	if err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	defer unix.Close(pfd)
	a := new(volArgsV2)
	a.Flags = subvolSpecByID
	*(*uint64)(unsafe.Pointer(&a.Name[0])) = s.ID
	err = ioctl(pfd, iocSnapDestroyV2, unsafe.Pointer(a))
	if err != nil && isNotSupported(err) {
		v1 := new(volArgs)
		copy(v1.Name[:], name)
		err = ioctl(pfd, iocSnapDestroy, unsafe.Pointer(v1))
	}
	if err != nil {
		return fmt.Errorf("%s: delete subvolume: %w", path, needRoot(err))
	}
	return nil
}

// ReadOnly reports whether the subvolume at path is read-only.
func ReadOnly(path string) (bool, error) {
	fd, err := openSubvolume(path)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetFlags, unsafe.Pointer(&flags)); err != nil {
		return false, fmt.Errorf("%s: get subvolume flags: %w", path, err)
	}
	return flags&subvolRdonly != 0, nil
}

// SetReadOnly makes the subvolume at path read-only or writable. Unlike
// btrfs-progs it leaves the received UUID alone; making a received
// snapshot writable is the caller's decision to take with care.
func SetReadOnly(path string, ro bool) error {
	fd, err := openSubvolume(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetFlags, unsafe.Pointer(&flags)); err != nil {
		return fmt.Errorf("%s: get subvolume flags: %w", path, err)
	}
	want := flags &^ subvolRdonly
	if ro {
		want |= subvolRdonly
	}
	if want == flags {
		return nil
	}
	if err := ioctl(fd, iocSubvolSetFlags, unsafe.Pointer(&want)); err != nil {
		return fmt.Errorf("%s: set subvolume flags: %w", path, needRoot(err))
	}
	return nil
}

// SetReceived records on the writable subvolume at path that it was
// received from the snapshot u whose ctransid was stransid
// (SET_RECEIVED_SUBVOL); the kernel fills rtransid and rtime.
func SetReceived(path string, u uuid.UUID, stransid uint64) error {
	fd, err := openSubvolume(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	a := new(receivedSubvolArgs)
	a.UUID = u
	a.STransID = stransid
	if err := ioctl(fd, iocSetReceivedSubvol, unsafe.Pointer(a)); err != nil {
		return fmt.Errorf("%s: set received uuid: %w", path, needRoot(err))
	}
	return nil
}

// Sync commits the current transaction of the filesystem holding path
// (BTRFS_IOC_SYNC), so that root items in the root tree (what List reads)
// catch up with the live state Info reports.
func Sync(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := ioctl(fd, iocSync, nil); err != nil {
		return fmt.Errorf("%s: sync: %w", path, err)
	}
	return nil
}
