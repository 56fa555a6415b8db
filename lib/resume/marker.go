package resume

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MarkerName is the receive marker's file name for subvolume name base:
// .BASE.bsrecv, or a digest of base when that is too long for a name.
func MarkerName(base string) string {
	if n := "." + base + ".bsrecv"; len(n) <= 255 {
		return n
	}
	sum := sha256.Sum256([]byte(base))
	return ".bsrecv-" + hex.EncodeToString(sum[:])
}

// Load reads the record of the receive of subvolume base in dir, ok
// false when there is no marker or no valid record. exact reports whether
// rec's point was moved to the progress page's (Exact): the point a
// resumed stream can start from; without it none is known. Nothing is
// locked: a receive writing a slot meanwhile leaves it invalid for this
// read, and the other slot is taken. The marker is opened without
// following a symbolic link and read only when it is a regular file
// (never a FIFO or a device someone made there).
func Load(dir, base string) (rec Record, exact, ok bool, err error) {
	p := filepath.Join(dir, MarkerName(base))
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return Record{}, false, false, nil
	}
	if err != nil {
		return Record{}, false, false, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Record{}, false, false, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Record{}, false, false, nil
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, Size))
	if err != nil {
		return Record{}, false, false, err
	}
	if rec, _, ok = Decode(b); !ok {
		return Record{}, false, false, nil
	}
	prog, found := ReadProgress(f)
	if !found {
		return rec, false, true, nil
	}
	boot, err := BootID()
	if err != nil {
		return Record{}, false, false, err
	}
	if at, exact := Exact(rec, prog, boot); exact {
		return at, true, true, nil
	}
	return rec, false, true, nil
}

// Stamp writes the owner line for pid into the marker f, in place: the
// record slots stay as they are.
func Stamp(f *os.File, pid int) error {
	_, err := f.WriteAt(OwnerLine(pid), 0)
	return err
}

// Writer writes records into a marker in turns, the caller holding the
// marker's flock.
type Writer struct {
	f   *os.File
	seq uint64
}

// NewWriter writes records into the marker f, going on from the
// sequence number of the record f holds.
func NewWriter(f *os.File) (*Writer, error) {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, Size))
	if err != nil {
		return nil, err
	}
	_, seq, _ := Decode(b)
	return &Writer{f: f, seq: seq}, nil
}

// Write makes rec the marker's record, durably (pwrite, then fdatasync),
// into the slot not holding the current record. The caller has made
// everything up to rec.Point durable first.
func (w *Writer) Write(rec Record) error {
	if err := w.Put(rec); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: w.f.Name(), Err: err}
	}
	return nil
}

// Put is Write without waiting for the record to reach the disk: for a
// record whose loss in a crash costs nothing, such as the first one, at
// offset 0 (an fdatasync right after a subvolume is made commits the
// whole filesystem).
func (w *Writer) Put(rec Record) error {
	seq := w.seq + 1
	b, err := EncodeSlot(rec, seq)
	if err != nil {
		return err
	}
	if _, err := w.f.WriteAt(b, int64(OwnerLen+int(seq%2)*SlotLen)); err != nil {
		return err
	}
	w.seq = seq
	return nil
}

// Clear removes any record from the marker (the receive starts over), by
// truncating it to its owner line, durably.
func (w *Writer) Clear() error {
	if err := w.f.Truncate(OwnerLen); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: w.f.Name(), Err: err}
	}
	return nil
}
