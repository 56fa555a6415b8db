package receive

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls a stream makes by the thousand are made raw, without
// telling the Go scheduler: a call the scheduler knows of that lasts
// longer than its 20 µs tick (most file operations on btrfs do) has its
// processor handed to another thread, and the goroutine then wakes on
// yet another one, each time, while the scheduler's monitor polls every
// 20 µs. On the quick receive benchmark that was ~8,000 context switches
// for 5,000 files and an eighth of the CPU time. None of these calls
// waits on anything but the filesystem; reads of the stream, which wait
// on the sender, and syncs stay ordinary calls.

func rawErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawOpenat2(dir int, path string, how *unix.OpenHow) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	r, _, e := unix.RawSyscall6(unix.SYS_OPENAT2, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(how)), unsafe.Sizeof(*how), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func rawPwrite(fd int, b []byte, off int64) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	r, _, e := unix.RawSyscall6(unix.SYS_PWRITE64, uintptr(fd), uintptr(p), uintptr(len(b)), uintptr(off), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func rawClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func rawFchownat(dir int, base string, uid, gid int, flags int) error {
	p, err := unix.BytePtrFromString(base)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_FCHOWNAT, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(uid), uintptr(gid), uintptr(flags), 0)
	return rawErr(e)
}

func rawFchown(fd, uid, gid int) error {
	_, _, e := unix.RawSyscall(unix.SYS_FCHOWN, uintptr(fd), uintptr(uid), uintptr(gid))
	return rawErr(e)
}

func rawFchmod(fd int, mode uint32) error {
	_, _, e := unix.RawSyscall(unix.SYS_FCHMOD, uintptr(fd), uintptr(mode), 0)
	return rawErr(e)
}

// rawFchmodat2 is fchmodat2(2), whose AT_SYMLINK_NOFOLLOW refuses a
// symbolic link (EOPNOTSUPP).
func rawFchmodat2(dir int, base string, mode uint32, flags int) error {
	p, err := unix.BytePtrFromString(base)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_FCHMODAT2, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(mode), uintptr(flags), 0, 0)
	return rawErr(e)
}

// rawUtimensat with an empty base is futimens(2) on dir; ts holds the
// access and modification times.
func rawUtimensat(dir int, base string, ts []unix.Timespec, flags int) error {
	var p *byte
	if base != "" {
		var err error
		if p, err = unix.BytePtrFromString(base); err != nil {
			return err
		}
	}
	_, _, e := unix.RawSyscall6(unix.SYS_UTIMENSAT, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&ts[0])), uintptr(flags), 0, 0)
	return rawErr(e)
}

func rawFstatat(dir int, base string, st *unix.Stat_t, flags int) error {
	p, err := unix.BytePtrFromString(base)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	return rawErr(e)
}
