package bss3get

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
)

// testStream is a whole stream of about size bytes: SUBVOL, WRITEs of
// 60000 bytes, END.
func testStream(size int) []byte {
	b := sendstream.AppendHeader(nil, 1)
	b = sendstream.AppendCommand(b, 1, sendstream.CmdSubvol,
		sendstream.Attr{Type: sendstream.AttrPath, Value: []byte("s1")},
		sendstream.Attr{Type: sendstream.AttrUUID, Value: bytes.Repeat([]byte{7}, 16)},
		sendstream.Attr{Type: sendstream.AttrCTransID, Value: binary.LittleEndian.AppendUint64(nil, 5)})
	data := make([]byte, 60000)
	for off := 0; len(b) < size; off += len(data) {
		for i := range data {
			data[i] = byte(off + i*7)
		}
		b = sendstream.AppendCommand(b, 1, sendstream.CmdWrite,
			sendstream.Attr{Type: sendstream.AttrPath, Value: []byte("f")},
			sendstream.Attr{Type: sendstream.AttrFileOffset, Value: binary.LittleEndian.AppendUint64(nil, uint64(off))},
			sendstream.Attr{Type: sendstream.AttrData, Value: data})
	}
	return sendstream.AppendCommand(b, 1, sendstream.CmdEnd)
}

// fakeChunks hands out a stream in chunks, as ranged GETs bring it: every
// chunk in its own buffer, which Release overwrites, so that any use of a
// released buffer shows in the output. failAt makes that chunk fail, as a
// server error in a middle part does while later parts already arrived.
type fakeChunks struct {
	chunks   [][]byte
	next     int
	failAt   int
	mu       sync.Mutex
	out      int // handed out, not released
	released int
}

func newFakeChunks(stream []byte, size int) *fakeChunks {
	f := &fakeChunks{failAt: -1}
	for p := stream; len(p) > 0; {
		n := min(size, len(p))
		f.chunks = append(f.chunks, append([]byte(nil), p[:n]...))
		p = p[n:]
	}
	return f
}

var errServer = errors.New("s3://b/k: GET: 500 internal error")

func (f *fakeChunks) NextChunk() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == f.failAt {
		return nil, errServer
	}
	if f.next == len(f.chunks) {
		return nil, io.EOF
	}
	f.next++
	f.out++
	return f.chunks[f.next-1], nil
}

func (f *fakeChunks) Release(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out--
	f.released++
	for i := range b {
		b[i] = 0xaa
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		return w.n, errors.New("broken pipe")
	}
	w.n -= len(p)
	return len(p), nil
}

func runPipeline(t *testing.T, src *fakeChunks, stream []byte, wrongSum bool) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	want := sha256.Sum256(stream)
	p := &pipeline{src: src, w: &out,
		checkHead: func(h *sendstream.Head) error {
			if h.Path != "s1" {
				t.Errorf("head %+v", h)
			}
			return nil
		},
		checkEnd: func(r result) error {
			if wrongSum || !bytes.Equal(r.sum, want[:]) || r.size != int64(len(stream)) {
				return errors.New("does not match")
			}
			return nil
		}}
	err := p.run()
	if src.out != 0 {
		t.Errorf("%d chunks not released", src.out)
	}
	return out.Bytes(), err
}

func TestPipeline(t *testing.T) {
	stream := testStream(3 << 20)
	endAt := len(stream) - sendstream.CmdHeaderLen
	for _, size := range []int{1 << 20, 1<<20 + 3, 600000, 7, len(stream)} {
		got, err := runPipeline(t, newFakeChunks(stream, size), stream, false)
		if err != nil || !bytes.Equal(got, stream) {
			t.Fatalf("chunks of %d: %v, %d of %d bytes, equal %v", size, err, len(got), len(stream), bytes.Equal(got, stream))
		}
	}
	cases := []struct {
		name  string
		setup func() (*fakeChunks, []byte)
		want  string
		// limit is how many bytes may pass at most.
		limit int
	}{
		{"corrupt byte in the last part", func() (*fakeChunks, []byte) {
			f := newFakeChunks(stream, 1<<20)
			last := f.chunks[len(f.chunks)-1]
			last[len(last)-100] ^= 1
			return f, stream
		}, "crc mismatch", endAt - 60000},
		{"short object", func() (*fakeChunks, []byte) {
			return newFakeChunks(stream[:len(stream)-4000], 1<<20), stream
		}, "truncated", endAt - 4000},
		{"END cut", func() (*fakeChunks, []byte) {
			return newFakeChunks(stream[:len(stream)-1], 1<<20), stream
		}, "truncated", endAt},
		{"server error in a middle part", func() (*fakeChunks, []byte) {
			f := newFakeChunks(stream, 1<<20)
			f.failAt = 1
			return f, stream
		}, errServer.Error(), 1 << 20},
		{"trailing bytes", func() (*fakeChunks, []byte) {
			s := append(append([]byte(nil), stream...), 0)
			return newFakeChunks(s, 1<<20), s
		}, "after the stream's END", endAt},
		{"wrong digest", func() (*fakeChunks, []byte) {
			return newFakeChunks(stream, 1<<20), nil
		}, "does not match", endAt},
	}
	for _, c := range cases {
		f, s := c.setup()
		got, err := runPipeline(t, f, s, s == nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if len(got) > c.limit || !bytes.Equal(got, stream[:len(got)]) {
			t.Errorf("%s: %d bytes written (at most %d), a prefix of the stream: %v", c.name, len(got), c.limit, bytes.Equal(got, stream[:len(got)]))
		}
		if c.name == "wrong digest" && len(got) != endAt {
			t.Errorf("wrong digest: %d bytes written, want all but END (%d)", len(got), endAt)
		}
	}
}

func TestPipelineWriteFails(t *testing.T) {
	stream := testStream(3 << 20)
	f := newFakeChunks(stream, 1<<20)
	p := &pipeline{src: f, w: &failWriter{n: 1 << 20},
		checkHead: func(*sendstream.Head) error { return nil },
		checkEnd:  func(result) error { return nil }}
	var we errWrite
	if err := p.run(); !errors.As(err, &we) {
		t.Fatalf("%v, want a write error", err)
	}
	if f.out != 0 {
		t.Errorf("%d chunks not released", f.out)
	}
}

// A decoder's output goes through readerChunks in pieces of any size.
func TestReaderChunks(t *testing.T) {
	stream := testStream(3 << 20)
	var out bytes.Buffer
	p := &pipeline{src: newReaderChunks(&oddReader{b: stream}, 1<<20), w: &out,
		checkHead: func(*sendstream.Head) error { return nil },
		checkEnd:  func(result) error { return nil }}
	if err := p.run(); err != nil || !bytes.Equal(out.Bytes(), stream) {
		t.Fatalf("%v, equal %v", err, bytes.Equal(out.Bytes(), stream))
	}
}

type oddReader struct{ b []byte }

func (r *oddReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 12345)], r.b)
	r.b = r.b[n:]
	return n, nil
}
