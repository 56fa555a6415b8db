package receive

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls a stream makes by the thousand are made raw, out of
// the Go scheduler's sight. Around an ordinary one the scheduler marks
// the goroutine's P as in a system call, and its monitor (sysmon), which
// may take such a P for another thread once the call outlasts its tick,
// keeps polling every 20 µs while calls come and go; file operations on
// btrfs mostly last longer than that. Measured on the quick receive
// benchmark: with ordinary calls, ~12,000 monitor wake-ups and ~7,000
// context switches for 5,000 files, and a fifth more CPU time. None of
// these calls waits on anything but the filesystem; reads of the
// stream, which wait on the sender, syncs, and the calls that may copy
// or free much data (clone, fallocate) stay ordinary calls.

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

func rawFtruncate(fd int, size int64) error {
	_, _, e := unix.RawSyscall(unix.SYS_FTRUNCATE, uintptr(fd), uintptr(size), 0)
	return rawErr(e)
}

// rawAt makes the system call trap on (dir, name, a2, a3, a4, a5), name
// a path: unlinkat, mkdirat and the like.
func rawAt(trap uintptr, dir int, name string, a2, a3, a4, a5 uintptr) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(trap, uintptr(dir), uintptr(unsafe.Pointer(p)), a2, a3, a4, a5)
	return rawErr(e)
}

// rawAt2 makes the system call trap on (dir1, name1, dir2, name2, flags):
// renameat2 and linkat.
func rawAt2(trap uintptr, dir1 int, name1 string, dir2 int, name2 string, flags int) error {
	p1, err := unix.BytePtrFromString(name1)
	if err != nil {
		return err
	}
	p2, err := unix.BytePtrFromString(name2)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(trap, uintptr(dir1), uintptr(unsafe.Pointer(p1)), uintptr(dir2), uintptr(unsafe.Pointer(p2)), uintptr(flags), 0)
	return rawErr(e)
}

func rawFsetxattr(fd int, name string, data []byte) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	var d unsafe.Pointer
	if len(data) > 0 {
		d = unsafe.Pointer(&data[0])
	}
	_, _, e := unix.RawSyscall6(unix.SYS_FSETXATTR, uintptr(fd), uintptr(unsafe.Pointer(p)), uintptr(d), uintptr(len(data)), 0, 0)
	return rawErr(e)
}

func rawSymlinkat(target string, dir int, name string) error {
	t, err := unix.BytePtrFromString(target)
	if err != nil {
		return err
	}
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall(unix.SYS_SYMLINKAT, uintptr(unsafe.Pointer(t)), uintptr(dir), uintptr(unsafe.Pointer(p)))
	return rawErr(e)
}
