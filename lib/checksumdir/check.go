package checksumdir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSumFile bounds NAME.sha256sum, which holds two or three lines.
const maxSumFile = 64 << 10

// SumEntry is one line of a sha256sum file.
type SumEntry struct {
	Sum  string // lowercase hex
	Name string // unescaped
}

// ParseSumLine reads one line (without newline) as sha256sum prints it,
// in text ("  ") or binary (" *") mode, escaped or not.
func ParseSumLine(line string) (SumEntry, error) {
	esc := strings.HasPrefix(line, `\`)
	if esc {
		line = line[1:]
	}
	if len(line) < 66 || (line[64:66] != "  " && line[64:66] != " *") {
		return SumEntry{}, fmt.Errorf("not a sha256sum line")
	}
	sum := line[:64]
	if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
		return SumEntry{}, fmt.Errorf("bad sha256 %q", sum)
	}
	name := line[66:]
	if esc {
		var ok bool
		if name, ok = unescapeSumName(name); !ok {
			return SumEntry{}, fmt.Errorf("bad escape in name")
		}
	}
	if name == "" {
		return SumEntry{}, fmt.Errorf("empty name")
	}
	return SumEntry{Sum: sum, Name: name}, nil
}

// LsRecord is one parsed line of NAME.ls.
type LsRecord struct {
	Mode, Links, UID, GID, Mtime string
	Path                         string
}

// ParseLsLine reads one line of NAME.ls (without newline).
func ParseLsLine(line string) (LsRecord, error) {
	var f [6]string
	i := 0
	for n := 0; n < 6; n++ {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isBlank(line[i]) {
			i++
		}
		if start == i {
			return LsRecord{}, fmt.Errorf("%d fields, want at least 7", n)
		}
		f[n] = line[start:i]
	}
	if i >= len(line) || line[i] != ' ' || i+1 == len(line) {
		return LsRecord{}, fmt.Errorf("no path")
	}
	return LsRecord{Mode: f[0], Links: f[1], UID: f[2], GID: f[3], Mtime: f[4] + " " + f[5], Path: line[i+1:]}, nil
}

// ParseFullLine reads one line of NAME.full into its path and fields.
func ParseFullLine(line string) (path string, fields map[string]string, err error) {
	parts := strings.Split(line, " ")
	path, ok := unescapeFull(parts[0])
	if !ok || path == "" {
		return "", nil, fmt.Errorf("bad path %q", parts[0])
	}
	fields = make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return "", nil, fmt.Errorf("bad field %q", p)
		}
		if strings.HasPrefix(k, "xattr.") {
			name, ok := unescapeFull(k[len("xattr."):])
			if !ok {
				return "", nil, fmt.Errorf("bad xattr name %q", k)
			}
			k = "xattr." + name
		}
		if v, ok = unescapeFull(v); !ok {
			return "", nil, fmt.Errorf("bad value in %q", p)
		}
		if _, dup := fields[k]; dup {
			return "", nil, fmt.Errorf("field %q twice", k)
		}
		fields[k] = v
	}
	return path, fields, nil
}

// record is what a set says about one path.
type record struct {
	ls     *LsRecord
	sum    string
	full   map[string]string
	inFull bool
}

// parsedSet is a set read back, by path.
type parsedSet struct {
	full    bool
	records map[string]*record
}

func (p *parsedSet) get(path string) *record {
	r := p.records[path]
	if r == nil {
		r = &record{}
		p.records[path] = r
	}
	return r
}

// lines splits content into lines; the last must end with a newline.
func lines(name string, b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%s: last line not ended by a newline", name)
	}
	return strings.Split(string(b[:len(b)-1]), "\n"), nil
}

// parseSet reads a set's contents.
func parseSet(s *Set) (*parsedSet, error) {
	p := &parsedSet{full: s.Full != nil, records: map[string]*record{}}
	ls, err := lines(s.Name+".ls", s.Ls)
	if err != nil {
		return nil, err
	}
	// find prints a newline in a name as it is, so a line that is not an
	// entry continues the path of the one before.
	var entries []LsRecord
	var lineNo []int
	for i, l := range ls {
		r, err := ParseLsLine(l)
		if err != nil {
			if len(entries) == 0 {
				return nil, fmt.Errorf("%s.ls line %d: %w", s.Name, i+1, err)
			}
			entries[len(entries)-1].Path += "\n" + l
			continue
		}
		entries = append(entries, r)
		lineNo = append(lineNo, i+1)
	}
	for i := range entries {
		rec := p.get(entries[i].Path)
		if rec.ls != nil {
			return nil, fmt.Errorf("%s.ls line %d: %q listed twice", s.Name, lineNo[i], entries[i].Path)
		}
		rec.ls = &entries[i]
	}
	files, err := lines(s.Name+".files", s.Files)
	if err != nil {
		return nil, err
	}
	for i, l := range files {
		e, err := ParseSumLine(l)
		if err == nil && !strings.HasPrefix(e.Name, "./") {
			err = fmt.Errorf("name %q does not start with ./", e.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s.files line %d: %w", s.Name, i+1, err)
		}
		rec := p.get(e.Name[2:])
		if rec.sum != "" {
			return nil, fmt.Errorf("%s.files line %d: %q listed twice", s.Name, i+1, e.Name)
		}
		rec.sum = e.Sum
	}
	full, err := lines(s.Name+".full", s.Full)
	if err != nil {
		return nil, err
	}
	for i, l := range full {
		path, fields, err := ParseFullLine(l)
		if err != nil {
			return nil, fmt.Errorf("%s.full line %d: %w", s.Name, i+1, err)
		}
		rec := p.get(path)
		if rec.inFull {
			return nil, fmt.Errorf("%s.full line %d: %q listed twice", s.Name, i+1, path)
		}
		rec.full, rec.inFull = fields, true
	}
	return p, nil
}

// LoadSet reads a saved set through its NAME.sha256sum, checking that
// the files it lists are intact. They are found next to it.
func LoadSet(sumPath string) (*Set, error) {
	b, err := readSetFile(sumPath, maxSumFile+1)
	if err != nil {
		return nil, err
	}
	if len(b) > maxSumFile {
		return nil, fmt.Errorf("%s: too large for a checksumdir sum file", sumPath)
	}
	ls, err := lines(sumPath, b)
	if err != nil {
		return nil, err
	}
	set := &Set{}
	dir := filepath.Dir(sumPath)
	for i, l := range ls {
		e, err := ParseSumLine(l)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", sumPath, i+1, err)
		}
		var slot *[]byte
		var name string
		switch {
		case strings.HasSuffix(e.Name, ".ls"):
			slot, name = &set.Ls, strings.TrimSuffix(e.Name, ".ls")
		case strings.HasSuffix(e.Name, ".files"):
			slot, name = &set.Files, strings.TrimSuffix(e.Name, ".files")
		case strings.HasSuffix(e.Name, ".full"):
			slot, name = &set.Full, strings.TrimSuffix(e.Name, ".full")
		default:
			return nil, fmt.Errorf("%s line %d: %q is not a .ls, .files or .full file", sumPath, i+1, e.Name)
		}
		if *slot != nil {
			return nil, fmt.Errorf("%s line %d: a second %s", sumPath, i+1, e.Name)
		}
		if set.Name != "" && set.Name != name {
			return nil, fmt.Errorf("%s line %d: %q belongs to another set than %q", sumPath, i+1, e.Name, set.Name)
		}
		set.Name = name
		p := e.Name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		content, err := readSetFile(p, -1)
		if err != nil {
			return nil, err
		}
		if got := sha256.Sum256(content); hex.EncodeToString(got[:]) != e.Sum {
			return nil, fmt.Errorf("%s: does not match its sha256 in %s; the saved set is damaged", p, sumPath)
		}
		if content == nil {
			content = []byte{}
		}
		*slot = content
	}
	if set.Ls == nil || set.Files == nil {
		return nil, fmt.Errorf("%s: does not list both a .ls and a .files file", sumPath)
	}
	return set, nil
}

// readSetFile reads a file of a saved set, at most limit bytes (-1: no
// limit). It must be a regular file: the open never blocks (O_NONBLOCK,
// for a FIFO put in a set's place) and a FIFO or a device (/dev/zero,
// endless) is refused before anything is read.
func readSetFile(path string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fileType(fi.Mode()))
	}
	var r io.Reader = f
	if limit >= 0 {
		r = io.LimitReader(f, limit)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func fileType(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a fifo"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// Diff counts the differences Compare found.
type Diff struct {
	Added, Missing, DataChanged, MetaChanged int
}

// Total is the number of differing paths.
func (d Diff) Total() int { return d.Added + d.Missing + d.DataChanged + d.MetaChanged }

func (d Diff) String() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(d.Added, "added")
	add(d.Missing, "missing")
	add(d.DataChanged, "data changed")
	add(d.MetaChanged, "metadata changed")
	if len(parts) == 0 {
		return "no differences"
	}
	return strings.Join(parts, ", ")
}

// Compare writes to w, one line a path in path order, how the tree now
// (cur) differs from the saved set:
//
//   - PATH                      added
//   - PATH                      missing
//     ! PATH: data changed        content differs
//     ~ PATH: FIELD OLD -> NEW, … metadata differs
//
// Only what both sets cover is compared: NAME.full fields only when both
// have NAME.full.
func Compare(w io.Writer, saved, cur *Set) (Diff, error) {
	var d Diff
	old, err := parseSet(saved)
	if err != nil {
		return d, err
	}
	now, err := parseSet(cur)
	if err != nil {
		return d, err
	}
	full := old.full && now.full
	paths := make([]string, 0, len(now.records))
	for p := range now.records {
		paths = append(paths, p)
	}
	for p := range old.records {
		if now.records[p] == nil {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var out bytes.Buffer
	for _, p := range paths {
		o, n := old.records[p], now.records[p]
		shown := DisplayPath(p)
		switch {
		case o == nil:
			d.Added++
			fmt.Fprintf(&out, "+ %s\n", shown)
		case n == nil:
			d.Missing++
			fmt.Fprintf(&out, "- %s\n", shown)
		default:
			if o.sum != "" && n.sum != "" && o.sum != n.sum {
				d.DataChanged++
				fmt.Fprintf(&out, "! %s: data changed\n", shown)
			}
			if changes := metaChanges(o, n, full); len(changes) > 0 {
				d.MetaChanged++
				fmt.Fprintf(&out, "~ %s: %s\n", shown, strings.Join(changes, ", "))
			}
		}
		if out.Len() > 64<<10 {
			if _, err := w.Write(out.Bytes()); err != nil {
				return d, err
			}
			out.Reset()
		}
	}
	_, err = w.Write(out.Bytes())
	return d, err
}

func metaChanges(o, n *record, full bool) []string {
	var c []string
	field := func(name, a, b string) {
		if a != b {
			c = append(c, fmt.Sprintf("%s %s -> %s", name, a, b))
		}
	}
	switch {
	case o.ls != nil && n.ls != nil:
		field("mode", o.ls.Mode, n.ls.Mode)
		field("links", o.ls.Links, n.ls.Links)
		field("uid", o.ls.UID, n.ls.UID)
		field("gid", o.ls.GID, n.ls.GID)
		field("mtime", o.ls.Mtime, n.ls.Mtime)
	case o.ls != nil:
		c = append(c, "no longer listed in .ls")
	case n.ls != nil:
		c = append(c, "now listed in .ls")
	}
	typeChanged := o.ls != nil && n.ls != nil && o.ls.Mode[0] != n.ls.Mode[0]
	if (o.sum == "") != (n.sum == "") && !typeChanged {
		c = append(c, fmt.Sprintf("hashed %t -> %t", o.sum != "", n.sum != ""))
	}
	if full && o.inFull && n.inFull {
		keys := make([]string, 0, len(o.full)+len(n.full))
		for k := range o.full {
			keys = append(keys, k)
		}
		for k := range n.full {
			if _, ok := o.full[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			a, ina := o.full[k]
			b, inb := n.full[k]
			switch {
			case !ina:
				c = append(c, fmt.Sprintf("%s added %s", DisplayPath(k), shortValue(b)))
			case !inb:
				c = append(c, fmt.Sprintf("%s removed", DisplayPath(k)))
			case a != b:
				c = append(c, fmt.Sprintf("%s %s -> %s", DisplayPath(k), shortValue(a), shortValue(b)))
			}
		}
	} else if full && o.inFull != n.inFull {
		c = append(c, "listed in only one .full")
	}
	return c
}

// shortValue shows a value escaped and cut to a readable length.
func shortValue(v string) string {
	e := EscapeFull(v)
	if len(e) > 48 {
		e = e[:45] + "..."
	}
	return e
}

// DisplayPath shows a path on one line: control characters and
// backslashes are escaped as in NAME.full; spaces and UTF-8 stay.
func DisplayPath(p string) string {
	i := 0
	for i < len(p) && p[i] >= ' ' && p[i] != 0x7f && p[i] != '\\' {
		i++
	}
	if i == len(p) {
		return p
	}
	var b strings.Builder
	for j := 0; j < len(p); j++ {
		c := p[j]
		if c < ' ' || c == 0x7f || c == '\\' {
			fmt.Fprintf(&b, "\\%03o", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
