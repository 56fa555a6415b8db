// Package tarball writes a directory tree as a POSIX pax archive (the
// tar format of POSIX.1-2001) that GNU tar and bsdtar extract: owners,
// modes, times to the nanosecond, extended attributes (SCHILY.xattr
// records, POSIX ACLs and file capabilities included), hard links,
// symbolic links, devices, FIFOs and sparse files (GNU sparse format
// 1.0 inside pax).
//
// It writes the format itself rather than through archive/tar, which
// cannot write sparse files and drops GNU.sparse records.
package tarball

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Type flags of the entries written.
const (
	TypeReg     = '0'
	TypeLink    = '1'
	TypeSymlink = '2'
	TypeChar    = '3'
	TypeBlock   = '4'
	TypeDir     = '5'
	TypeFifo    = '6'
	typePAX     = 'x'
)

const block = 512

// Header is one entry.
type Header struct {
	Type     byte
	Name     string // without a trailing '/'; directories get one
	Linkname string
	Mode     uint32 // permission bits with setuid, setgid and sticky
	UID, GID uint64
	// Size is the file's size; for a sparse file its real size.
	Size     int64
	MTime    Time
	ATime    Time
	DevMajor uint32
	DevMinor uint32
	Xattrs   []Xattr
	// Sparse lists a sparse file's data segments, in order; nil for a
	// file written whole.
	Sparse []Segment
}

// Time is a time as seconds and nanoseconds since the epoch.
type Time struct {
	Sec  int64
	Nsec int64
}

// Xattr is an extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Segment is a range of a sparse file that holds data.
type Segment struct {
	Offset, Length int64
}

// Writer writes entries; the data of a regular file follows its header.
type Writer struct {
	w    io.Writer
	left int64 // data bytes still due for the current entry
	pad  int64
	err  error
	buf  [block]byte
}

// NewWriter writes an archive to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// ErrShort is the fault of an entry whose data ended early.
var ErrShort = errors.New("tar entry shorter than its header says")

// WriteHeader writes h's headers (a pax header, then the ustar header)
// and, for a sparse file, its map; the entry's data comes next through
// Write: Size bytes, or the Sparse segments' bytes in order.
func (tw *Writer) WriteHeader(h *Header) error {
	if tw.err != nil {
		return tw.err
	}
	if tw.left > 0 {
		return tw.fail(ErrShort)
	}
	if err := tw.finishEntry(); err != nil {
		return err
	}
	name := h.Name
	if h.Type == TypeDir {
		name += "/"
	}
	var rec records
	size := int64(0)
	if h.Type == TypeReg {
		size = h.Size
	}
	var sparseMap []byte
	ustarName := name
	if h.Type == TypeReg && h.Sparse != nil {
		sparseMap, size = mapOf(h.Sparse, h.Size)
		rec.add("GNU.sparse.major", "1")
		rec.add("GNU.sparse.minor", "0")
		rec.add("GNU.sparse.name", name)
		rec.add("GNU.sparse.realsize", strconv.FormatInt(h.Size, 10))
		i := strings.LastIndexByte(name, '/')
		ustarName = name[:i+1] + "GNUSparseFile.0/" + name[i+1:]
	} else if !fits(name, 100) {
		rec.add("path", name)
	}
	if !fits(h.Linkname, 100) {
		rec.add("linkpath", h.Linkname)
	}
	const maxOctal7, maxOctal11 = 1<<21 - 1, 1<<33 - 1
	if h.UID > maxOctal7 {
		rec.add("uid", strconv.FormatUint(h.UID, 10))
	}
	if h.GID > maxOctal7 {
		rec.add("gid", strconv.FormatUint(h.GID, 10))
	}
	if size > maxOctal11 {
		rec.add("size", strconv.FormatInt(size, 10))
	}
	rec.add("mtime", h.MTime.pax())
	rec.add("atime", h.ATime.pax())
	for _, x := range h.Xattrs {
		if strings.ContainsAny(x.Name, "=\n") || x.Name == "" {
			return tw.fail(fmt.Errorf("%s: xattr name %q cannot be written in a pax record", h.Name, x.Name))
		}
		rec.add("SCHILY.xattr."+x.Name, string(x.Value))
	}
	// GNU tar restores POSIX ACLs from their text form only (--acls),
	// not from the xattrs above.
	for _, x := range h.Xattrs {
		key := map[string]string{"system.posix_acl_access": "SCHILY.acl.access", "system.posix_acl_default": "SCHILY.acl.default"}[x.Name]
		if key == "" {
			continue
		}
		if text, ok := aclText(x.Value); ok {
			rec.add(key, text)
		}
	}
	if len(rec.b) > 0 {
		i := strings.LastIndexByte(strings.TrimSuffix(name, "/"), '/')
		if err := tw.ustar(name[:i+1]+"PaxHeaders.0/"+strings.TrimSuffix(name[i+1:], "/"), typePAX, 0, "", 0, 0, int64(len(rec.b)), Time{}, 0, 0); err != nil {
			return err
		}
		if err := tw.raw(rec.b); err != nil {
			return err
		}
		if err := tw.raw(zero[:padding(int64(len(rec.b)))]); err != nil {
			return err
		}
	}
	if err := tw.ustar(ustarName, h.Type, h.Mode, h.Linkname, h.UID, h.GID, size, h.MTime, h.DevMajor, h.DevMinor); err != nil {
		return err
	}
	tw.left, tw.pad = size, padding(size)
	if sparseMap != nil {
		if _, err := tw.Write(sparseMap); err != nil {
			return err
		}
	}
	return nil
}

// mapOf is the sparse map GNU format 1.0 puts before the data (the
// count, then offset and length of each segment, in decimal lines,
// padded to a block) and the entry's size in the archive. A file ending
// in a hole gets a last, empty segment at its end, which gives the
// extracted file its size.
func mapOf(segs []Segment, size int64) ([]byte, int64) {
	n := len(segs)
	last := len(segs) == 0 || segs[n-1].Offset+segs[n-1].Length < size
	if last {
		n++
	}
	b := strconv.AppendInt(nil, int64(n), 10)
	b = append(b, '\n')
	total := int64(0)
	for _, s := range segs {
		b = strconv.AppendInt(b, s.Offset, 10)
		b = append(b, '\n')
		b = strconv.AppendInt(b, s.Length, 10)
		b = append(b, '\n')
		total += s.Length
	}
	if last {
		b = strconv.AppendInt(b, size, 10)
		b = append(b, "\n0\n"...)
	}
	b = append(b, zero[:padding(int64(len(b)))]...)
	return b, int64(len(b)) + total
}

// fits reports whether s goes into a ustar field of n bytes as is:
// ASCII, short enough.
func fits(s string, n int) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

func (t Time) pax() string {
	sec, ns := t.Sec, t.Nsec
	sign := ""
	if sec < 0 {
		// -1.25 is sec -2, ns 750000000.
		sign = "-"
		if ns > 0 {
			sec, ns = -(sec + 1), 1e9-ns
		} else {
			sec = -sec
		}
	}
	s := sign + strconv.FormatInt(sec, 10)
	if ns != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%09d", ns), "0")
	}
	return s
}

// records builds pax records: "LEN KEY=VALUE\n", LEN counting itself.
type records struct{ b []byte }

func (r *records) add(k, v string) {
	n := len(k) + len(v) + 3
	l := len(strconv.Itoa(n))
	for len(strconv.Itoa(n+l)) != l {
		l++
	}
	r.b = strconv.AppendInt(r.b, int64(n+l), 10)
	r.b = append(r.b, ' ')
	r.b = append(r.b, k...)
	r.b = append(r.b, '=')
	r.b = append(r.b, v...)
	r.b = append(r.b, '\n')
}

var zero [block]byte

func padding(n int64) int64 { return -n & (block - 1) }

// ustar writes one ustar header block; what does not fit in a field was
// put in the pax header before it (and the field left short or zero).
func (tw *Writer) ustar(name string, typ byte, mode uint32, link string, uid, gid uint64, size int64, mtime Time, major, minor uint32) error {
	b := &tw.buf
	*b = [block]byte{}
	copy(b[0:100], name)
	octal(b[100:108], uint64(mode&0o7777))
	octal(b[108:116], clampOctal(uid, 1<<21-1))
	octal(b[116:124], clampOctal(gid, 1<<21-1))
	octal(b[124:136], clampOctal(uint64(size), 1<<33-1))
	octal(b[136:148], clampOctal(uint64(max(mtime.Sec, 0)), 1<<33-1))
	b[156] = typ
	copy(b[157:257], link)
	copy(b[257:265], "ustar\x0000")
	octal(b[329:337], clampOctal(uint64(major), 1<<21-1))
	octal(b[337:345], clampOctal(uint64(minor), 1<<21-1))
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	octal(b[148:155], uint64(sum))
	b[155] = ' '
	return tw.raw(b[:])
}

func clampOctal(v, max uint64) uint64 {
	if v > max {
		return 0
	}
	return v
}

// octal writes v as zero-padded octal digits and a NUL.
func octal(f []byte, v uint64) {
	s := strconv.FormatUint(v, 8)
	n := len(f) - 1
	for i := range n {
		f[i] = '0'
	}
	copy(f[n-len(s):n], s)
	f[n] = 0
}

// Write writes the current entry's data.
func (tw *Writer) Write(p []byte) (int, error) {
	if tw.err != nil {
		return 0, tw.err
	}
	if int64(len(p)) > tw.left {
		return 0, tw.fail(errors.New("tar entry longer than its header says"))
	}
	n, err := tw.w.Write(p)
	tw.left -= int64(n)
	if err != nil {
		return n, tw.fail(err)
	}
	return n, nil
}

// ReadFrom copies the entry's data from r, to the entry's end at most.
func (tw *Writer) ReadFrom(r io.Reader) (int64, error) {
	if tw.err != nil {
		return 0, tw.err
	}
	n, err := io.Copy(tw.w, io.LimitReader(r, tw.left))
	tw.left -= n
	if err != nil {
		return n, tw.fail(err)
	}
	return n, nil
}

func (tw *Writer) finishEntry() error {
	if tw.pad > 0 {
		p := tw.pad
		tw.pad = 0
		return tw.raw(zero[:p])
	}
	return nil
}

func (tw *Writer) raw(p []byte) error {
	if _, err := tw.w.Write(p); err != nil {
		return tw.fail(err)
	}
	return nil
}

func (tw *Writer) fail(err error) error {
	if tw.err == nil {
		tw.err = err
	}
	return tw.err
}

// Close ends the archive with two zero blocks, only if every entry was
// complete: an archive cut short by an error must not look whole.
func (tw *Writer) Close() error {
	if tw.err != nil {
		return tw.err
	}
	if tw.left > 0 {
		return tw.fail(ErrShort)
	}
	if err := tw.finishEntry(); err != nil {
		return err
	}
	if err := tw.raw(zero[:]); err != nil {
		return err
	}
	if err := tw.raw(zero[:]); err != nil {
		return err
	}
	tw.err = errors.New("tar writer closed")
	return nil
}

// sortXattrs orders attributes by name: archives of the same tree are the
// same bytes.
func sortXattrs(x []Xattr) {
	sort.Slice(x, func(i, j int) bool { return x[i].Name < x[j].Name })
}

// aclText is a POSIX ACL xattr (version 2, then entries of tag, perm
// (le16) and id (le32)) as acl_from_text reads it, with numeric ids:
// "user::rw-,user:1234:r-x,group::r--,mask::r-x,other::---".
func aclText(b []byte) (string, bool) {
	if len(b) < 4 || len(b)%8 != 4 || b[0] != 2 || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return "", false
	}
	var out []string
	for e := b[4:]; len(e) > 0; e = e[8:] {
		tag := uint16(e[0]) | uint16(e[1])<<8
		perm := uint16(e[2]) | uint16(e[3])<<8
		id := uint32(e[4]) | uint32(e[5])<<8 | uint32(e[6])<<16 | uint32(e[7])<<24
		var s string
		switch tag {
		case 0x01:
			s = "user::"
		case 0x02:
			s = "user:" + strconv.FormatUint(uint64(id), 10) + ":"
		case 0x04:
			s = "group::"
		case 0x08:
			s = "group:" + strconv.FormatUint(uint64(id), 10) + ":"
		case 0x10:
			s = "mask::"
		case 0x20:
			s = "other::"
		default:
			return "", false
		}
		rwx := []byte("---")
		for i, c := range []byte("rwx") {
			if perm&(4>>i) != 0 {
				rwx[i] = c
			}
		}
		out = append(out, s+string(rwx))
	}
	return strings.Join(out, ","), true
}
