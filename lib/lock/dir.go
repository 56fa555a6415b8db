package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// followed and nothing but a regular file is opened (O_NONBLOCK: a FIFO
// planted there must not block the open).
func openLockFile(p, dest string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: lock file %s is a symbolic link", dest, p)
		}
		return nil, fmt.Errorf("%s: lock file %s: %v", dest, p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: lock file %s is not a regular file", dest, p)
	}
	return f, nil
}

func readHolder(f *os.File) (Holder, bool) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil {
		return Holder{}, false
	}
	return parseHolder(b)
}
