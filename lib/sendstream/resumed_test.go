package sendstream

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// resumedOf makes the resumed form of orig from its command at byte at
// (after the first command): head with the flag, RESUME, orig[at:].
func resumedOf(t testing.TB, orig []byte, at int, digest [32]byte) []byte {
	t.Helper()
	first := HeaderLen + CmdHeaderLen + int(binary.LittleEndian.Uint32(orig[HeaderLen:]))
	b, err := AppendResumed(nil, orig[:first], ResumeFrom{Offset: int64(at - first), Digest: digest})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, orig[at:]...)
}

func TestResumedStream(t *testing.T) {
	for _, f := range realStreams {
		orig := readStream(t, f)
		offs := commandOffsets(t, orig)
		first := offs[2]
		digest := [32]byte{1, 2, 3}
		// From right after the first command, from the middle, from END.
		for _, at := range []int{first, offs[len(offs)/2], offs[len(offs)-1]} {
			in := resumedOf(t, orig, at, digest)
			// Twice in a row: the reader resets between streams, and a
			// whole stream after a resumed one reads as whole.
			in2 := append(append(append([]byte{}, in...), orig...), in...)
			got, heads, err := readAll(NewReader(&chunkReader{b: in2, n: 7}), readWithBuf(100))
			if err != nil || len(got) != 3 {
				t.Fatalf("%s at %d: %v, %d streams", f, at, err, len(got))
			}
			if !bytes.Equal(got[0], in) || !bytes.Equal(got[1], orig) || !bytes.Equal(got[2], in) {
				t.Fatalf("%s at %d: bytes differ from the input", f, at)
			}
			whole, _ := NewReader(bytes.NewReader(orig)).Next()
			if heads[0] != whole.Subvol {
				t.Errorf("%s: head %+v, want %+v", f, heads[0], whole.Subvol)
			}
			r := NewReader(bytes.NewReader(in2))
			for i, want := range []bool{true, false, true} {
				s, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if (s.Resume != nil) != want || s.Version != whole.Version {
					t.Fatalf("%s stream %d: resume %v version %d", f, i, s.Resume, s.Version)
				}
				if want && (s.Resume.Offset != int64(at-first) || s.Resume.Digest != digest) {
					t.Fatalf("%s: resume %+v, want offset %d", f, s.Resume, at-first)
				}
			}
			// Every command is seen, RESUME included, with input offsets.
			var types []uint16
			Walk(bytes.NewReader(in), func(s *Stream, c *Command) error {
				types = append(types, c.Type)
				if !bytes.Equal(in[c.Offset+CmdHeaderLen:c.Offset+int64(c.Len())], c.Payload) {
					t.Fatalf("command offset %d wrong", c.Offset)
				}
				return nil
			})
			if types[1] != CmdResume || types[len(types)-1] != CmdEnd {
				t.Errorf("%s: commands %v", f, types)
			}
		}
	}
}

// A resumed stream is what btrfs receive refuses: its version field is
// not a version.
func TestResumedVersionField(t *testing.T) {
	in := resumedOf(t, readStream(t, "full-v1.stream"), HeaderLen+CmdHeaderLen+int(binary.LittleEndian.Uint32(readStream(t, "full-v1.stream")[HeaderLen:])), [32]byte{})
	if v := binary.LittleEndian.Uint32(in[len(Magic):]); v != 1|ResumeFlag {
		t.Fatalf("version field %#x", v)
	}
	if _, _, _, err := ReadHead(bytes.NewReader(in)); err == nil || !strings.Contains(err.Error(), "resumed stream") {
		t.Errorf("ReadHead took a resumed stream: %v", err)
	}
}

func TestResumedRewritePath(t *testing.T) {
	orig := readStream(t, "incremental-v1.stream")
	offs := commandOffsets(t, orig)
	in := resumedOf(t, orig, offs[4], [32]byte{9})
	s, err := NewReader(bytes.NewReader(in)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RewritePath("a/b/c"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := NewReader(bytes.NewReader(out)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if s2.Subvol.Path != "a/b/c" || s2.Resume == nil || *s2.Resume != *s.Resume {
		t.Fatalf("rewritten: %+v resume %v", s2.Subvol, s2.Resume)
	}
	if _, err := io.Copy(io.Discard, s2); err != nil {
		t.Fatal(err)
	}
}

func TestResumedMalformed(t *testing.T) {
	orig := readStream(t, "full-v1.stream")
	offs := commandOffsets(t, orig)
	firstEnd := offs[2]
	head := orig[:firstEnd]
	flagged := AppendHeader(nil, 1|ResumeFlag)
	flagged = append(flagged, head[HeaderLen:]...)
	resume := func(attrs ...Attr) []byte { return AppendCommand(nil, 1, CmdResume, attrs...) }
	off8 := Attr{AttrFileOffset, make([]byte, 8)}
	dig := Attr{AttrResumeDigest, make([]byte, 32)}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"flag without RESUME", cat(flagged, orig[firstEnd:]), "want RESUME"},
		{"RESUME in a whole stream", cat(head, resume(off8, dig), orig[firstEnd:]), "RESUME command where none belongs"},
		{"RESUME twice", cat(flagged, resume(off8, dig), resume(off8, dig), orig[firstEnd:]), "RESUME command where none belongs"},
		{"RESUME later", cat(flagged, resume(off8, dig), orig[firstEnd:offs[5]], resume(off8, dig), orig[offs[5]:]), "RESUME command where none belongs"},
		{"RESUME first", cat(AppendHeader(nil, 1|ResumeFlag), resume(off8, dig), orig[HeaderLen:]), "stream starts with RESUME"},
		{"no offset", cat(flagged, resume(dig), orig[firstEnd:]), "without FILE_OFFSET"},
		{"no digest", cat(flagged, resume(off8), orig[firstEnd:]), "without FILE_OFFSET or digest"},
		{"short digest", cat(flagged, resume(off8, Attr{AttrResumeDigest, make([]byte, 31)}), orig[firstEnd:]), "bad or repeated digest"},
		{"huge offset", cat(flagged, resume(Attr{AttrFileOffset, bytes.Repeat([]byte{0xff}, 8)}, dig), orig[firstEnd:]), "out of range"},
		{"other attribute", cat(flagged, resume(off8, dig, Attr{AttrPath, []byte("x")}), orig[firstEnd:]), "unknown attribute"},
		{"other version bits", cat(AppendHeader(nil, 1|0x200), orig[HeaderLen:]), "unsupported send stream version"},
		{"truncated after first", flagged, "stream ends without END"},
	} {
		_, _, err := readAll(NewReader(bytes.NewReader(tc.in)), readWithBuf(4096))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// resumedSeeds are fuzz seeds: resumed forms of the small real streams.
func resumedSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, f := range realStreams {
		orig := readStream(t, f)
		if len(orig) >= 8192 {
			continue
		}
		var offs []int
		for p := HeaderLen; p < len(orig); p += CmdHeaderLen + int(binary.LittleEndian.Uint32(orig[p:])) {
			offs = append(offs, p)
		}
		out = append(out, resumedOf(t, orig, offs[len(offs)/2], [32]byte{7}))
	}
	return out
}

// Every command handed to OnCommand carries its header as it came.
func TestCommandHeader(t *testing.T) {
	in := readStream(t, "incremental-v1.stream")
	n := 0
	err := Walk(bytes.NewReader(in), func(s *Stream, c *Command) error {
		h := c.Header()
		if !bytes.Equal(h[:], in[c.Offset:c.Offset+CmdHeaderLen]) {
			t.Fatalf("command at %d: header %x, want %x", c.Offset, h, in[c.Offset:c.Offset+CmdHeaderLen])
		}
		n++
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("%v, %d commands", err, n)
	}
}

// Commands refuses a resumed stream; ResumeCommands hands out what
// follows its RESUME, and refuses a whole stream.
func TestResumeCommands(t *testing.T) {
	orig := readStream(t, "incremental-v1.stream")
	offs := commandOffsets(t, orig)
	in := resumedOf(t, orig, offs[4], [32]byte{1})
	s, _ := NewReader(bytes.NewReader(in)).Next()
	if err := s.Commands(func(*Command) error { return nil }); err == nil || !strings.Contains(err.Error(), "a resumed stream") {
		t.Fatalf("Commands on a resumed stream: %v", err)
	}
	s, _ = NewReader(bytes.NewReader(in)).Next()
	shift := int64(len(in) - len(orig))
	var got []int64
	if err := s.ResumeCommands(func(c *Command) error { got = append(got, c.Offset-shift); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(offs)-4 || got[0] != int64(offs[4]) {
		t.Fatalf("offsets %v, want from %d", got, offs[4])
	}
	w, _ := NewReader(bytes.NewReader(orig)).Next()
	if err := w.ResumeCommands(func(*Command) error { return nil }); err == nil {
		t.Fatal("ResumeCommands took a whole stream")
	}
}
