package tarball

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// The headers read back with archive/tar (a reader of pax): fields too
// large for ustar go through pax records.
func TestHeaderRoundTrip(t *testing.T) {
	long := strings.Repeat("d/", 80) + "ü"
	hs := []Header{
		{Type: TypeReg, Name: "a/b", Mode: 0o4755, UID: 1 << 32, GID: 3000000, Size: 3, MTime: Time{-2, 750000000}, ATime: Time{1, 5},
			Xattrs: []Xattr{{"user.k", []byte("v\n\x00=")}}},
		{Type: TypeDir, Name: long, Mode: 0o1777, MTime: Time{1 << 40, 0}},
		{Type: TypeSymlink, Name: "l", Linkname: strings.Repeat("t", 300)},
		{Type: TypeBlock, Name: "b", DevMajor: 259, DevMinor: 1 << 20},
		{Type: TypeFifo, Name: "f"},
	}
	var buf bytes.Buffer
	tw := NewWriter(&buf)
	for i := range hs {
		if err := tw.WriteHeader(&hs[i]); err != nil {
			t.Fatal(err)
		}
		if hs[i].Size > 0 {
			if _, err := tw.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for _, h := range hs {
		g, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name
		if h.Type == TypeDir {
			name += "/"
		}
		if g.Name != name || g.Typeflag != h.Type || g.Linkname != h.Linkname || g.Mode != int64(h.Mode) ||
			uint64(g.Uid) != h.UID || uint64(g.Gid) != h.GID || g.Size != h.Size ||
			!g.ModTime.Equal(time.Unix(h.MTime.Sec, h.MTime.Nsec)) || g.Devmajor != int64(h.DevMajor) || g.Devminor != int64(h.DevMinor) {
			t.Errorf("read back %+v\nwrote %+v", g, h)
		}
		for _, x := range h.Xattrs {
			if v := g.PAXRecords["SCHILY.xattr."+x.Name]; v != string(x.Value) {
				t.Errorf("xattr %s read back %q", x.Name, v)
			}
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the last entry: %v", err)
	}
}

// An entry cut short leaves no end of archive.
func TestNoEndAfterError(t *testing.T) {
	var buf bytes.Buffer
	tw := NewWriter(&buf)
	if err := tw.WriteHeader(&Header{Type: TypeReg, Name: "x", Size: 10}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("abc"))
	if err := tw.Close(); !errors.Is(err, ErrShort) {
		t.Errorf("Close of a short entry: %v", err)
	}
	if n := buf.Len(); n%512 != 3 {
		t.Errorf("%d bytes written: padding or end blocks after a short entry", n)
	}
	if _, err := tw.Write([]byte("x")); err == nil {
		t.Error("write after a failure")
	}
	if err := tw.WriteHeader(&Header{Type: TypeDir, Name: "d"}); err == nil {
		t.Error("header after a failure")
	}
}

func TestACLText(t *testing.T) {
	b := []byte{2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 2, 0, 5, 0, 0xd2, 4, 0, 0, 4, 0, 4, 0, 255, 255, 255, 255,
		8, 0, 2, 0, 42, 0, 0, 0, 0x10, 0, 5, 0, 255, 255, 255, 255, 0x20, 0, 0, 0, 255, 255, 255, 255}
	if s, ok := aclText(b); !ok || s != "user::rwx,user:1234:r-x,group::r--,group:42:-w-,mask::r-x,other::---" {
		t.Errorf("aclText = %q, %v", s, ok)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0}, {2, 0, 0, 0, 1}, {2, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := aclText(bad); ok {
			t.Errorf("aclText(%v) accepted", bad)
		}
	}
}
