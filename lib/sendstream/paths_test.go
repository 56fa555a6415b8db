package sendstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/names"
)

func TestCheckPaths(t *testing.T) {
	P := func(t uint16, v string) Attr { return Attr{t, []byte(v)} }
	tests := []struct {
		typ   uint16
		attrs []Attr
		err   string
	}{
		{CmdMkfile, []Attr{P(AttrPath, "a/b")}, ""},
		{CmdUtimes, []Attr{P(AttrPath, "")}, ""}, // the subvolume's root
		{CmdSymlink, []Attr{P(AttrPath, "l"), P(AttrPathLink, "/etc")}, ""},
		{CmdSymlink, []Attr{P(AttrPath, "l"), P(AttrPathLink, "../../..")}, ""},
		{CmdMkfile, []Attr{P(AttrPath, "../x")}, `MKFILE PATH: invalid stream path "../x": '..' component`},
		{CmdMkfile, []Attr{P(AttrPath, "/etc/passwd")}, `MKFILE PATH: invalid stream path "/etc/passwd": absolute path`},
		{CmdWrite, []Attr{P(AttrPath, "a/./b")}, `'.' component`},
		{CmdTruncate, []Attr{P(AttrPath, "a//b")}, "empty component"},
		{CmdChmod, []Attr{P(AttrPath, "a\x00b")}, "NUL"},
		{CmdRename, []Attr{P(AttrPath, "f"), P(AttrPathTo, "d/../../x")}, "RENAME PATH_TO"},
		{CmdLink, []Attr{P(AttrPath, "f"), P(AttrPathLink, "../../x")}, "LINK PATH_LINK"},
		{CmdClone, []Attr{P(AttrPath, "f"), P(AttrClonePath, "/x")}, "CLONE CLONE_PATH"},
		{CmdSymlink, []Attr{P(AttrPath, "../l"), P(AttrPathLink, "t")}, "SYMLINK PATH"},
		// A second PATH is checked too.
		{CmdUnlink, []Attr{P(AttrPath, "ok"), P(AttrPath, "../x")}, "UNLINK PATH"},
		{CmdSetXattr, []Attr{P(AttrPath, "f"), P(AttrXattrName, "../not/a/path")}, ""},
	}
	for _, tt := range tests {
		b := AppendCommand(nil, 1, tt.typ, tt.attrs...)
		c := Command{Type: tt.typ, Version: 1, Payload: b[CmdHeaderLen:]}
		err := CheckPaths(&c)
		var pe *PathError
		if (err == nil) != (tt.err == "") || (err != nil && (!strings.Contains(err.Error(), tt.err) || !errors.As(err, &pe))) {
			t.Errorf("%s %v: %v, want %q", CmdName(tt.typ), tt.attrs, err, tt.err)
		}
	}
}

// fixCRCs recomputes the CRC of every whole command of a v1..3 stream in
// place, so that mutations reach the checks behind the CRC.
func fixCRCs(b []byte) {
	i := 0
	for i+HeaderLen <= len(b) && string(b[i:i+len(Magic)]) == Magic {
		i += HeaderLen
		for i+CmdHeaderLen <= len(b) {
			n := int(binary.LittleEndian.Uint32(b[i:]))
			if n > len(b)-i-CmdHeaderLen {
				return
			}
			cmd := b[i : i+CmdHeaderLen+n]
			binary.LittleEndian.PutUint32(cmd[6:], commandCRC(cmd))
			i += len(cmd)
			if binary.LittleEndian.Uint16(cmd[4:]) == CmdEnd {
				break
			}
		}
	}
}

// escapes is the fuzz oracle, independent of lib/names: a path that is
// absolute or climbs with "..".
func escapes(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// No command a reader checking paths hands out names a path that leaves
// the subvolume, whatever the input (with its CRCs made right).
func FuzzCheckPaths(f *testing.F) {
	for _, name := range realStreams {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 64<<10 {
			f.Add(b)
		}
	}
	P := func(t uint16, v string) Attr { return Attr{t, []byte(v)} }
	b := AppendHeader(nil, 1)
	b = AppendCommand(b, 1, CmdSubvol, P(AttrPath, "s"), Attr{AttrUUID, make([]byte, 16)}, Attr{AttrCTransID, make([]byte, 8)})
	b = AppendCommand(b, 1, CmdMkfile, P(AttrPath, "aa/../bb"))
	b = AppendCommand(b, 1, CmdRename, P(AttrPath, "bb"), P(AttrPathTo, "..x"))
	b = AppendCommand(b, 1, CmdLink, P(AttrPath, "c"), P(AttrPathLink, "./d"))
	b = AppendCommand(b, 1, CmdSymlink, P(AttrPath, "l"), P(AttrPathLink, "../.."))
	b = AppendCommand(b, 1, CmdEnd)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		in = append([]byte(nil), in...)
		fixCRCs(in)
		r := NewReader(bytes.NewReader(in))
		r.OnCommand(func(_ *Stream, c *Command) error { return CheckPaths(c) })
		var out []byte
		for {
			s, err := r.Next()
			if err != nil {
				break
			}
			got, err := io.ReadAll(s)
			out = append(out, got...)
			if err != nil {
				break
			}
		}
		// What was handed out, read again without checks.
		Walk(bytes.NewReader(out), func(_ *Stream, c *Command) error {
			c.Attrs(func(typ uint16, v []byte) error {
				switch {
				case typ == AttrPath, typ == AttrPathTo, typ == AttrClonePath, typ == AttrPathLink && c.Type != CmdSymlink:
					if escapes(string(v)) || names.StreamPath(string(v)) != nil {
						t.Fatalf("%s handed out with path %q", CmdName(c.Type), v)
					}
				}
				return nil
			})
			return nil
		})
	})
}
