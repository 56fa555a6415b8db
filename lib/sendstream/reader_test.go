package sendstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// The testdata streams are real `btrfs send` output (btrfs-progs 6.2,
// kernel 6.18) of a small subvolume t1 (file, directory, 20 KB file,
// symlink, xattr) and t2 (one appended byte, symlink removed).
func readStream(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var realStreams = []string{"full-v1.stream", "full-v2-compressed.stream", "incremental-v1.stream", "nodata-v1.stream"}

// readAll splits the input into streams and returns each one's bytes.
func readAll(r *Reader, read func(s *Stream) ([]byte, error)) ([][]byte, []Head, error) {
	var out [][]byte
	var heads []Head
	for {
		s, err := r.Next()
		if err == io.EOF {
			return out, heads, nil
		}
		if err != nil {
			return out, heads, err
		}
		heads = append(heads, s.Subvol)
		b, err := read(s)
		out = append(out, b)
		if err != nil {
			return out, heads, err
		}
	}
}

func readWithBuf(size int) func(s *Stream) ([]byte, error) {
	return func(s *Stream) ([]byte, error) {
		var out []byte
		p := make([]byte, size)
		for {
			n, err := s.Read(p)
			out = append(out, p[:n]...)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
		}
	}
}

func readWithWriteTo(s *Stream) ([]byte, error) {
	var b bytes.Buffer
	_, err := s.WriteTo(&b)
	return b.Bytes(), err
}

func TestRealStreamsHeads(t *testing.T) {
	tests := []struct {
		file     string
		version  uint32
		snapshot bool
		path     string
	}{
		{"full-v1.stream", 1, false, "t1"},
		{"full-v2-compressed.stream", 2, false, "t1"},
		{"incremental-v1.stream", 1, true, "t2"},
		{"nodata-v1.stream", 1, false, "t1"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := readStream(t, tt.file)
			r := NewReader(bytes.NewReader(b))
			s, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if s.Version != tt.version || s.Subvol.Snapshot != tt.snapshot || s.Subvol.Path != tt.path {
				t.Errorf("got version %d snapshot %v path %q", s.Version, s.Subvol.Snapshot, s.Subvol.Path)
			}
			if s.Subvol.UUID.IsZero() || s.Subvol.CTransID == 0 {
				t.Errorf("head without uuid/ctransid: %+v", s.Subvol)
			}
			if tt.snapshot && (s.Subvol.CloneUUID.IsZero() || s.Subvol.CloneCTransID == 0) {
				t.Errorf("incremental head without clone uuid: %+v", s.Subvol)
			}
			if !tt.snapshot && !s.Subvol.CloneUUID.IsZero() {
				t.Errorf("full head with clone uuid: %+v", s.Subvol)
			}
			if _, err := io.Copy(io.Discard, s); err != nil {
				t.Fatal(err)
			}
			if s.Size() != int64(len(b)) {
				t.Errorf("size %d, want %d", s.Size(), len(b))
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("after the only stream: %v, want io.EOF", err)
			}
		})
	}
	// The incremental stream's parent is the full stream's subvolume.
	full, inc := NewReader(bytes.NewReader(readStream(t, "full-v1.stream"))), NewReader(bytes.NewReader(readStream(t, "incremental-v1.stream")))
	fs, _ := full.Next()
	is, _ := inc.Next()
	if is.Subvol.CloneUUID != fs.Subvol.UUID || is.Subvol.CloneCTransID != fs.Subvol.CTransID {
		t.Errorf("incremental clone %v/%d, want %v/%d", is.Subvol.CloneUUID, is.Subvol.CloneCTransID, fs.Subvol.UUID, fs.Subvol.CTransID)
	}
}

// Every way of reading concatenated streams, through every way of
// chopping the input, gives back each stream's exact bytes.
func TestConcatenatedBoundaries(t *testing.T) {
	var streams [][]byte
	var all []byte
	for _, f := range realStreams {
		b := readStream(t, f)
		streams = append(streams, b)
		all = append(all, b...)
	}
	sources := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(all) },
		"1-byte":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(all)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(all)) },
		"data+eof": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(all)) },
		"13-byte":  func() io.Reader { return &chunkReader{b: all, n: 13} },
		"9-byte":   func() io.Reader { return &chunkReader{b: all, n: 9} }, // splits command headers and CRCs
		"65536":    func() io.Reader { return &chunkReader{b: all, n: 65536} },
	}
	reads := map[string]func(*Stream) ([]byte, error){
		"read1":    readWithBuf(1),
		"read17":   readWithBuf(17),
		"read4096": readWithBuf(4096),
		"writeto":  readWithWriteTo,
		"held":     readWithHeldWrites(t),
	}
	for sn, src := range sources {
		for rn, rd := range reads {
			r := NewReader(src())
			if rn == "held" {
				r = NewReaderSize(src(), bufSize)
			}
			got, _, err := readAll(r, rd)
			if err != nil {
				t.Fatalf("%s/%s: %v", sn, rn, err)
			}
			if len(got) != len(streams) {
				t.Fatalf("%s/%s: %d streams, want %d", sn, rn, len(got), len(streams))
			}
			for i := range got {
				if !bytes.Equal(got[i], streams[i]) {
					t.Errorf("%s/%s: stream %d differs (%d bytes, want %d)", sn, rn, i, len(got[i]), len(streams[i]))
				}
			}
		}
	}
}

// chunkReader returns at most n bytes per read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// Next skips an unread stream but still verifies it.
func TestNextSkipsAndVerifies(t *testing.T) {
	a := readStream(t, "full-v1.stream")
	b := readStream(t, "incremental-v1.stream")
	r := NewReader(bytes.NewReader(append(append([]byte{}, a...), b...)))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	s, err := r.Next()
	if err != nil || s.Subvol.Path != "t2" {
		t.Fatalf("second stream: %v %+v", err, s)
	}
	bad := append([]byte{}, a...)
	bad[len(bad)-100] ^= 1
	// The fault surfaces as soon as the reader has read that far: in the
	// first Next here, as the whole input fits its buffer.
	r = NewReader(iotest.OneByteReader(bytes.NewReader(append(bad, b...))))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "crc mismatch") {
		t.Fatalf("skipping a corrupt stream: %v, want crc mismatch", err)
	}
}

func TestEmptyAndTrailing(t *testing.T) {
	b := readStream(t, "incremental-v1.stream")
	tests := []struct {
		name  string
		input []byte
		n     int // streams expected before the error
		err   string
	}{
		{"empty", nil, 0, "byte 0: empty input, no send stream"},
		{"garbage", []byte("hello world, this is not a stream"), 0, "byte 0: bad magic"},
		{"trailing garbage", append(append([]byte{}, b...), "xxxxxxxxxxxxxxxxxxxxxxxx"...), 1, "bad magic"},
		{"trailing partial header", append(append([]byte{}, b...), Magic[:5]...), 1, "truncated stream header (5 of 17 bytes)"},
		{"short garbage", []byte("hello\n"), 0, "byte 0: bad magic"},
		{"version 0", append([]byte(Magic), 0, 0, 0, 0), 0, "unsupported send stream version 0"},
		{"version 4", append([]byte(Magic), 4, 0, 0, 0), 0, "unsupported send stream version 4"},
		{"header only", append([]byte(Magic), 1, 0, 0, 0), 0, "byte 17: stream ends without END command"},
		{"no end", b[:len(b)-CmdHeaderLen], 1, "stream ends without END command"},
		{"huge length", append(append([]byte(Magic), 1, 0, 0, 0), 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0), 0, "SUBVOL command length 4294967295 over the limit"},
		{"first not subvol", AppendCommand(AppendHeader(nil, 1), 1, CmdMkdir, Attr{AttrPath, []byte("x")}), 0, "stream starts with MKDIR, want SUBVOL or SNAPSHOT"},
		{"subvol without uuid", AppendCommand(AppendHeader(nil, 1), 1, CmdSubvol, Attr{AttrPath, []byte("x")}, Attr{AttrCTransID, make([]byte, 8)}), 0, "SUBVOL command without UUID"},
		{"snapshot without clone", AppendCommand(AppendHeader(nil, 1), 1, CmdSnapshot, Attr{AttrPath, []byte("x")}, Attr{AttrUUID, make([]byte, 16)}, Attr{AttrCTransID, make([]byte, 8)}), 0, "SNAPSHOT command without CLONE_UUID"},
		{"short uuid", AppendCommand(AppendHeader(nil, 1), 1, CmdSubvol, Attr{AttrPath, []byte("x")}, Attr{AttrUUID, make([]byte, 15)}), 0, "attribute 1 has 15 bytes, want 16"},
		{"two uuids", AppendCommand(AppendHeader(nil, 1), 1, CmdSubvol, Attr{AttrPath, []byte("x")}, Attr{AttrUUID, make([]byte, 16)}, Attr{AttrUUID, bytes.Repeat([]byte{1}, 16)}, Attr{AttrCTransID, make([]byte, 8)}), 0, "SUBVOL: attribute 1 twice"},
		{"two paths", AppendCommand(AppendHeader(nil, 1), 1, CmdSnapshot, Attr{AttrPath, []byte("x")}, Attr{AttrPath, []byte("y")}, Attr{AttrUUID, make([]byte, 16)}, Attr{AttrCTransID, make([]byte, 8)}), 0, "SNAPSHOT: attribute 15 twice"},
		{"two clone ctransids", AppendCommand(AppendHeader(nil, 1), 1, CmdSnapshot, Attr{AttrPath, []byte("x")}, Attr{AttrUUID, make([]byte, 16)}, Attr{AttrCTransID, make([]byte, 8)}, Attr{AttrCloneUUID, make([]byte, 16)}, Attr{AttrCloneCTransID, make([]byte, 8)}, Attr{AttrCloneCTransID, make([]byte, 8)}), 0, "SNAPSHOT: attribute 21 twice"},
		{"second subvol", AppendCommand(AppendCommand(AppendHeader(nil, 1), 1, CmdSubvol, Attr{AttrPath, []byte("x")}, Attr{AttrUUID, make([]byte, 16)}, Attr{AttrCTransID, make([]byte, 8)}), 1, CmdSubvol), 0, "second SUBVOL in one stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := readAll(NewReader(bytes.NewReader(tt.input)), readWithWriteTo)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *sendstream.Error", err)
			}
			complete := len(got)
			if complete > 0 && err != nil && len(got) > tt.n {
				complete = tt.n
			}
			if complete != tt.n {
				t.Errorf("%d streams before the error, want %d", complete, tt.n)
			}
		})
	}
}

// A flipped bit anywhere but in the version field is caught, and no byte
// of the damaged command is handed out.
func TestFlippedByteEverywhere(t *testing.T) {
	orig := readStream(t, "incremental-v1.stream")
	cmdStart := commandOffsets(t, orig)
	for i := range orig {
		if i >= len(Magic) && i < HeaderLen && i != len(Magic) {
			continue // high version bytes: caught as unsupported, tested below
		}
		for _, bit := range []byte{0x01, 0x80} {
			b := append([]byte{}, orig...)
			b[i] ^= bit
			got, _, err := readAll(NewReader(bytes.NewReader(b)), readWithBuf(1))
			if err == nil {
				if i == len(Magic) && b[i] <= MaxVersion {
					continue // version 1 -> 3 changes only how DATA is framed
				}
				t.Fatalf("flip %#x at %d: no error", bit, i)
			}
			// The output must stop before the command holding byte i.
			limit := 0
			for _, off := range cmdStart {
				if off <= i {
					limit = off
				}
			}
			var out int
			for _, g := range got {
				out += len(g)
			}
			if out > limit {
				t.Fatalf("flip %#x at %d: %d bytes handed out, damaged command starts at %d: %v", bit, i, out, limit, err)
			}
		}
	}
}

// commandOffsets returns the offsets of the header and every command.
func commandOffsets(t *testing.T, b []byte) []int {
	offs := []int{0}
	for p := HeaderLen; p < len(b); {
		offs = append(offs, p)
		p += CmdHeaderLen + int(binary.LittleEndian.Uint32(b[p:]))
	}
	return offs
}

// A stream cut anywhere is an error naming the truncation.
func TestTruncatedEverywhere(t *testing.T) {
	orig := readStream(t, "incremental-v1.stream")
	for n := 0; n < len(orig); n++ {
		_, _, err := readAll(NewReader(bytes.NewReader(orig[:n])), readWithBuf(64))
		if err == nil {
			t.Fatalf("cut at %d: no error", n)
		}
		msg := err.Error()
		if !strings.Contains(msg, "truncated") && !strings.Contains(msg, "without END") && !strings.Contains(msg, "empty input") {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
}

func TestReadErrorPassesThrough(t *testing.T) {
	orig := readStream(t, "full-v1.stream")
	cause := errors.New("connection reset")
	src := io.MultiReader(bytes.NewReader(orig[:5000]), iotest.ErrReader(cause))
	_, _, err := readAll(NewReader(src), readWithWriteTo)
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "byte 5000: read: connection reset") {
		t.Fatalf("error %v, want the cause at byte 5000", err)
	}
}

func TestRewritePath(t *testing.T) {
	for _, f := range realStreams {
		orig := readStream(t, f)
		r := NewReader(bytes.NewReader(orig))
		s, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		want := s.Subvol
		if err := s.RewritePath("home/daily/" + want.Path); err != nil {
			t.Fatal(err)
		}
		rewritten, err := io.ReadAll(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RewritePath("x"); err == nil {
			t.Errorf("%s: rewrite after reading: no error", f)
		}
		// The rewritten stream verifies, carries the new path and the same head otherwise.
		r2 := NewReader(bytes.NewReader(rewritten))
		s2, err := r2.Next()
		if err != nil {
			t.Fatalf("%s: rewritten stream: %v", f, err)
		}
		want.Path = "home/daily/" + want.Path
		if s2.Subvol != want {
			t.Errorf("%s: rewritten head %+v, want %+v", f, s2.Subvol, want)
		}
		// Only the first command changed.
		firstLen := CmdHeaderLen + int(binary.LittleEndian.Uint32(orig[HeaderLen:]))
		newFirst := CmdHeaderLen + int(binary.LittleEndian.Uint32(rewritten[HeaderLen:]))
		if !bytes.Equal(orig[HeaderLen+firstLen:], rewritten[HeaderLen+newFirst:]) {
			t.Errorf("%s: bytes after the first command changed", f)
		}
		// Rewriting back restores the original bytes exactly.
		if err := s2.RewritePath(s.Subvol.Path[len("home/daily/"):]); err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(s2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, orig) {
			t.Errorf("%s: rewriting back does not restore the stream", f)
		}
	}
}

func TestWalkDataLen(t *testing.T) {
	tests := []struct {
		file    string
		dataLen int64
		counts  map[uint16]int
	}{
		{"full-v1.stream", 20006, map[uint16]int{CmdSubvol: 1, CmdWrite: 2, CmdEnd: 1}},
		{"nodata-v1.stream", 20006, map[uint16]int{CmdSubvol: 1, CmdUpdateExtent: 2, CmdWrite: 0, CmdEnd: 1}},
		{"full-v2-compressed.stream", 4102, map[uint16]int{CmdSubvol: 1, CmdWrite: 1, CmdEncodedWrite: 1, CmdEnd: 1}},
		{"incremental-v1.stream", 8, map[uint16]int{CmdSnapshot: 1, CmdUnlink: 1, CmdEnd: 1}},
	}
	for _, tt := range tests {
		var n int64
		counts := map[uint16]int{}
		err := Walk(bytes.NewReader(readStream(t, tt.file)), func(s *Stream, c *Command) error {
			n += c.DataLen()
			counts[c.Type]++
			return c.Attrs(func(uint16, []byte) error { return nil })
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if n != tt.dataLen {
			t.Errorf("%s: data length %d, want %d", tt.file, n, tt.dataLen)
		}
		for typ, want := range tt.counts {
			if counts[typ] != want {
				t.Errorf("%s: %d %s commands, want %d", tt.file, counts[typ], CmdName(typ), want)
			}
		}
	}
}

// A v2 DATA attribute has no length and runs to the end of the command.
func TestAttrsV2Data(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 70000) // longer than a u16 length could say
	for _, v := range []uint32{2, 3} {
		b := AppendCommand(nil, v, CmdWrite, Attr{AttrPath, []byte("f")}, Attr{AttrFileOffset, make([]byte, 8)}, Attr{AttrData, data})
		c := Command{Type: CmdWrite, Version: v, Payload: b[CmdHeaderLen:]}
		if got := c.DataLen(); got != int64(len(data)) {
			t.Errorf("v%d: DataLen %d, want %d", v, got, len(data))
		}
		if p, _ := c.Attr(AttrPath); string(p) != "f" {
			t.Errorf("v%d: path %q", v, p)
		}
	}
}

// heldWriter checks WriteTo's promise: the bytes of a Write stay
// unchanged until the next Write begins.
type heldWriter struct {
	t          testing.TB
	out        []byte
	prev, copy []byte
}

func (w *heldWriter) check() {
	if !bytes.Equal(w.prev, w.copy) {
		w.t.Fatalf("bytes of the previous Write (%d) changed before the next one", len(w.prev))
	}
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.check()
	w.out = append(w.out, p...)
	w.prev, w.copy = p, append(w.copy[:0], p...)
	return len(p), nil
}

func readWithHeldWrites(t testing.TB) func(s *Stream) ([]byte, error) {
	return func(s *Stream) ([]byte, error) {
		w := &heldWriter{t: t}
		_, err := s.WriteTo(w)
		w.check()
		return w.out, err
	}
}

// Streams many buffers long, read in chunks that split commands at every
// offset, keep each Write's bytes until the next (the reader alternates
// between two buffers) and come out whole.
func TestWriteToHoldsBytes(t *testing.T) {
	var all [][]byte
	var input []byte
	for i := range 3 {
		b := AppendHeader(nil, 1)
		b = AppendCommand(b, 1, CmdSubvol, Attr{AttrPath, []byte("s")}, Attr{AttrUUID, bytes.Repeat([]byte{byte(i)}, 16)}, Attr{AttrCTransID, make([]byte, 8)})
		for j := range 60 {
			data := bytes.Repeat([]byte{byte(i*60 + j)}, 1000+j*997)
			b = AppendCommand(b, 1, CmdWrite, Attr{AttrPath, []byte("f")}, Attr{AttrData, data})
			if i == 2 && j%20 == 19 {
				// Bigger than one buffer, smaller than the one grown
				// for stream 1's: the reader must not reuse a buffer
				// the writer may still be using to grow.
				b = AppendCommand(b, 1, CmdWrite, Attr{AttrPath, []byte("h")}, Attr{AttrData, bytes.Repeat([]byte{byte(j)}, bufSize+bufSize/2+j)})
			}
		}
		if i == 1 {
			b = AppendCommand(b, 1, CmdWrite, Attr{AttrPath, []byte("g")}, Attr{AttrData, bytes.Repeat([]byte{7}, 2*bufSize+5)})
		}
		b = AppendCommand(b, 1, CmdEnd)
		all = append(all, b)
		input = append(input, b...)
	}
	for _, size := range []int{bufSize, 1 << 20} {
		for _, n := range []int{len(input), 1 << 20, 65536, 40000, 4093} {
			checkHeldStreams(t, fmt.Sprintf("buffer %d, reads of %d", size, n), &chunkReader{b: input, n: n}, size, all)
		}
	}
}

// checkHeldStreams reads src through a two-buffer Reader of size whose
// writer keeps each Write's bytes until the next, and checks that it
// yields want, stream for stream.
func checkHeldStreams(t *testing.T, what string, src io.Reader, size int, want [][]byte) {
	t.Helper()
	got, _, err := readAll(NewReaderSize(src, size), readWithHeldWrites(t))
	if err != nil || len(got) != len(want) {
		t.Fatalf("%s: err %v, %d streams", what, err, len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: stream %d differs", what, i)
		}
	}
}

// Commands of random sizes up to several buffers, read in random chunks:
// the reader grows and swaps its buffers in every order, and still keeps
// each Write's bytes until the next one.
func TestWriteToHoldsBytesRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var all [][]byte
	var input []byte
	for i := range 8 {
		b := AppendHeader(nil, 1)
		b = AppendCommand(b, 1, CmdSubvol, Attr{AttrPath, []byte("s")}, Attr{AttrUUID, bytes.Repeat([]byte{byte(i)}, 16)}, Attr{AttrCTransID, make([]byte, 8)})
		for j := range 40 {
			n := rng.Intn(60000)
			if rng.Intn(6) == 0 {
				n = rng.Intn(4 * bufSize)
			}
			b = AppendCommand(b, 1, CmdWrite, Attr{AttrPath, []byte("f")}, Attr{AttrData, bytes.Repeat([]byte{byte(i*40 + j)}, n)})
		}
		b = AppendCommand(b, 1, CmdEnd)
		all = append(all, b)
		input = append(input, b...)
	}
	for round := range 20 {
		src := &randomChunkReader{b: input, rng: rand.New(rand.NewSource(int64(round))), max: []int{4096, 65536, 1 << 20, 3 << 20}[round%4]}
		checkHeldStreams(t, fmt.Sprintf("round %d", round), src, []int{bufSize, 1 << 20}[round%2], all)
	}
}

type randomChunkReader struct {
	b   []byte
	rng *rand.Rand
	max int
}

func (c *randomChunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.rng.Intn(c.max))], c.b)
	c.b = c.b[n:]
	return n, nil
}

// A command bigger than the reader's buffer (allowed up to MaxCommand)
// still passes through whole.
func TestCommandLargerThanBuffer(t *testing.T) {
	b := AppendHeader(nil, 2)
	b = AppendCommand(b, 2, CmdSubvol, Attr{AttrPath, []byte("big")}, Attr{AttrUUID, bytes.Repeat([]byte{1}, 16)}, Attr{AttrCTransID, make([]byte, 8)})
	b = AppendCommand(b, 2, CmdWrite, Attr{AttrPath, []byte("f")}, Attr{AttrData, bytes.Repeat([]byte{9}, 3*bufSize)})
	b = AppendCommand(b, 2, CmdEnd)
	got, _, err := readAll(NewReader(&chunkReader{b: b, n: 65536}), readWithWriteTo)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], b) {
		t.Fatalf("err %v, %d streams", err, len(got))
	}
}

func FuzzReader(f *testing.F) {
	for _, name := range realStreams {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 8192 {
			f.Add(b)
		}
	}
	f.Add(AppendCommand(AppendHeader(nil, 2), 2, CmdSubvol, Attr{AttrData, []byte("x")}))
	for _, b := range resumedSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		var out []byte
		for {
			s, err := r.Next()
			if err != nil {
				if err == io.EOF {
					// Success: the streams are exactly the input.
					if !bytes.Equal(out, in) {
						t.Fatalf("output differs from input")
					}
				}
				return
			}
			b, err := io.ReadAll(s)
			out = append(out, b...)
			if !bytes.HasPrefix(in, out) {
				t.Fatalf("output is not a prefix of the input")
			}
			if err != nil {
				return
			}
		}
	})
}

func FuzzWalk(f *testing.F) {
	for _, name := range realStreams {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil && len(b) < 8192 {
			f.Add(b)
		}
	}
	for _, b := range resumedSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		Walk(bytes.NewReader(in), func(s *Stream, c *Command) error {
			c.DataLen()
			return c.Attrs(func(uint16, []byte) error { return nil })
		})
	})
}

func TestReadHead(t *testing.T) {
	for _, f := range realStreams {
		orig := readStream(t, f)
		src := bytes.NewReader(orig)
		head, version, h, err := ReadHead(src)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		firstLen := CmdHeaderLen + int(binary.LittleEndian.Uint32(orig[HeaderLen:]))
		if !bytes.Equal(head, orig[:HeaderLen+firstLen]) || src.Len() != len(orig)-len(head) {
			t.Fatalf("%s: read %d bytes of head, want exactly %d", f, len(head), HeaderLen+firstLen)
		}
		s, _ := NewReader(bytes.NewReader(orig)).Next()
		if h != s.Subvol || version != s.Version {
			t.Errorf("%s: head %+v v%d, want %+v v%d", f, h, version, s.Subvol, s.Version)
		}
		for n := 0; n < len(head); n++ {
			if _, _, _, err := ReadHead(bytes.NewReader(orig[:n])); err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("%s: cut at %d: %v", f, n, err)
			}
		}
		bad := append([]byte{}, head...)
		bad[len(bad)-1] ^= 1
		if _, _, _, err := ReadHead(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "crc mismatch") {
			t.Errorf("%s: corrupt head: %v", f, err)
		}
	}
}

// Commands verified before a fault are handed out before the error.
func TestVerifiedBytesBeforeError(t *testing.T) {
	orig := readStream(t, "full-v1.stream")
	offs := commandOffsets(t, orig)
	bad := append([]byte{}, orig...)
	last := offs[len(offs)-1] // END
	bad[last+7] ^= 1          // its crc
	for name, rd := range map[string]func(*Stream) ([]byte, error){"read": readWithBuf(4096), "writeto": readWithWriteTo} {
		// Small reads, so that Next does not already see the END.
		got, _, err := readAll(NewReader(&chunkReader{b: bad, n: 4096}), rd)
		if err == nil || !strings.Contains(err.Error(), "crc mismatch in END") {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != 1 || !bytes.Equal(got[0], orig[:last]) {
			t.Errorf("%s: %d bytes before the error, want all %d before END", name, len(got[0]), last)
		}
	}
}

// FuzzCommands builds streams with valid CRCs around fuzzed command
// types and payloads, so that attribute parsing and the head checks get
// exercised past the CRC gate.
func FuzzCommands(f *testing.F) {
	f.Add(byte(1), []byte{1, 0, 15, 0, 1, 0, 'x'}, []byte{15, 0, 1, 0, 'f', 19, 0, 3, 0, 'a', 'b', 'c'})
	f.Add(byte(2), []byte{15, 0, 1, 0, 'x', 1, 0, 16, 0}, []byte{19, 0, 'd', 'a', 't', 'a'})
	// Resumed (version byte 4 and up): the body is the RESUME's payload too.
	f.Add(byte(5), []byte{15, 0, 1, 0, 'x', 1, 0, 16, 0}, append([]byte{18, 0, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x53, 0x42, 32, 0}, make([]byte, 32)...))
	f.Fuzz(func(t *testing.T, version byte, head, body []byte) {
		v := uint32(version%4) + 1
		resumed := version%8 >= 4
		b := AppendHeader(nil, v)
		if resumed {
			b = AppendHeader(nil, v|ResumeFlag)
		}
		b = appendRaw(b, CmdSubvol, head)
		if resumed {
			b = appendRaw(b, CmdResume, body)
		}
		b = appendRaw(b, CmdWrite, body)
		b = appendRaw(b, CmdUpdateExtent, body)
		b = appendRaw(b, CmdEnd, nil)
		r := NewReader(bytes.NewReader(b))
		s, err := r.Next()
		if err != nil {
			return
		}
		if s.Subvol.Path == "" {
			t.Fatal("head accepted without a path")
		}
		out, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("valid stream not passed through: %v", err)
		}
		Walk(bytes.NewReader(b), func(s *Stream, c *Command) error {
			c.DataLen()
			c.Attr(AttrPath)
			return c.Attrs(func(uint16, []byte) error { return nil })
		})
	})
}

// appendRaw appends a command with a raw payload and a valid CRC.
func appendRaw(b []byte, typ uint16, payload []byte) []byte {
	at := len(b)
	b = append(b, make([]byte, CmdHeaderLen)...)
	b = append(b, payload...)
	cmd := b[at:]
	binary.LittleEndian.PutUint32(cmd, uint32(len(payload)))
	binary.LittleEndian.PutUint16(cmd[4:], typ)
	binary.LittleEndian.PutUint32(cmd[6:], commandCRC(cmd))
	return b
}
