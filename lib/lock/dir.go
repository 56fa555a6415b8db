package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Dir takes the lock of directory dir (flock on dir/Name), which must
// exist. dest names the destination in messages.
//
// The lock file exists only while a run holds it: the holder removes it
// before it lets go. A waiter that then gets the flock of the removed file
// finds the name gone or another file's, and opens it again.
func Dir(ctx context.Context, dir, dest string, opts Options) (*Lock, error) {
	p := filepath.Join(dir, Name)
	w := newWaiter(opts, 200*time.Millisecond)
	announced := false
	for {
		f, err := openLockFile(p, dest)
		if err != nil {
			return nil, err
		}
		fd := int(f.Fd())
		for {
			err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err == nil || !errors.Is(err, unix.EWOULDBLOCK) {
				break
			}
			if !announced && opts.Wait {
				announced = true
				h, known := readHolder(f)
				opts.log().Info((&LockedError{Dest: dest, Holder: h, Known: known}).Error() + "; waiting")
			}
			ok, werr := w.next(ctx)
			if werr != nil {
				f.Close()
				return nil, werr
			}
			if !ok {
				h, known := readHolder(f)
				f.Close()
				return nil, locked(dest, h, known, opts.Wait)
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: lock file %s: %v", dest, p, err)
		}
		var mine, named unix.Stat_t
		if unix.Fstat(fd, &mine) != nil || unix.Lstat(p, &named) != nil || mine.Dev != named.Dev || mine.Ino != named.Ino {
			// Removed by the holder we waited for: try the new one.
			f.Close()
			continue
		}
		// Ours: say who holds it, for the runs that find it locked.
		h := newHolder(opts.Owner, 0)
		if err := f.Truncate(0); err == nil {
			f.WriteAt(h.body(), 0)
		}
		opts.log().Debug("locked", "dest", dest, "file", p)
		l := newLock(ctx)
		l.release = func() error {
			// Removed while still held, so that no waiter keeps a lock
			// on a file no longer named; closing drops the flock. Only
			// if the name is still this file: one removed under us (by
			// hand, say) may have been replaced by another run's, held.
			var named unix.Stat_t
			if unix.Lstat(p, &named) == nil && named.Dev == mine.Dev && named.Ino == mine.Ino {
				os.Remove(p)
			}
			return f.Close()
		}
		return l, nil
	}
}

// openLockFile opens (creating) the lock file p. No symbolic link is
// followed and nothing but a regular file is opened: an existing name is
// first opened with O_PATH, which runs no driver's open (a device or a
// FIFO planted there is looked at, never opened), and reopened through
// /proc/self/fd only once it is known to be a regular file.
func openLockFile(p, dest string) (*os.File, error) {
	for try := 0; ; try++ {
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil {
			return os.NewFile(uintptr(fd), p), nil
		}
		if errors.Is(err, unix.EEXIST) {
			var f *os.File
			f, err = OpenRegular(p)
			if err == nil {
				return f, nil
			}
			if errors.Is(err, unix.ENOENT) && try < 10 {
				continue // removed meanwhile by its holder
			}
		}
		switch {
		case errors.Is(err, errSymlink):
			return nil, fmt.Errorf("%s: lock file %s is a symbolic link", dest, p)
		case errors.Is(err, errNotRegular):
			return nil, fmt.Errorf("%s: lock file %s is not a regular file", dest, p)
		}
		return nil, fmt.Errorf("%s: lock file %s: %v", dest, p, err)
	}
}

var (
	errSymlink    = errors.New("is a symbolic link")
	errNotRegular = errors.New("is not a regular file")
)

// OpenRegular opens the existing regular file p for reading and writing
// without following a symbolic link at p and without opening anything
// else there: p is opened with O_PATH (no driver's open runs: a device
// or FIFO planted at p is looked at, not opened), checked, and reopened
// through /proc/self/fd. Errors for a link or another kind of file say
// so.
func OpenRegular(p string) (*os.File, error) {
	pfd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return nil, errSymlink
	default:
		return nil, errNotRegular
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

func readHolder(f *os.File) (Holder, bool) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil {
		return Holder{}, false
	}
	return parseHolder(b)
}
