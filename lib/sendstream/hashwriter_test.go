package sendstream

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"testing"
	"time"
)

// slowWriter keeps what it is given, slowly, so that the HashWriter's
// goroutine is still on a chunk while the reader reads the next.
type slowWriter struct {
	out  bytes.Buffer
	fail int // fail the write after this many bytes (0: never)
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(50 * time.Microsecond)
	// Read p twice, apart in time: a reader overwriting it meanwhile
	// shows as a difference (and to the race detector).
	first := append([]byte(nil), p...)
	time.Sleep(50 * time.Microsecond)
	if !bytes.Equal(first, p) {
		return 0, errors.New("bytes changed under the writer")
	}
	if w.fail > 0 && w.out.Len()+len(p) > w.fail {
		return 0, errors.New("disk full")
	}
	return w.out.Write(p)
}

func testStreams(rng *rand.Rand, n int) ([]byte, [][]byte) {
	var all []byte
	var streams [][]byte
	for i := range n {
		b := AppendHeader(nil, 1)
		b = AppendCommand(b, 1, CmdSubvol, Attr{Type: AttrPath, Value: []byte("s")},
			Attr{Type: AttrUUID, Value: bytes.Repeat([]byte{byte(i)}, 16)}, Attr{Type: AttrCTransID, Value: make([]byte, 8)})
		for range 100 {
			data := make([]byte, rng.Intn(200000))
			rng.Read(data)
			b = AppendCommand(b, 1, CmdWrite, Attr{Type: AttrPath, Value: []byte("f")}, Attr{Type: AttrData, Value: data})
		}
		b = AppendCommand(b, 1, CmdEnd)
		streams = append(streams, b)
		all = append(all, b...)
	}
	return all, streams
}

// The HashWriter passes every stream on whole and hashes it, while the
// reader goes on reading into its other buffer.
func TestHashWriterPipeline(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	all, streams := testStreams(rng, 3)
	rd := NewReaderSize(iotestChunks(all, rng), 1<<20)
	for i := 0; ; i++ {
		s, err := rd.Next()
		if err == io.EOF {
			if i != len(streams) {
				t.Fatalf("%d streams, want %d", i, len(streams))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var out slowWriter
		h := sha256.New()
		w := NewHashWriter(h, &out)
		_, err = s.WriteTo(w)
		if werr := w.Close(); werr != nil || err != nil {
			t.Fatalf("stream %d: %v, %v", i, err, werr)
		}
		want := sha256.Sum256(streams[i])
		if !bytes.Equal(out.out.Bytes(), streams[i]) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("stream %d: %d bytes out of %d, or another digest", i, out.out.Len(), len(streams[i]))
		}
	}
}

// A failing writer stops the stream with its error, also when it fails in
// the background.
func TestHashWriterError(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	all, _ := testStreams(rng, 1)
	rd := NewReaderSize(bytes.NewReader(all), 1<<20)
	s, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	out := slowWriter{fail: 5 << 20}
	w := NewHashWriter(sha256.New(), &out)
	_, err = s.WriteTo(w)
	werr := w.Close()
	if werr == nil || werr.Error() != "disk full" {
		t.Fatalf("WriteTo: %v, Close: %v; want disk full", err, werr)
	}
	if out.out.Len() > 5<<20 {
		t.Fatalf("%d bytes written after the failure", out.out.Len())
	}
}

func iotestChunks(b []byte, rng *rand.Rand) io.Reader {
	return &chunks{b: b, rng: rng}
}

type chunks struct {
	b   []byte
	rng *rand.Rand
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.rng.Intn(3<<20))], c.b)
	c.b = c.b[n:]
	return n, nil
}
