package sendstream

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verifyPieces feeds in to a Verifier in pieces cut at random (seeded)
// places, as the buffers of ranged GETs cut a stream.
func verifyPieces(in []byte, seed uint64) (*Verifier, error) {
	v := NewVerifier()
	rng := rand.New(rand.NewPCG(seed, 1))
	for p := in; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(3)*rng.IntN(1<<uint(rng.IntN(17))+1))
		if _, err := v.Write(p[:n]); err != nil {
			return v, err
		}
		p = p[n:]
	}
	return v, v.Close()
}

// checkAgainstReader: the Verifier accepts exactly what Reader takes for
// one whole stream, passes no byte Reader would hold back, and never END.
func checkAgainstReader(t *testing.T, in []byte, seed uint64) {
	t.Helper()
	v, verr := verifyPieces(in, seed)
	r := NewReader(bytes.NewReader(in))
	// Next verifies what it read beyond the first command too: a fault
	// there hands out nothing, so only after it the counts compare.
	out := int64(len(in))
	var head *Head
	s, rerr := r.Next()
	if rerr == nil {
		head = &s.Subvol
		var n int64
		n, rerr = io.Copy(io.Discard, s)
		out = n
		if rerr == nil && s.Resume != nil {
			rerr = io.ErrUnexpectedEOF
		}
		if rerr == nil {
			if _, err := r.Next(); err != io.EOF {
				rerr = io.ErrShortBuffer
			}
		}
	}
	if (verr == nil) != (rerr == nil) {
		t.Fatalf("seed %d: verifier says %v, reader %v", seed, verr, rerr)
	}
	if v.Verified() > out {
		t.Fatalf("seed %d: verifier passes %d bytes, reader handed out %d (%v)", seed, v.Verified(), out, verr)
	}
	if verr != nil {
		return
	}
	if v.Size() != int64(len(in)) || v.Verified() != int64(len(in))-CmdHeaderLen || *v.Head() != *head {
		t.Fatalf("seed %d: size %d verified %d head %+v, want %d, all but END, %+v", seed, v.Size(), v.Verified(), v.Head(), len(in), head)
	}
}

func TestVerifierRealStreams(t *testing.T) {
	for _, name := range realStreams {
		b := readStream(t, name)
		for seed := range uint64(20) {
			checkAgainstReader(t, b, seed)
		}
	}
}

// Every flipped byte is caught before the command holding it passes;
// every cut is an error.
func TestVerifierFlippedAndCut(t *testing.T) {
	orig := readStream(t, "incremental-v1.stream")
	cmdStart := commandOffsets(t, orig)
	for i := range orig {
		b := append([]byte{}, orig...)
		b[i] ^= 0x80
		checkAgainstReader(t, b, uint64(i))
		limit := 0
		for _, off := range cmdStart {
			if off <= i {
				limit = off
			}
		}
		if v, _ := verifyPieces(b, uint64(i)); v.Verified() > int64(limit) {
			t.Fatalf("flip at %d: %d bytes verified, damaged command starts at %d", i, v.Verified(), limit)
		}
		v, err := verifyPieces(orig[:i], uint64(i))
		if err == nil {
			t.Fatalf("cut at %d: no error", i)
		}
		if msg := err.Error(); !strings.Contains(msg, "truncated") && !strings.Contains(msg, "without END") && !strings.Contains(msg, "empty input") {
			t.Fatalf("cut at %d: %v", i, err)
		}
		if v.Verified() > int64(i) {
			t.Fatalf("cut at %d: %d verified", i, v.Verified())
		}
	}
}

func TestVerifierRefuses(t *testing.T) {
	one := readStream(t, "full-v1.stream")
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"two streams", append(append([]byte{}, one...), one...), "after the stream's END"},
		{"trailing byte", append(append([]byte{}, one...), 0), "after the stream's END"},
		{"resumed", resumedSeeds(t)[0], "resumed stream"},
		{"empty", nil, "empty input"},
	} {
		if _, err := verifyPieces(c.in, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzVerifier(f *testing.F) {
	for _, name := range realStreams {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 8192 {
			f.Add(b, uint64(0))
		}
	}
	f.Add(AppendCommand(AppendHeader(nil, 2), 2, CmdSubvol, Attr{AttrData, []byte("x")}), uint64(3))
	for _, b := range resumedSeeds(f) {
		f.Add(b, uint64(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		checkAgainstReader(t, in, seed)
	})
}
