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
func Dir(ctx context.Context, dir, dest string, opts Options) (*Lock, error) {
	p := filepath.Join(dir, Name)
	// No symbolic link is followed and nothing but a regular file is
	// opened (O_NONBLOCK: a FIFO planted there must not block the open).
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
	w := newWaiter(opts, 200*time.Millisecond)
	waited := false
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("%s: lock file %s: %v", dest, p, err)
		}
		if !waited && opts.Wait {
			h, known := readHolder(f)
			opts.log().Info((&LockedError{Dest: dest, Holder: h, Known: known}).Error() + "; waiting")
		}
		ok, err := w.next(ctx)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !ok {
			h, known := readHolder(f)
			f.Close()
			return nil, locked(dest, h, known, opts.Wait)
		}
		waited = true
	}
	// Ours: say who holds it, for the runs that find it locked.
	h := newHolder(opts.Owner, 0)
	if err := f.Truncate(0); err == nil {
		f.WriteAt(h.body(), 0)
	}
	opts.log().Debug("locked", "dest", dest, "file", p)
	l := newLock(ctx)
	l.release = func() error {
		// Emptied first, so that no reader sees a stale holder; closing
		// the descriptor drops the flock.
		f.Truncate(0)
		return f.Close()
	}
	return l, nil
}

func readHolder(f *os.File) (Holder, bool) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil {
		return Holder{}, false
	}
	return parseHolder(b)
}
