package btrfs

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SendFlags are the flags of the SEND ioctl (BTRFS_SEND_FLAG_*).
type SendFlags uint64

// Send flags.
const (
	NoFileData       SendFlags = 0x1  // metadata only
	OmitStreamHeader SendFlags = 0x2  // no "btrfs-stream" header (for concatenating)
	OmitEndCmd       SendFlags = 0x4  // no END command (for concatenating)
	Version          SendFlags = 0x8  // the version field is valid; set by Send when proto > 0
	Compressed       SendFlags = 0x10 // pass compressed extents through (proto >= 2)
)

// Send runs the SEND ioctl on the read-only subvolume at path, writing the
// stream into outFD. outFD must be a blocking pipe: one from
// unix.Pipe2(O_CLOEXEC) (os.Pipe is non-blocking and the kernel aborts with
// EAGAIN) or an inherited one. The kernel writes a regular file (without
// O_APPEND) from its offset 0 on, whatever the descriptor's position, and
// leaves the position where it was, so sends into one file overwrite each
// other; it refuses character devices. parent and clones are paths of
// read-only subvolumes ("" = none); like btrfs send, the parent is added
// to the clone sources. proto 0 is the kernel default (version 1).
// Send blocks until the kernel is done and returns its error (EPIPE when
// the reader went away: closing the read end is how to cancel).
func Send(path string, outFD int, parent string, clones []string, proto uint32, flags SendFlags) error {
	fd, err := openSubvolume(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	a := new(sendArgs)
	a.SendFD = int64(outFD)
	var sources []uint64
	addSource := func(p string) (uint64, error) {
		s, err := Info(p)
		if err != nil {
			return 0, err
		}
		if !s.ReadOnly {
			return 0, fmt.Errorf("%s: not read-only; send needs read-only parent and clone sources", p)
		}
		for _, id := range sources {
			if id == s.ID {
				return s.ID, nil
			}
		}
		sources = append(sources, s.ID)
		return s.ID, nil
	}
	if parent != "" {
		if a.ParentRoot, err = addSource(parent); err != nil {
			return err
		}
	}
	for _, c := range clones {
		if _, err := addSource(c); err != nil {
			return err
		}
	}
	if len(sources) > 0 {
		a.CloneSourcesCount = uint64(len(sources))
		a.CloneSources = uintptr(unsafe.Pointer(&sources[0]))
	}
	f := flags &^ Version
	if proto > 0 {
		f |= Version
		a.Version = proto
	}
	a.Flags = uint64(f)
	err = sendIoctl(fd, a)
	// The kernel reads clone_sources through a plain integer: keep the
	// slice alive until the ioctl has returned.
	runtime.KeepAlive(sources)
	if err != nil {
		return fmt.Errorf("%s: send: %w", path, needRoot(err))
	}
	return nil
}

// sendIoctl runs SEND once, with signals blocked on its thread. A signal
// landing on this thread while the kernel waits on a full pipe would make
// the ioctl restart (SA_RESTART) and write the stream again from its start
// into the same pipe; blocked here, signals go to the process's other
// threads. Never retried: a second run would duplicate the stream.
func sendIoctl(fd int, a *sendArgs) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), iocSend, uintptr(unsafe.Pointer(a)))
	if e != 0 {
		return e
	}
	return nil
}
