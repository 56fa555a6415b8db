package btrfs

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrNeedRoot is the kernel's EPERM for an operation that needs
// CAP_SYS_ADMIN (send, receive, deleting or changing a subvolume): the
// common case is a command run as an ordinary user.
var ErrNeedRoot = errors.New("operation not permitted: needs root (CAP_SYS_ADMIN)")

// needRoot turns EPERM into ErrNeedRoot.
func needRoot(err error) error {
	if errors.Is(err, unix.EPERM) {
		return ErrNeedRoot
	}
	return err
}

// IsAdmin reports whether the process has CAP_SYS_ADMIN in its effective
// set (true when the kernel will not say: let it decide).
func IsAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return true
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
}

// RequireAdmin is the error for a command that cannot work without
// CAP_SYS_ADMIN, or nil: checked up front so the user reads one line,
// not the failure of whatever step came first.
func RequireAdmin(name string) error {
	if IsAdmin() {
		return nil
	}
	return errors.New(name + " needs root (CAP_SYS_ADMIN)")
}
