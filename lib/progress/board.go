package progress

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A board is the shared file through which the stages of one pipeline on
// one terminal agree on a single progress line. The stages of a pipeline
// share a process group and a terminal, so the file is named by both
// (and the user): each stage writes its State into a slot of its own, and
// the one stage holding the draw lock merges every slot into the line.
//
// Locks are open-file-description locks on byte ranges, so they belong to
// the stage that took them and vanish when it exits, however it exits: a
// slot whose lock is free is a stage gone, and the draw lock passes to
// another stage within a tick when the drawer ends.
//
// The file lives where only the user can write (the runtime directory)
// or in /dev/shm, where another user may have made it first: it is opened
// without following a link and used only if it is a regular file of the
// user's, private, with one link. Anything else, and any error, leaves
// the stage without a board, drawing nothing.
type board struct {
	f    *os.File
	path string
	slot int
	buf  []byte
}

const (
	headerSize = 64
	slots      = 16
	boardSize  = headerSize + slots*slotSize
	drawByte   = 0 // held by the stage that draws
	joinByte   = 1 // held while a stage takes a slot
)

// boardDir is where boards live: the user's runtime directory, else
// /dev/shm; "" when neither is fit.
func boardDir() string {
	uid := os.Geteuid()
	for _, d := range []string{os.Getenv("XDG_RUNTIME_DIR"), "/run/user/" + strconv.Itoa(uid)} {
		var st unix.Stat_t
		if filepath.IsAbs(d) && unix.Lstat(d, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR &&
			int(st.Uid) == uid && st.Mode&0o022 == 0 {
			return d
		}
	}
	var st unix.Stat_t
	// World-writable, then only with the sticky bit: nobody else can
	// replace a file of ours there.
	if unix.Lstat("/dev/shm", &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Uid == 0 &&
		(st.Mode&0o002 == 0 || st.Mode&unix.S_ISVTX != 0) {
		return "/dev/shm"
	}
	return ""
}

// boardName names the board of the pipeline pgid on the terminal tty.
func boardName(uid int, tty uint64, pgid int) string {
	return fmt.Sprintf("buttersink-progress-%d-%x-%d", uid, tty, pgid)
}

// joinBoard opens (or makes) the board at path and takes a slot.
func joinBoard(path string) (b *board, err error) {
	for range 3 {
		if b, err = joinOnce(path); err != errGone {
			break
		}
	}
	return b, err
}

func joinOnce(path string) (*board, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	b := &board{f: f, path: path, slot: -1, buf: make([]byte, boardSize)}
	if err := b.join(); err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

// errGone: the last stage of another run removed the board meanwhile.
var errGone = errors.New("progress board: removed")

func (b *board) fd() int { return int(b.f.Fd()) }

func (b *board) join() error {
	var st unix.Stat_t
	if err := unix.Fstat(b.fd(), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 || st.Nlink != 1 {
		return errors.New("progress board: not a private file of ours")
	}
	// Two stages starting together: one joins at a time.
	deadline := time.Now().Add(200 * time.Millisecond)
	for !b.try(joinByte, 1) {
		if time.Now().After(deadline) {
			return errors.New("progress board: busy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer b.unlock(joinByte, 1)
	if err := unix.Fstat(b.fd(), &st); err != nil {
		return err
	}
	if st.Nlink == 0 {
		return errGone
	}
	if st.Size != boardSize {
		if err := b.f.Truncate(boardSize); err != nil {
			return err
		}
	}
	if _, err := b.f.ReadAt(b.buf, 0); err != nil {
		return err
	}
	live, free, empty := false, -1, -1
	for i := range slots {
		if b.held(slotStart(i), slotSize) {
			live = true
			continue
		}
		if free < 0 {
			free = i
		}
		if _, ok := decodeState(b.buf[slotStart(i):]); !ok && empty < 0 {
			empty = i
		}
	}
	if !live {
		// Every stage of an earlier pipeline of this group has ended:
		// what they left is not this run's.
		clear(b.buf)
		if _, err := b.f.WriteAt(b.buf, 0); err != nil {
			return err
		}
		empty = 0
	}
	for _, i := range []int{empty, free} {
		if i >= 0 && b.try(slotStart(i), slotSize) {
			b.slot = i
			return nil
		}
	}
	return errors.New("progress board: full")
}

func slotStart(i int) int64 { return headerSize + int64(i)*slotSize }

// try takes a write lock on a range without waiting.
func (b *board) try(start, n int64) bool {
	fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: start, Len: n}
	return unix.FcntlFlock(uintptr(b.fd()), unix.F_OFD_SETLK, &fl) == nil
}

func (b *board) unlock(start, n int64) {
	fl := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: start, Len: n}
	unix.FcntlFlock(uintptr(b.fd()), unix.F_OFD_SETLK, &fl)
}

// held reports whether another stage holds a lock on the range.
func (b *board) held(start, n int64) bool {
	fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: start, Len: n}
	if unix.FcntlFlock(uintptr(b.fd()), unix.F_OFD_GETLK, &fl) != nil {
		return true
	}
	return fl.Type != unix.F_UNLCK
}

// publish writes s into the stage's slot.
func (b *board) publish(s *State) error {
	var slot [slotSize]byte
	s.encode(slot[:])
	_, err := b.f.WriteAt(slot[:], slotStart(b.slot))
	return err
}

// states reads every stage's state: the live ones, and the ended ones
// of this run (a source that ended still knows the plan's sizes).
func (b *board) states() ([]State, error) {
	if _, err := b.f.ReadAt(b.buf, 0); err != nil {
		return nil, err
	}
	var out []State
	for i := range slots {
		s, ok := decodeState(b.buf[slotStart(i):])
		if !ok {
			continue
		}
		if i != b.slot && !b.held(slotStart(i), slotSize) {
			// Gone without saying so (killed): it ended all the same.
			s.Ended = true
		}
		out = append(out, s)
	}
	return out, nil
}

// close leaves the board, and removes it when no stage is left: under
// the join lock, so that a stage joining meanwhile finds it removed
// (errGone) and makes a new one instead of drawing on a file nobody
// else sees.
func (b *board) close() {
	if b.try(joinByte, 1) {
		live := false
		for i := range slots {
			if i != b.slot && b.held(slotStart(i), slotSize) {
				live = true
				break
			}
		}
		if !live {
			os.Remove(b.path)
		}
	}
	b.f.Close()
}
