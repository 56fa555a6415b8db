package sendstream

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// Commands hands out every command after the first, whole and in order,
// whatever pieces the input comes in, and stops at a fault after the
// commands verified before it.
func TestCommands(t *testing.T) {
	orig := readStream(t, "full-v1.stream")
	offs := commandOffsets(t, orig)
	two := append(append([]byte{}, orig...), orig...)
	for _, chunk := range []int{1, 7, 4096, 1 << 20} {
		r := NewReader(&chunkReader{b: two, n: chunk})
		for i := 0; i < 2; i++ {
			s, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			err = s.Commands(func(c *Command) error {
				at := c.Offset - s.Offset
				if !bytes.Equal(orig[at:at+int64(c.Len())], two[c.Offset:c.Offset+int64(c.Len())]) ||
					binary.LittleEndian.Uint16(orig[at+4:]) != c.Type {
					t.Fatalf("chunk %d: command at %d differs", chunk, c.Offset)
				}
				got = append(got, at)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(offs)-2 || got[0] != int64(offs[2]) || s.Size() != int64(len(orig)) {
				t.Fatalf("chunk %d: %d commands from %v, size %d", chunk, len(got), got[:1], s.Size())
			}
		}
	}

	bad := append([]byte{}, orig...)
	last := offs[len(offs)-1]
	bad[last+7] ^= 1
	s, err := NewReader(&chunkReader{b: bad, n: 100}).Next()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = s.Commands(func(*Command) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "crc mismatch in END") || n != len(offs)-3 {
		t.Fatalf("%d commands, then %v", n, err)
	}
}

// FuzzStreamCommands: on any input, Commands hands out exactly the
// commands after each stream's first that the OnCommand hook verified,
// in order, whole.
func FuzzStreamCommands(f *testing.F) {
	f.Add(readStream(f, "full-v1.stream"), 3)
	f.Add(readStream(f, "incremental-v1.stream"), 100)
	f.Add(readStream(f, "full-v2-compressed.stream")[:5000], 1)
	for _, b := range resumedSeeds(f) {
		f.Add(b, 50)
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		chunk = max(1, chunk%70000)
		r := NewReader(&chunkReader{b: b, n: chunk})
		var verified []int64
		r.OnCommand(func(s *Stream, c *Command) error {
			// A resumed stream's RESUME belongs to its head, like the first command.
			if c.Type != CmdSubvol && c.Type != CmdSnapshot && c.Type != CmdResume {
				verified = append(verified, c.Offset)
			}
			return nil
		})
		var got []int64
		for {
			s, err := r.Next()
			if err != nil {
				break
			}
			err = s.Commands(func(c *Command) error {
				if int64(c.Len()) > int64(len(b))-c.Offset || !bytes.Equal(c.Payload, b[c.Offset+CmdHeaderLen:c.Offset+int64(c.Len())]) {
					t.Fatalf("command at %d is not the input's", c.Offset)
				}
				if h := c.Header(); !bytes.Equal(h[:], b[c.Offset:c.Offset+CmdHeaderLen]) {
					t.Fatalf("command at %d: header not the input's", c.Offset)
				}
				got = append(got, c.Offset)
				return nil
			})
			if err != nil {
				break
			}
		}
		if len(got) > len(verified) {
			t.Fatalf("%d commands handed out, %d verified", len(got), len(verified))
		}
		for i := range got {
			if got[i] != verified[i] {
				t.Fatalf("command %d at %d, verified at %d", i, got[i], verified[i])
			}
		}
	})
}
