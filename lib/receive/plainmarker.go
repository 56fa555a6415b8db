package receive

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// A plain-directory mirror (dir://) holds each received snapshot as a
// directory DIR/NAME with a marker DIR/.NAME.bsdir beside it: what makes
// the directory a snapshot. The marker is JSON (buttersink-formats(5))
// and binds itself to the directory by its inode number, so that a
// directory put there by anything else is not taken for the snapshot.
// A receive works in DIR/.NAME.bsrecv-part and renames it to NAME only
// after END, once the marker says complete and is durable.

// MarkerFormat is the marker's format field.
const MarkerFormat = "buttersink-dir-1"

// Marker states.
const (
	StateReceiving = "receiving"
	StateComplete  = "complete"
)

// Marker is the content of DIR/.NAME.bsdir.
type Marker struct {
	Format string `json:"format"`
	// State is StateReceiving until the directory is complete.
	State string `json:"state"`
	// Name is the directory's name (NAME) beside the marker.
	Name string `json:"name"`
	// Ino is the directory's inode number: the temporary directory's
	// while receiving, which keeps it through the rename to NAME.
	Ino uint64 `json:"ino"`
	// Temp is the temporary directory's name while receiving.
	Temp string `json:"temp,omitempty"`
	// UUID is the directory's own identity.
	UUID uuid.UUID `json:"uuid"`
	// ReceivedUUID and STransID are the stream's UUID and CTRANSID: the
	// snapshot the directory holds.
	ReceivedUUID uuid.UUID `json:"received_uuid"`
	STransID     uint64    `json:"stransid"`
	// ParentUUID is the own UUID of the directory it was made from,
	// ParentReceivedUUID and ParentSTransID the stream's CLONE_UUID and
	// CLONE_CTRANSID (zero for a full stream).
	ParentUUID         uuid.UUID `json:"parent_uuid"`
	ParentReceivedUUID uuid.UUID `json:"parent_received_uuid"`
	ParentSTransID     uint64    `json:"parent_stransid"`
	// InPlace: the directory was received into with --in-place, its
	// content replaced by each snapshot of a chain.
	InPlace bool `json:"in_place,omitempty"`
	// PartIno is, beside a complete in-place directory, the inode of the
	// temporary directory the next snapshot is being received into (or
	// the previous content is being deleted from).
	PartIno uint64 `json:"part_ino,omitempty"`
	// Applied are the received UUIDs of the snapshots an in-place
	// directory held before, oldest first (the last maxApplied).
	Applied []uuid.UUID `json:"applied,omitempty"`
	// Filter is, for a selective restore (bsrecv --include/--exclude),
	// its patterns: the directory holds part of the snapshot only, so it
	// is neither a parent nor a clone source for another receive.
	Filter *snapshot.Filter `json:"filter,omitempty"`
	// OTime is when the receive started, CTime when it completed.
	OTime time.Time `json:"otime"`
	CTime time.Time `json:"ctime,omitzero"`
}

// maxMarker bounds what is read of a marker: a real one is far smaller.
const maxMarker = 16 << 10

// ParseMarker reads a marker strictly: a file that is not one of ours is
// an error, never a snapshot.
func ParseMarker(b []byte) (*Marker, error) {
	if len(b) > maxMarker {
		return nil, errors.New("marker too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Marker
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("marker: %w", err)
	}
	if dec.More() {
		return nil, errors.New("marker: data after the object")
	}
	switch {
	case m.Format != MarkerFormat:
		return nil, fmt.Errorf("marker: format %q, want %q", m.Format, MarkerFormat)
	case m.State != StateReceiving && m.State != StateComplete:
		return nil, fmt.Errorf("marker: state %q", m.State)
	case names.Component(m.Name) != nil:
		return nil, fmt.Errorf("marker: name %q is not one path component", m.Name)
	case m.Temp != "" && m.Temp != TempName(m.Name):
		return nil, fmt.Errorf("marker: temporary directory %q is not %q", m.Temp, TempName(m.Name))
	case m.UUID.IsZero() || m.ReceivedUUID.IsZero() || m.Ino == 0:
		return nil, errors.New("marker: no uuid, received uuid or inode")
	}
	return &m, nil
}

// MarkerName is the marker's name for the directory name.
func MarkerName(name string) string { return dotName(name, ".bsdir") }

// TempName is the temporary directory a receive of name works in.
func TempName(name string) string { return dotName(name, ".bsrecv-part") }

// StashName is the directory beside name where a selective restore keeps
// the files an incremental stream removes while it may still clone from
// them.
func StashName(name string) string { return dotName(name, ".bsrecv-stash") }

// dotName is ".NAME" + suffix, or a hash of NAME where that is too long
// for a file name.
func dotName(name, suffix string) string {
	if n := "." + name + suffix; len(n) <= 255 {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	return ".bsdir-" + hex.EncodeToString(sum[:]) + suffix
}

// Reserved reports whether name cannot be a snapshot's directory: it
// would be taken for another one's marker or temporary directory.
func Reserved(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".bsdir") || strings.HasSuffix(name, ".bsrecv-part") || strings.HasSuffix(name, ".bsrecv-stash") ||
		strings.HasSuffix(name, ".bsdir.new") || strings.HasSuffix(name, ".bsrm-part"))
}

func newUUID() (uuid.UUID, error) {
	var u uuid.UUID
	if _, err := rand.Read(u[:]); err != nil {
		return u, err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}

// ReadMarker reads the marker of name in the directory dir; nil, nil
// when there is none. Only a regular file is read, never followed.
func ReadMarker(dir int, name string) (*Marker, error) {
	fd, err := openIn(dir, MarkerName(name), unix.O_RDONLY|unix.O_NONBLOCK, unix.RESOLVE_NO_SYMLINKS)
	if err == unix.ENOENT {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("marker %s: %w", MarkerName(name), err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("marker %s: not a regular file", MarkerName(name))
	}
	b := make([]byte, maxMarker+1)
	n, err := readFull(fd, b)
	if err != nil {
		return nil, fmt.Errorf("marker %s: %w", MarkerName(name), err)
	}
	m, err := ParseMarker(b[:n])
	if err == nil && m.Name != name {
		err = fmt.Errorf("marker: for %q, found beside %q", m.Name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", MarkerName(name), err)
	}
	return m, nil
}

func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if c == 0 {
			break
		}
		n += c
	}
	return n, nil
}

// WriteMarker writes m as the marker of m.Name in dir durably: to a new
// file, synced, then renamed over the marker, and the directory synced.
func WriteMarker(dir int, m *Marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp := MarkerName(m.Name) + ".new"
	if len(tmp) > 255 {
		tmp = dotName(m.Name, ".bsdir.new")
	}
	// A leftover .new of an interrupted write is ours to replace; what
	// is not a regular file is refused by O_NOFOLLOW and the check.
	if err := unix.Unlinkat(dir, tmp, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("marker %s: %w", tmp, err)
	}
	fd, err := openat2(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644, resolve|unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return fmt.Errorf("marker %s: %w", tmp, err)
	}
	_, err = unix.Write(fd, b)
	if err == nil {
		err = unix.Fsync(fd)
	}
	unix.Close(fd)
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, MarkerName(m.Name))
	}
	if err == nil {
		err = unix.Fsync(dir)
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
		return fmt.Errorf("marker %s: %w", MarkerName(m.Name), err)
	}
	return nil
}

// PlainEntry is a snapshot directory (or the trace of a receive) found
// below a mirror's directory.
type PlainEntry struct {
	// Path is the directory's path relative to the mirror's root.
	Path   string
	Marker *Marker
	// Complete: the marker says complete and the directory is there,
	// the one the marker was written for.
	Complete bool
}

// ListPlain lists the snapshot directories below the directory open at
// root, recursively: every name with a valid marker beside it. Snapshot
// directories and temporary ones are never entered (their content is a
// stream's, which could hold anything); other directories are, without
// following a symbolic link. Markers that do not parse are skipped.
func ListPlain(root int) ([]PlainEntry, error) {
	var out []PlainEntry
	err := listPlain(root, "", &out, 0)
	return out, err
}

// maxDepth bounds the directories entered below a mirror's root.
const maxDepth = 64

func listPlain(dir int, rel string, out *[]PlainEntry, depth int) error {
	ents, err := readDirNames(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", showRel(rel), err)
	}
	have := make(map[string]bool, len(ents))
	for _, e := range ents {
		have[e] = true
	}
	snap := map[string]bool{}
	for _, e := range ents {
		if !strings.HasPrefix(e, ".") || !strings.HasSuffix(e, ".bsdir") {
			continue
		}
		m, err := readMarkerFile(dir, e)
		if err != nil || MarkerName(m.Name) != e {
			continue
		}
		snap[m.Name] = true
		if m.Temp != "" {
			snap[m.Temp] = true
		}
		p := m.Name
		if rel != "" {
			p = rel + "/" + m.Name
		}
		pe := PlainEntry{Path: p, Marker: m}
		if m.State == StateComplete && have[m.Name] {
			var st unix.Stat_t
			pe.Complete = fstatat(dir, m.Name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
				st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == m.Ino
		}
		*out = append(*out, pe)
	}
	if depth >= maxDepth {
		return nil
	}
	for _, e := range ents {
		if snap[e] || Reserved(e) {
			continue
		}
		fd, err := openIn(dir, e, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			continue // not a directory, or a symbolic link: not entered
		}
		p := e
		if rel != "" {
			p = rel + "/" + e
		}
		err = listPlain(fd, p, out, depth+1)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

func showRel(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// readMarkerFile reads the marker file named file in dir, whatever name
// it is for.
func readMarkerFile(dir int, file string) (*Marker, error) {
	fd, err := openIn(dir, file, unix.O_RDONLY|unix.O_NONBLOCK, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errNotRegular
	}
	b := make([]byte, maxMarker+1)
	n, err := readFull(fd, b)
	if err != nil {
		return nil, err
	}
	return ParseMarker(b[:n])
}

// readDirNames lists the names in the directory open at dir (through a
// descriptor of its own, so that dir's offset is untouched).
func readDirNames(dir int) ([]string, error) {
	fd, err := openIn(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		_, _, out = unix.ParseDirent(buf[:n], -1, out)
	}
}
