package btrfs

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenSubvolumeAt opens name, one component in the directory dirfd,
// without following a symbolic link, and checks it is a subvolume root.
// It returns the open directory and its subvolume; the caller closes fd.
// Errors do not name the path: the caller knows it.
func OpenSubvolumeAt(dirfd int, name string) (fd int, s Subvol, err error) {
	if err := checkName(name); err != nil {
		return -1, Subvol{}, err
	}
	for {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return -1, Subvol{}, err
	}
	if err := checkSubvolumeFD(fd, name); err != nil {
		unix.Close(fd)
		return -1, Subvol{}, errors.Unwrap(err)
	}
	if s, err = infoFD(fd); err != nil {
		unix.Close(fd)
		return -1, Subvol{}, fmt.Errorf("subvolume info: %w", err)
	}
	return fd, s, nil
}

// DeleteAt deletes the subvolume s, which OpenSubvolumeAt found as name in
// the directory dirfd: by its id, so that whatever was renamed or swapped
// in under name meanwhile is not what is deleted (by name through dirfd
// on kernels before 5.7, which lack deletion by id).
func DeleteAt(dirfd int, name string, s Subvol) error {
	if s.ID == fsTreeObjectID || s.ID == 0 {
		return errors.New("the top-level subvolume cannot be deleted")
	}
	a := new(volArgsV2)
	a.Flags = subvolSpecByID
	*(*uint64)(unsafe.Pointer(&a.Name[0])) = s.ID
	err := ioctl(dirfd, iocSnapDestroyV2, unsafe.Pointer(a))
	if err != nil && isNotSupported(err) {
		if err := checkName(name); err != nil {
			return err
		}
		v1 := new(volArgs)
		copy(v1.Name[:], name)
		err = ioctl(dirfd, iocSnapDestroy, unsafe.Pointer(v1))
	}
	if err != nil {
		return fmt.Errorf("delete subvolume: %w", needRoot(err))
	}
	return nil
}
