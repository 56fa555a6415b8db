package receive

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// An in-place directory (bsrecv --in-place) holds only the newest
// snapshot of a chain. Each incremental is received as any other, into
// the temporary directory from a copy of the directory (hard links or
// reflinks: the space of the changed data), then exchanged with it
// (renameat2 RENAME_EXCHANGE) and the previous content deleted. While
// the exchange is under way the marker says receiving, and names the
// new content by inode: an interrupted exchange is finished by the next
// run; an interrupted receive leaves the directory as it was, complete.

// maxApplied bounds the snapshots an in-place marker remembers.
const maxApplied = 1000

// ExamineInPlace says what holds name, for a stream of id (from parent,
// nil for a full stream) to be applied in place: PlainComplete when the
// directory holds id or held it before (skip the stream), PlainNone when
// the stream may be applied (Begin for a full stream into nothing,
// BeginInPlace for a child of what it holds), PlainLeftover for what an
// interrupted receive left. An exchange an earlier run left half done is
// finished first.
func (d *PlainDest) ExamineInPlace(name string, id ID, parent *ID) (PlainState, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	m, err := ReadMarker(d.dir, name)
	if err != nil {
		return 0, err
	}
	if m != nil && m.InPlace && m.State == StateReceiving && m.Temp != "" {
		if err := d.finishSwap(m); err != nil {
			return 0, err
		}
	}
	if m == nil || m.State != StateComplete {
		return d.Examine(name, id)
	}
	if m.Filter != nil {
		return 0, fmt.Errorf("%q holds part of a snapshot (a restore with --include/--exclude): not a base for another receive", name)
	}
	var st, tst unix.Stat_t
	if err := fstatat(d.dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Ino != m.Ino {
		// Complete but not renamed: the leftover of a full receive.
		return d.Examine(name, id)
	}
	held := ID{m.ReceivedUUID, m.STransID}
	switch {
	case held == id || slices.Contains(m.Applied, id.UUID):
		return PlainComplete, nil
	case fstatat(d.dir, TempName(name), &tst, unix.AT_SYMLINK_NOFOLLOW) == nil:
		if m.PartIno != 0 && tst.Ino == m.PartIno {
			return PlainLeftover, nil
		}
		return 0, fmt.Errorf("%s exists and is not the one its marker names: not left by bsrecv, delete it by hand", TempName(name))
	case parent != nil && *parent == held:
		return PlainNone, nil
	}
	return 0, fmt.Errorf("%q holds snapshot %s (stransid %d); the stream of %s is not its child", name, held.UUID.Canonical(), held.CTransID, id.UUID.Canonical())
}

// BeginInPlace starts receiving id, a child of parent, which the
// directory name holds, to replace it at End.
func (d *PlainDest) BeginInPlace(name string, id ID, parent ID) (Tree, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	m, err := ReadMarker(d.dir, name)
	if err != nil {
		return nil, err
	}
	if m == nil || m.State != StateComplete || m.Filter != nil || m.ReceivedUUID != parent.UUID || m.STransID != parent.CTransID {
		return nil, fmt.Errorf("%q does not hold the parent %s", name, parent.UUID.Canonical())
	}
	pfd, err := openIn(d.dir, name, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil || st.Ino != m.Ino {
		return nil, fmt.Errorf("%q is not the directory its marker names", name)
	}
	temp := TempName(name)
	tfd, tst, err := d.makeTemp(temp)
	if err != nil {
		return nil, err
	}
	defer unix.Close(tfd)
	m.PartIno = tst.Ino
	if err := WriteMarker(d.dir, m); err != nil {
		unix.Unlinkat(d.dir, temp, unix.AT_REMOVEDIR)
		return nil, err
	}
	own, err := newUUID()
	if err != nil {
		return nil, err
	}
	applied := append(slices.Clone(m.Applied), m.ReceivedUUID)
	if len(applied) > maxApplied {
		applied = applied[len(applied)-maxApplied:]
	}
	nm := &Marker{Format: MarkerFormat, State: StateReceiving, Name: name, Ino: tst.Ino, Temp: temp, UUID: own,
		ReceivedUUID: id.UUID, STransID: id.CTransID, ParentUUID: m.UUID, ParentReceivedUUID: parent.UUID,
		ParentSTransID: parent.CTransID, InPlace: true, Applied: applied, OTime: d.now().UTC()}
	dt, err := NewDirTree(tfd)
	if err != nil {
		return nil, err
	}
	dt.Self = id
	t := &PlainTree{DirTree: dt, dest: d, marker: nm, shared: map[devIno]struct{}{}, inPlace: true}
	if err := t.copyParent(pfd); err != nil {
		dt.Close()
		return nil, fmt.Errorf("copying %q: %w", name, err)
	}
	return t, nil
}

// endInPlace exchanges the received directory with the one it replaces.
func (t *PlainTree) endInPlace() error {
	m := *t.marker
	if err := WriteMarker(t.dest.dir, &m); err != nil {
		return err
	}
	if err := t.dest.finishSwap(&m); err != nil {
		return err
	}
	*t.marker = m
	return nil
}

// finishSwap completes an exchange the marker m (receiving, in place)
// announced: exchanges the directories unless that was done, marks the
// new content complete and deletes the old.
func (d *PlainDest) finishSwap(m *Marker) error {
	var st, tst unix.Stat_t
	nameErr := fstatat(d.dir, m.Name, &st, unix.AT_SYMLINK_NOFOLLOW)
	tempErr := fstatat(d.dir, m.Temp, &tst, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case nameErr == nil && st.Ino == m.Ino:
		// Exchanged already.
	case nameErr == nil && tempErr == nil && tst.Ino == m.Ino:
		if err := unix.Renameat2(d.dir, m.Temp, d.dir, m.Name, unix.RENAME_EXCHANGE); err != nil {
			return fmt.Errorf("exchange %s and %q: %w", m.Temp, m.Name, err)
		}
		if err := unix.Fsync(d.dir); err != nil {
			return err
		}
		tst = st
	default:
		return fmt.Errorf("%q: an in-place receive was cut and neither %q nor %s is its result: delete both and the marker %s, and receive from a full stream",
			m.Name, m.Name, m.Temp, MarkerName(m.Name))
	}
	m.State, m.CTime = StateComplete, d.now().UTC()
	old := m.Temp
	m.Temp = ""
	if tempErr == nil || tst.Ino != 0 {
		m.PartIno = tst.Ino
	}
	if err := WriteMarker(d.dir, m); err != nil {
		return err
	}
	if m.PartIno == 0 {
		return nil
	}
	if err := RemoveTree(d.dir, old); err != nil {
		return err
	}
	m.PartIno = 0
	return WriteMarker(d.dir, m)
}
