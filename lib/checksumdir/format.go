package checksumdir

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ModeString is st_mode as GNU find's %M (and ls -l) shows it: the type
// letter and nine permission letters, with s/S and t/T for the setuid,
// setgid and sticky bits.
func ModeString(mode uint32) string {
	var b [10]byte
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		b[0] = '-'
	case unix.S_IFDIR:
		b[0] = 'd'
	case unix.S_IFLNK:
		b[0] = 'l'
	case unix.S_IFCHR:
		b[0] = 'c'
	case unix.S_IFBLK:
		b[0] = 'b'
	case unix.S_IFIFO:
		b[0] = 'p'
	case unix.S_IFSOCK:
		b[0] = 's'
	default:
		b[0] = '?'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		} else {
			b[1+i] = '-'
		}
	}
	special := func(i int, bit uint32, set, noExec byte) {
		if mode&bit == 0 {
			return
		}
		if b[i] == 'x' {
			b[i] = set
		} else {
			b[i] = noExec
		}
	}
	special(3, unix.S_ISUID, 's', 'S')
	special(6, unix.S_ISGID, 's', 'S')
	special(9, unix.S_ISVTX, 't', 'T')
	return string(b[:])
}

// FindTime is a modification time as `TZ=UTC find -printf "%TY-%Tm-%Td %TT"`
// prints it. GNU find appends the nanoseconds to %TT as ten digits, the
// last one always 0.
func FindTime(sec, nsec int64) string {
	t := time.Unix(sec, nsec).UTC()
	b := make([]byte, 0, 32)
	b = t.AppendFormat(b, "2006-01-02 15:04:05")
	b = append(b, '.')
	ns := strconv.FormatInt(int64(t.Nanosecond()), 10)
	for i := len(ns); i < 9; i++ {
		b = append(b, '0')
	}
	b = append(b, ns...)
	b = append(b, '0')
	return string(b)
}

// padLeft right-aligns n in width columns, as printf's %4d does.
func padLeft(b []byte, n uint64, width int) []byte {
	s := strconv.FormatUint(n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// LsLine is the entry's line in NAME.ls, without the newline:
// find -printf "%M %n %4U %4G %TY-%Tm-%Td %TT %P".
func LsLine(e *Entry) string {
	b := make([]byte, 0, 64+len(e.Path))
	b = append(b, ModeString(e.Mode)...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Nlink, 10)
	b = append(b, ' ')
	b = padLeft(b, uint64(e.UID), 4)
	b = append(b, ' ')
	b = padLeft(b, uint64(e.GID), 4)
	b = append(b, ' ')
	b = append(b, FindTime(e.MtimeSec, e.MtimeNsec)...)
	b = append(b, ' ')
	b = append(b, e.Path...)
	return string(b)
}

// SumLine is a line as GNU sha256sum (coreutils 9) prints it, without the
// newline. A name holding a backslash, newline or carriage return is
// escaped and the line then starts with a backslash.
func SumLine(sum []byte, name string) string {
	const hexdigits = "0123456789abcdef"
	var b strings.Builder
	b.Grow(68 + len(name))
	esc := strings.ContainsAny(name, "\\\n\r")
	if esc {
		b.WriteByte('\\')
	}
	for _, c := range sum {
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	b.WriteString("  ")
	if !esc {
		b.WriteString(name)
		return b.String()
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeSumName undoes SumLine's escaping.
func unescapeSumName(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", false
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// isBlank is GNU sort's field separator test in the C locale.
func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// KeyStart is where GNU sort's key "--key N" (field N to the end of the
// line, no -b) begins in line: after N-1 fields, each being optional blanks
// followed by non-blanks. The key keeps the blanks that lead field N.
func KeyStart(line string, field int) int {
	i := 0
	for f := 1; f < field && i < len(line); f++ {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		for i < len(line) && !isBlank(line[i]) {
			i++
		}
	}
	return i
}

// SortLines sorts lines as `LC_ALL=C sort --key N` does: by the bytes from
// field N to the end of the line, then, for equal keys, by the whole line
// (GNU sort's last-resort comparison).
func SortLines(lines []string, field int) {
	type keyed struct {
		line string
		key  int
	}
	ks := make([]keyed, len(lines))
	for i, l := range lines {
		ks[i] = keyed{l, KeyStart(l, field)}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := strings.Compare(a.line[a.key:], b.line[b.key:]); c != 0 {
			return c
		}
		return strings.Compare(a.line, b.line)
	})
	for i := range ks {
		lines[i] = ks[i].line
	}
}

// joinLines is lines each ended by a newline.
func joinLines(lines []string) []byte {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b := bytes.NewBuffer(make([]byte, 0, n))
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
