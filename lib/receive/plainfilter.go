package receive

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// A selective restore (bsrecv --include/--exclude into dir://, in place)
// applies a whole chain into one temporary directory, drops what was not
// selected and only then gives the directory its name: no state of it
// with more (or other) than the selection is ever complete. Its marker
// records the patterns; such a directory holds part of a snapshot, so it
// is never a parent, a clone source or a base for another receive.

// BeginFiltered makes the temporary directory of name for a selective
// restore of a chain starting with the full stream of id, and writes its
// marker (receiving). It returns the directory, open; the caller closes
// it. On an error after the marker is written, the leftover is for
// RemoveLeftover.
func (d *PlainDest) BeginFiltered(name string, id ID, f snapshot.Filter) (int, error) {
	if err := checkName(name); err != nil {
		return -1, err
	}
	temp := TempName(name)
	if err := unix.Mkdirat(d.dir, temp, 0o700); err != nil {
		return -1, fmt.Errorf("%s: %w", temp, err)
	}
	tfd, err := openIn(d.dir, temp, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", temp, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(tfd, &st); err != nil {
		unix.Close(tfd)
		return -1, err
	}
	own, err := newUUID()
	if err != nil {
		unix.Close(tfd)
		return -1, err
	}
	m := &Marker{Format: MarkerFormat, State: StateReceiving, Name: name, Ino: st.Ino, Temp: temp,
		UUID: own, ReceivedUUID: id.UUID, STransID: id.CTransID, InPlace: true, Filter: &f, OTime: d.now().UTC()}
	if err := WriteMarker(d.dir, m); err != nil {
		unix.Close(tfd)
		unix.Unlinkat(d.dir, temp, unix.AT_REMOVEDIR)
		return -1, err
	}
	return tfd, nil
}

// EndFiltered makes the selective restore of name complete, holding the
// snapshot id (the chain's last; applied are the ones before it, oldest
// first): its data durable, the marker complete and durable, then the
// directory renamed to its name.
func (d *PlainDest) EndFiltered(name string, id ID, applied []uuid.UUID) error {
	m, err := ReadMarker(d.dir, name)
	if err != nil {
		return err
	}
	if m == nil || m.State != StateReceiving || m.Filter == nil {
		return fmt.Errorf("%q: no selective restore under way", name)
	}
	tfd, err := openIn(d.dir, TempName(name), unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return fmt.Errorf("%s: %w", TempName(name), err)
	}
	var st unix.Stat_t
	err = unix.Fstat(tfd, &st)
	if err == nil && st.Ino != m.Ino {
		err = fmt.Errorf("%s is not the directory its marker names", TempName(name))
	}
	if err == nil {
		err = unix.Syncfs(tfd)
	}
	unix.Close(tfd)
	if err != nil {
		return err
	}
	if len(applied) > maxApplied {
		applied = applied[len(applied)-maxApplied:]
	}
	m.State, m.Temp, m.CTime = StateComplete, "", d.now().UTC()
	m.ReceivedUUID, m.STransID, m.Applied = id.UUID, id.CTransID, applied
	if err := WriteMarker(d.dir, m); err != nil {
		return err
	}
	if err := unix.Renameat2(d.dir, TempName(name), d.dir, name, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rename %s to %q: %w", TempName(name), name, err)
	}
	return unix.Fsync(d.dir)
}
