package extent

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// lzoFrame wraps LZO1X segments in btrfs's framing for a sector size,
// zero-padding to the next sector where a header would not fit.
func lzoFrame(sector int, segs ...[]byte) []byte {
	b := make([]byte, 4)
	for _, s := range segs {
		if left := sector - len(b)%sector; left < 4 {
			b = append(b, make([]byte, left)...)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	return b
}

// cat joins byte slices and strings into one instruction sequence.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case []byte:
			b = append(b, p...)
		case string:
			b = append(b, p...)
		case int:
			b = append(b, byte(p))
		}
	}
	return b
}

var end = []byte{0x11, 0, 0}

// text is n bytes of compressible, not quite periodic text.
func text(n int) []byte {
	words := strings.Fields("the quick brown fox jumps over a lazy dog while btrfs sends compressed extents to some receiver far away")
	var b []byte
	x := uint32(1)
	for len(b) < n {
		x = x*1664525 + 1013904223
		b = append(b, words[x>>24%uint32(len(words))]...)
		b = append(b, ' ')
	}
	return b[:n]
}

func seq(n int) []byte {
	b := make([]byte, n)
	x := uint32(7)
	for i := range b {
		x = x*1103515245 + 12345
		b[i] = byte(x >> 16)
	}
	return b
}

func zeros(n int) []byte { return make([]byte, n) }

func repeat(s string, n int) []byte { return []byte(strings.Repeat(s, n)) }

type lzoCase struct {
	name string
	in   []byte // one LZO1X segment
	want []byte
}

// run is a literal run of b as an instruction after no literals.
func run(b []byte) []byte {
	if len(b) <= 18 {
		return cat(len(b)-3, b)
	}
	n := len(b) - 18
	return cat(0, zeros(n/255), n%255, b)
}

func lzoCases() []lzoCase {
	long := seq(40000)
	return []lzoCase{
		{"end only", end, nil},
		{"first byte literals", cat(17+5, "hello", end), []byte("hello")},
		{"first byte one literal then a long overlapping match", cat(18, "a", 0x20, 7, 0, 0, end), repeat("a", 41)},
		{"literal run", cat(run([]byte("abcd")), end), []byte("abcd")},
		{"long literal run", cat(run(seq(274)), end), seq(274)},
		{"short match", cat(17+4, "abcd", 0x6c, 0, end), []byte("abcdabcd")},
		{"longest short match", cat(17+4, "abcd", 0xec, 0, end), []byte("abcdabcdabcd")},
		{"match then literals then 2-byte match", cat(17+4, "abcd", 0x4e, 0, "xy", 0x08, 0, end), []byte("abcdabcxycx")},
		{"3-byte match after a run", cat(run(seq(2100)), 0x0c, 12, end), cat(seq(2100), seq(3))},
		{"far match", cat(run(long[:20000]), 0x16, 0x80, 0x38, end), cat(long[:20000], long[:8])},
		{"far match with a long length", cat(run(long[:20000]), 0x10, 3, 0x80, 0x38, end), cat(long[:20000], long[:12])},
		{"farthest half of the window", cat(run(long), 0x1e, 0x00, 0x71, end), cat(long, long[:8])},
		{"match within 16 KiB then literals", cat(run(long[:10000]), 0x25, 0x3e, 0x9c, "zz", end), cat(long[:10000], long[:7], "zz")},
	}
}

func TestLZO1X(t *testing.T) {
	for _, c := range lzoCases() {
		out := make([]byte, 64<<10)
		n, err := lzo1x(out, c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(out[:n], c.want) {
			t.Errorf("%s: got %d bytes %.40q, want %d bytes %.40q", c.name, n, out[:n], len(c.want), c.want)
		}
	}
}

func zlibData(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zstdData(b []byte, opts ...zstd.EOption) []byte {
	enc, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithWindowSize(1 << 17)}, opts...)...)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// zstdStream is a frame that does not state its content size.
func zstdStream(b []byte) []byte {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(1<<17), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err)
	}
	enc.Write(b)
	enc.Close()
	return buf.Bytes()
}

// pad zero-fills b to the next 4 KiB, as btrfs stores an extent.
func pad(b []byte) []byte { return append(b, make([]byte, -len(b)&4095)...) }

type decodeCase struct {
	name        string
	compression uint32
	src         []byte
	n           int    // len(dst)
	want        []byte // prefix of dst; the rest must stay zero
	err         string // substring of the error, "" for none
}

func decodeCases() []decodeCase {
	txt := text(MaxLen)
	var cases []decodeCase
	for _, c := range lzoCases() {
		cases = append(cases, decodeCase{"lzo " + c.name, LZO64K, lzoFrame(64<<10, c.in), len(c.want), c.want, ""})
	}
	// Segments of a 4 KiB sector, sized so that one header fits exactly
	// before a boundary and the next must skip to it.
	seg := func(n int) []byte { return cat(run(txt[:n]), end) }
	sized := func(size int) int {
		n := size
		for len(seg(n)) > size {
			n--
		}
		if len(seg(n)) != size {
			panic("no segment of that size")
		}
		return n
	}
	n1 := sized(4096 - 4 - 4 - 4) // the next header ends at 4096
	n2 := sized(4096 - 2)         // leaves 2 bytes before 8192
	framed := lzoFrame(4096, seg(n1), seg(n2), seg(100))
	framedWant := cat(txt[:n1], txt[:n2], txt[:100])
	if len(framed) != 8192+4+len(seg(100)) {
		panic("framing test data misses the sector boundaries")
	}
	cases = append(cases,
		decodeCase{"lzo segments across sector boundaries", LZO4K, pad(framed), len(framedWant), framedWant, ""},
		decodeCase{"lzo segments, dst longer", LZO4K, framed, len(framedWant) + 10, framedWant, ""},
		decodeCase{"lzo segments, dst shorter", LZO4K, framed, len(framedWant) - 1, nil, "output longer"},
		decodeCase{"lzo segment over its sector", LZO4K, lzoFrame(4096, seg(5000)), 5000, nil, "output longer"},
		decodeCase{"lzo truncated header", LZO4K, []byte{4, 0}, 0, nil, "truncated header"},
		decodeCase{"lzo total length beyond the data", LZO4K, lzoFrame(4096, end)[:6], 0, nil, "total length"},
		decodeCase{"lzo total length below its own", LZO4K, []byte{3, 0, 0, 0}, 0, nil, "total length"},
		decodeCase{"lzo segment length beyond the total", LZO4K, []byte{11, 0, 0, 0, 4, 0, 0, 0, 0x11, 0, 0}, 0, nil, "segment length"},
		decodeCase{"lzo truncated segment header", LZO4K, []byte{6, 0, 0, 0, 3, 0}, 0, nil, "truncated segment header"},
		decodeCase{"lzo empty segment", LZO4K, lzoFrame(4096, nil), 0, nil, "truncated input"},
		decodeCase{"lzo truncated literals", LZO4K, lzoFrame(4096, cat(21, "ab")), 4, nil, "truncated input"},
		decodeCase{"lzo no end marker", LZO4K, lzoFrame(4096, cat(21, "abcd")), 4, nil, "truncated input"},
		decodeCase{"lzo truncated match", LZO4K, lzoFrame(4096, cat(21, "abcd", 0x25, 0x3e)), 20, nil, "truncated input"},
		decodeCase{"lzo truncated length", LZO4K, lzoFrame(4096, cat(21, "abcd", 0x20, 0, 0)), 20, nil, "truncated input"},
		decodeCase{"lzo match before the start", LZO4K, lzoFrame(4096, cat(18, "a", 0x6c, 0, end)), 10, nil, "before the start"},
		decodeCase{"lzo far match before the start", LZO4K, lzoFrame(4096, cat(run(seq(100)), 0x0c, 0, end)), 200, nil, "before the start"},
		decodeCase{"lzo match past dst", LZO4K, lzoFrame(4096, cat(18, "a", 0x20, 7, 0, 0, end)), 40, nil, "output longer"},
		decodeCase{"lzo literals past dst", LZO4K, lzoFrame(4096, cat(run(seq(30)), end)), 29, nil, "output longer"},
		decodeCase{"lzo trailing literals past dst", LZO4K, lzoFrame(4096, cat(21, "abcd", 0x4e, 0, "xy", end)), 8, nil, "output longer"},
		decodeCase{"lzo data after the end marker", LZO4K, lzoFrame(4096, cat(end, 0)), 0, nil, "after the end marker"},

		decodeCase{"zlib", Zlib, pad(zlibData(txt)), MaxLen, txt, ""},
		decodeCase{"zlib unpadded", Zlib, zlibData(txt[:5000]), 5000, txt[:5000], ""},
		decodeCase{"zlib shorter than dst", Zlib, zlibData(txt[:5000]), 8192, txt[:5000], ""},
		decodeCase{"zlib longer than dst", Zlib, zlibData(txt[:5000]), 4999, nil, "output longer"},
		decodeCase{"zlib truncated", Zlib, zlibData(txt)[:1000], MaxLen, nil, "unexpected EOF"},
		decodeCase{"zlib bad checksum", Zlib, func() []byte { b := zlibData(txt[:100]); b[len(b)-1]++; return b }(), 100, nil, "checksum"},
		decodeCase{"zlib bad header", Zlib, []byte{1, 2, 3}, 10, nil, "extent: zlib:"},
		decodeCase{"zlib empty", Zlib, nil, 10, nil, "extent: zlib:"},

		decodeCase{"zstd", Zstd, pad(zstdData(txt)), MaxLen, txt, ""},
		decodeCase{"zstd unpadded", Zstd, zstdData(txt[:5000]), 5000, txt[:5000], ""},
		decodeCase{"zstd without checksum", Zstd, pad(zstdData(txt[:5000], zstd.WithEncoderCRC(false))), 5000, txt[:5000], ""},
		decodeCase{"zstd without content size", Zstd, pad(zstdStream(txt)), MaxLen, txt, ""},
		decodeCase{"zstd bad checksum", Zstd, func() []byte { b := zstdData(txt[:100]); b[len(b)-1]++; return b }(), 100, nil, "CRC"},
		decodeCase{"zstd raw blocks", Zstd, pad(zstdData(seq(MaxLen))), MaxLen, seq(MaxLen), ""},
		decodeCase{"zstd rle", Zstd, pad(zstdData(repeat("x", 70000))), 70000, repeat("x", 70000), ""},
		decodeCase{"zstd shorter than dst", Zstd, zstdData(txt[:5000]), 8192, txt[:5000], ""},
		decodeCase{"zstd longer than dst", Zstd, zstdData(txt[:5000]), 4999, nil, "output longer"},
		decodeCase{"zstd longer than dst, no content size", Zstd, zstdStream(txt), 4999, nil, "extent: zstd:"},
		decodeCase{"zstd shorter than dst, no content size", Zstd, zstdStream(txt[:5000]), 8192, txt[:5000], ""},
		decodeCase{"zstd window over 128 KiB", Zstd, zstdData(txt, zstd.WithWindowSize(1<<20), zstd.WithSingleSegment(false)), MaxLen, nil, "window"},
		decodeCase{"zstd truncated", Zstd, zstdData(txt)[:1000], MaxLen, nil, "truncated frame"},
		decodeCase{"zstd bad magic", Zstd, pad(nil), 10, nil, "no frame"},
		decodeCase{"zstd reserved block", Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 1, 7, 0, 0}, 10, nil, "reserved block"},
		decodeCase{"zstd corrupt block", Zstd, func() []byte { b := zstdData(txt); b[100] ^= 0xff; return b }(), MaxLen, nil, "extent: zstd:"},

		decodeCase{"no compression", 0, txt[:10], 10, nil, "unknown compression 0"},
		decodeCase{"unknown compression", 8, txt[:10], 10, nil, "unknown compression 8"},
		decodeCase{"over the most an extent holds", Zlib, zlibData(txt), MaxLen + 1, nil, "over"},
	)
	return cases
}

func TestDecode(t *testing.T) {
	for _, c := range decodeCases() {
		t.Run(c.name, func(t *testing.T) {
			// Spare capacity past len(dst) must stay untouched.
			buf := make([]byte, c.n+64)
			for i := c.n; i < len(buf); i++ {
				buf[i] = 0xa5
			}
			err := Decode(buf[:c.n], c.compression, c.src)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("error: %v", err)
			case c.err != "" && err == nil:
				t.Fatalf("no error, want %q", c.err)
			case c.err != "" && !strings.Contains(err.Error(), c.err):
				t.Fatalf("error %q, want %q", err, c.err)
			case err != nil && (!strings.HasPrefix(err.Error(), "extent: ") || strings.Contains(err.Error(), "\n")):
				t.Fatalf("error %q: not one line starting with extent:", err)
			}
			if err == nil {
				if !bytes.Equal(buf[:len(c.want)], c.want) {
					t.Errorf("output differs from the %d bytes expected", len(c.want))
				}
				if !allZero(buf[len(c.want):c.n]) {
					t.Errorf("output past the %d bytes expected is not zero", len(c.want))
				}
			}
			if !bytes.Equal(buf[c.n:], bytes.Repeat([]byte{0xa5}, 64)) {
				t.Errorf("wrote past dst")
			}
		})
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
