package checksumdir

import (
	"crypto/sha256"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Set is what checksumdir saves for a tree called Name: the contents of
// NAME.ls, NAME.files and, with --full, NAME.full. NAME.sha256sum is
// SumFile.
type Set struct {
	Name            string
	Ls, Files, Full []byte
}

// Set renders the tree's saved form. full adds NAME.full.
func (t *Tree) Set(name string, full bool) *Set {
	ls := make([]string, 0, len(t.Entries))
	var files []string
	for _, e := range t.Entries {
		ls = append(ls, LsLine(e))
		if e.IsRegular() {
			files = append(files, SumLine(e.sum.sum[:], "./"+e.Path))
		}
	}
	SortLines(ls, 7)
	SortLines(files, 2)
	s := &Set{Name: name, Ls: joinLines(ls), Files: joinLines(files)}
	if full {
		lines := make([]string, 0, len(t.Entries))
		// Sorted by the raw path, like NAME.ls.
		sorted := append([]*Entry(nil), t.Entries...)
		sortEntries(sorted)
		for _, e := range sorted {
			lines = append(lines, FullLine(e))
		}
		s.Full = joinLines(lines)
	}
	return s
}

// FileNames are the names of the set's files, in NAME.sha256sum order.
func (s *Set) FileNames() []string {
	n := []string{s.Name + ".ls", s.Name + ".files"}
	if s.Full != nil {
		n = append(n, s.Name+".full")
	}
	return n
}

// contents are the files' contents in FileNames order.
func (s *Set) contents() [][]byte {
	c := [][]byte{s.Ls, s.Files}
	if s.Full != nil {
		c = append(c, s.Full)
	}
	return c
}

// SumFile is the content of NAME.sha256sum: `sha256sum NAME.ls NAME.files`
// (and NAME.full).
func (s *Set) SumFile() []byte {
	var lines []string
	for i, name := range s.FileNames() {
		sum := sha256.Sum256(s.contents()[i])
		lines = append(lines, SumLine(sum[:], name))
	}
	return joinLines(lines)
}

// DigestLine is the overall digest of the tree: the line
// `sha256sum NAME.sha256sum` prints for the saved set.
func (s *Set) DigestLine() string {
	sum := sha256.Sum256(s.SumFile())
	return SumLine(sum[:], s.Name+".sha256sum")
}

// attrLetters are the inode flags users set with chattr(1), with its
// letters; flags the filesystem keeps for itself (extents, inline data,
// htree index, ...) are left out so that trees on different filesystems
// compare equal.
var attrLetters = []struct {
	bit    uint32
	letter byte
}{
	{0x00000001, 's'}, {0x00000002, 'u'}, {0x00000004, 'c'}, {0x00000008, 'S'},
	{0x00000010, 'i'}, {0x00000020, 'a'}, {0x00000040, 'd'}, {0x00000080, 'A'},
	{0x00000400, 'm'}, {0x00004000, 'j'}, {0x00008000, 't'}, {0x00010000, 'D'},
	{0x00020000, 'T'}, {0x00800000, 'C'}, {0x02000000, 'x'}, {0x20000000, 'P'},
	{0x40000000, 'F'},
}

// AttrString is the chattr letters of the flags set in attr.
func AttrString(attr uint32) string {
	var b []byte
	for _, a := range attrLetters {
		if attr&a.bit != 0 {
			b = append(b, a.letter)
		}
	}
	return string(b)
}

// typeName is the type= value of NAME.full.
func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "link"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "unknown"
}

// FullLine is the entry's line in NAME.full (see checksumdir(1)):
//
//	PATH type=T [size=N] [target=S] [rdev=MAJ,MIN] [attr=L] [xattr.NAME=V]...
//
// PATH, S, NAME and V are escaped with EscapeFull.
func FullLine(e *Entry) string {
	var b strings.Builder
	b.WriteString(EscapeFull(e.Path))
	b.WriteString(" type=")
	b.WriteString(typeName(e.Mode))
	attr, hasAttr := e.attr, e.hasAttr
	switch e.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b.WriteString(" size=")
		b.WriteString(strconv.FormatInt(e.Size, 10))
		attr, hasAttr = e.sum.attr, e.sum.hasAttr
	case unix.S_IFLNK:
		b.WriteString(" target=")
		b.WriteString(EscapeFull(e.Target))
	case unix.S_IFCHR, unix.S_IFBLK:
		b.WriteString(" rdev=")
		b.WriteString(strconv.FormatUint(uint64(unix.Major(e.Rdev)), 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatUint(uint64(unix.Minor(e.Rdev)), 10))
	}
	if a := AttrString(attr); hasAttr && a != "" {
		b.WriteString(" attr=")
		b.WriteString(a)
	}
	for _, x := range e.Xattrs {
		b.WriteString(" xattr.")
		b.WriteString(EscapeFull(x.Name))
		b.WriteByte('=')
		b.WriteString(EscapeFull(x.Value))
	}
	return b.String()
}

// EscapeFull writes bytes that are not printable ASCII, and the space,
// backslash and '=', as a backslash and three octal digits.
func EscapeFull(s string) string {
	i := 0
	for i < len(s) && !needsEscape(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('\\')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + (c>>3)&7)
			b.WriteByte('0' + c&7)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '\\' || c == '=' }

// unescapeFull undoes EscapeFull.
func unescapeFull(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", false
		}
		v := 0
		for _, c := range []byte(s[i+1 : i+4]) {
			if c < '0' || c > '7' {
				return "", false
			}
			v = v*8 + int(c-'0')
		}
		if v > 255 {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), true
}

// sortEntries sorts by the raw path bytes.
func sortEntries(es []*Entry) {
	slices.SortFunc(es, func(a, b *Entry) int { return strings.Compare(a.Path, b.Path) })
}
