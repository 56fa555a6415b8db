package bsrecv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/resume"
)

// A receive marker proves that a subvolume is a receive by bsrecv: before
// it creates the subvolume NAME, bsrecv creates the regular file
// .NAME.bsrecv beside it (O_EXCL, no symbolic link followed) and holds an
// exclusive flock on it until the subvolume is complete or deleted, then
// removes it. A marker left behind unlocked is the trace of a receive cut
// short (it also holds its resume points); a locked one belongs to a
// receive still running. So a writable
// subvolume at NAME is deleted as a leftover only when its marker exists
// and can be locked, never because of its name alone.
//
// The marker's name and content prove nothing by themselves: whoever
// can write to the destination directory can make one (.home.bsrecv
// beside a live writable subvolume home; a stream cannot, confined to its
// own subvolume). What no one can do is set a file's ctime back: the kernel sets it to the current time on every change. A
// leftover of bsrecv was created after its marker was last written, so a
// subvolume whose otime is older than its marker's ctime is not one,
// unless the marker, made before it (birth time), holds a resume record
// naming its own UUID (record): writing records changes the ctime.
type marker struct {
	path    string
	f       *os.File
	created bool // made by this run, not left by an earlier one
	// changed is the marker's ctime when this run found it (before
	// writing to it); zero when created.
	changed time.Time
	// born is its birth time, which writing does not change; zero when
	// created or unknown.
	born time.Time
}

// record is the marker's resume record when it is the one of the
// writable subvolume info: own reports a valid record naming info's own
// UUID in a marker made before info. Such a subvolume is a partial
// receive of bsrecv (to resume, or to delete as a leftover), even though
// writing the records changed the marker since the subvolume was made.
// The birth time keeps a marker written anew (after the subvolume) from
// claiming a subvolume by naming its UUID.
func (m *marker) record(info btrfs.Subvol) (rec resume.Record, own bool) {
	if m.created || m.born.IsZero() || info.OTime.Before(m.born.Add(-clockSlack)) {
		return resume.Record{}, false
	}
	b, err := io.ReadAll(io.NewSectionReader(m.f, 0, resume.Size))
	if err != nil {
		return resume.Record{}, false
	}
	rec, _, ok := resume.Decode(b)
	return rec, ok && rec.Subvol == info.UUID
}

// madeAfter reports whether the subvolume info may be the receive the
// marker was left by: created after the marker was last changed. The two
// times come from different kernel clocks (a subvolume's otime from the
// coarse one, a file's ctime maybe from the fine one), so otime may read
// up to a clock tick (1 to 10 ms) earlier: clockSlack allows for that; a
// forger would have to write its marker within that much of the
// subvolume's creation.
func (m *marker) madeAfter(info btrfs.Subvol) bool {
	return !m.created && !info.OTime.Before(m.changed.Add(-clockSlack))
}

const clockSlack = 20 * time.Millisecond

// markerName is the marker's file name for subvolume name base.
func markerName(base string) string { return resume.MarkerName(base) }

// errMarkerBusy is a marker locked by a live receive.
var errMarkerBusy = errors.New("busy")

// takeMarker creates or takes over the marker for base in dir and locks
// it. A marker another process holds is an error naming it.
func takeMarker(dir, base, target string) (*marker, error) {
	p := filepath.Join(dir, markerName(base))
	for try := 0; try < 10; try++ {
		created := true
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, os.ErrExist) {
			// Whatever is there is looked at before it is opened: a
			// device a stream made there must not be opened.
			created = false
			f, err = lock.OpenRegular(p)
		}
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile by the receive that held it
		}
		if err != nil {
			if u := errors.Unwrap(err); u != nil {
				err = u
			}
			return nil, fmt.Errorf("receive marker %s: %w", p, err)
		}
		m := &marker{path: p, f: f, created: created}
		err = m.lock()
		if errors.Is(err, errMarkerBusy) {
			owner := ""
			if b, _ := io.ReadAll(io.LimitReader(f, resume.OwnerLen)); resume.Owner(b) != "" {
				owner = " (" + resume.Owner(b) + ")"
			}
			f.Close()
			return nil, hint.Wrap(fmt.Errorf("%s: being received by another bsrecv%s: %s is locked", target, owner, p),
				"wait for it to finish, or receive into another directory")
		}
		if err == errMarkerGone {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("receive marker %s: %v", p, err)
		}
		if !created {
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				f.Close()
				return nil, fmt.Errorf("receive marker %s: %v", p, err)
			}
			m.changed = time.Unix(st.Ctim.Unix())
			var stx unix.Statx_t
			if unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &stx) == nil && stx.Mask&unix.STATX_BTIME != 0 {
				m.born = time.Unix(stx.Btime.Sec, int64(stx.Btime.Nsec))
			}
		} else {
			m.stamp()
		}
		return m, nil
	}
	return nil, fmt.Errorf("receive marker %s: keeps changing under this process", p)
}

// stamp writes this process into the marker, for the message of a run
// that finds it busy. A marker found left behind is stamped only once its
// leftover is gone (just before the receive starts): written, its ctime
// would no longer prove the leftover younger than the marker if this run
// failed before deleting it. The receive starts from zero: any resume
// record goes.
func (m *marker) stamp() {
	m.f.Truncate(0)
	resume.Stamp(m.f, os.Getpid())
}

var errMarkerGone = errors.New("marker replaced")

// lock locks the marker's file and makes sure it still is the file at the
// marker's path (the receive that held it may have removed it meanwhile).
func (m *marker) lock() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(m.f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("not a regular file")
	}
	err := unix.Flock(int(m.f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errMarkerBusy
	}
	if err != nil {
		return err
	}
	var now unix.Stat_t
	if err := unix.Lstat(m.path, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return errMarkerGone
	}
	return nil
}

// release removes the marker, if it still is ours, and unlocks it.
func (m *marker) release() {
	var st, now unix.Stat_t
	if unix.Fstat(int(m.f.Fd()), &st) == nil && unix.Lstat(m.path, &now) == nil && now.Ino == st.Ino && now.Dev == st.Dev {
		os.Remove(m.path)
	}
	m.f.Close()
}

// keep unlocks the marker and leaves it in place: the subvolume beside it
// is a leftover that a later run may delete.
func (m *marker) keep() { m.f.Close() }
