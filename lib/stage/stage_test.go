package stage

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
)

func TestRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+17)
	rand.New(rand.NewSource(1)).Read(data[:1<<20]) // part random, part compressible
	filter, _ := NewFilter("gzip -1")
	tests := []struct {
		name    string
		enc     Encoding
		inverse []string
		stages  string
	}{
		{"raw", Encoding{}, nil, ""},
		{"zstd", Encoding{Zstd: true, ZstdLevel: 3}, nil, "zstd"},
		{"zstd19", Encoding{Zstd: true, ZstdLevel: 19}, nil, "zstd"},
		{"age", Encoding{Recipients: []age.Recipient{id.Recipient()}}, nil, "age"},
		{"all", Encoding{Zstd: true, Recipients: []age.Recipient{id.Recipient()}, Filters: []Filter{filter, {Name: "cat", Cmd: "cat"}}},
			[]string{"gzip -dc", "cat"}, "zstd.age.f-gzip.f-cat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(tc.enc.Stages(), "."); got != tc.stages {
				t.Fatalf("stages %q, want %q", got, tc.stages)
			}
			var stored bytes.Buffer
			e, err := NewEncoder(&stored, tc.enc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(e, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.enc.Zstd && stored.Len() >= len(data) {
				t.Errorf("zstd did not compress: %d >= %d", stored.Len(), len(data))
			}
			d, err := NewDecoder(&stored, tc.enc.Stages(), Decoding{Identities: []age.Identity{id}, Filters: tc.inverse})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(d)
			if err != nil {
				t.Fatal(err)
			}
			d.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("round trip differs: %d bytes back of %d", len(got), len(data))
			}
		})
	}
}

func TestDecodeFaults(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	encode := func(e Encoding, data []byte) []byte {
		var b bytes.Buffer
		w, err := NewEncoder(&b, e)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	data := bytes.Repeat([]byte("btrfs-stream"), 100000)
	z := encode(Encoding{Zstd: true}, data)
	a := encode(Encoding{Recipients: []age.Recipient{id.Recipient()}}, data)
	readAll := func(src []byte, stages []string, d Decoding) error {
		r, err := NewDecoder(bytes.NewReader(src), stages, d)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(io.Discard, r)
		return err
	}
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 0x40; return c }
	cases := []struct {
		name string
		err  error
	}{
		{"zstd truncated", readAll(z[:len(z)/2], []string{"zstd"}, Decoding{})},
		{"zstd trailing garbage", readAll(append(append([]byte(nil), z...), "junk"...), []string{"zstd"}, Decoding{})},
		{"age wrong identity", readAll(a, []string{"age"}, Decoding{Identities: []age.Identity{other}})},
		{"age no identity", readAll(a, []string{"age"}, Decoding{})},
		{"age flipped byte", readAll(flip(a, len(a)-100), []string{"age"}, Decoding{Identities: []age.Identity{id}})},
		{"age truncated", readAll(a[:len(a)-10], []string{"age"}, Decoding{Identities: []age.Identity{id}})},
		{"filter fails", readAll(data, []string{"f-x"}, Decoding{Filters: []string{"cat >/dev/null; exit 3"}})},
		{"filter count", readAll(data, []string{"f-x"}, Decoding{})},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if err := readAll(a, []string{"age"}, Decoding{Identities: []age.Identity{other}}); !errors.Is(err, ErrWrongIdentity) {
		t.Errorf("wrong identity: %v, want ErrWrongIdentity", err)
	}
}

func TestEncodeFilterFails(t *testing.T) {
	var b bytes.Buffer
	e, err := NewEncoder(&b, Encoding{Filters: []Filter{{Name: "bad", Cmd: "head -c 10; exit 4"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, werr := e.Write(make([]byte, 8<<20))
	cerr := e.Close()
	if werr == nil && cerr == nil {
		t.Fatal("a failing filter went unnoticed")
	}
	if err := errors.Join(werr, cerr); !strings.Contains(err.Error(), "filter bad: exit status 4") {
		t.Errorf("error %q does not name the filter's exit status", err)
	}
}

func TestNewFilterName(t *testing.T) {
	for cmd, want := range map[string]string{
		"gpg -e -r me":            "gpg",
		"/usr/bin/xz -T0":         "xz",
		"LC_ALL=C openssl enc -e": "openssl",
		"my_tool.sh":              "my-tool-sh",
		"  Age  ":                 "age",
		"'quoted'":                "quoted",
		"!!!":                     "cmd",
	} {
		f, err := NewFilter(cmd)
		if err != nil || f.Name != want {
			t.Errorf("NewFilter(%q) = %q, %v; want %q", cmd, f.Name, err, want)
		}
	}
	if _, err := NewFilter("  "); err == nil {
		t.Error("empty filter accepted")
	}
}

// zstd output depends on the bytes alone, not on how they were written
// (a resumed upload keeps the parts that match), also when the stream is
// compressed in sections on several cores; and it compresses literals
// without matches, as zstd -3 does.
func TestZstdReproducible(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	words := []string{"snapshot ", "btrfs ", "send ", "receive ", "object ", "store "}
	var b bytes.Buffer
	for b.Len() < 9<<20 {
		if rng.Intn(50) == 0 {
			chunk := make([]byte, 30000)
			rng.Read(chunk)
			b.Write(chunk)
		}
		b.WriteString(words[rng.Intn(len(words))])
	}
	text := make([]byte, 1<<20) // no repeats, 6 bits a byte: entropy coding only
	for i := range text {
		text[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rng.Intn(64)]
	}
	b.Write(text)
	data := b.Bytes()
	for _, level := range []int{1, 3, 7} {
		var first []byte
		for _, chunk := range []int{len(data), 1 << 20, 65536, 4093} {
			var out bytes.Buffer
			e, err := NewEncoder(&out, Encoding{Zstd: true, ZstdLevel: level})
			if err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; p = p[min(chunk, len(p)):] {
				if _, err := e.Write(p[:min(chunk, len(p))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = out.Bytes()
				continue
			}
			if !bytes.Equal(out.Bytes(), first) {
				t.Errorf("level %d: writes of %d give other bytes than one write", level, chunk)
			}
		}
		var only bytes.Buffer
		e, _ := NewEncoder(&only, Encoding{Zstd: true, ZstdLevel: level})
		e.Write(text)
		e.Close()
		if only.Len() > len(text)*8/10 {
			t.Errorf("level %d: text without repeats stored at %d of %d bytes", level, only.Len(), len(text))
		}
	}
}

// lateWriter counts the writes that reach it after it was told the
// encoder was aborted; each write is slow, so that the stages have
// output pending when Abort is called.
type lateWriter struct {
	mu      sync.Mutex
	aborted bool
	late    int
}

func (w *lateWriter) Write(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted {
		w.late++
	}
	return len(p), nil
}

// TestEncoderAbortStopsWriting: when Abort returns, no stage writes to the
// writer underneath any more (the zstd encoder writes from goroutines of
// its own; a filter from its output copier), so the caller may hand back
// the buffers of what it aborted.
func TestEncoderAbortStopsWriting(t *testing.T) {
	data := make([]byte, 16<<20)
	rand.New(rand.NewSource(2)).Read(data)
	cat, _ := NewFilter("cat")
	for _, c := range []struct {
		name string
		enc  Encoding
	}{
		{"zstd", Encoding{Zstd: true}},
		{"zstd19", Encoding{Zstd: true, ZstdLevel: 19}},
		{"zstd+filter", Encoding{Zstd: true, Filters: []Filter{cat}}},
		{"filter", Encoding{Filters: []Filter{cat}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &lateWriter{}
			enc, err := NewEncoder(w, c.enc)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(data); off += 1 << 20 {
				if _, err := enc.Write(data[off : off+1<<20]); err != nil {
					t.Fatal(err)
				}
			}
			enc.Abort()
			w.mu.Lock()
			w.aborted = true
			w.mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.late > 0 {
				t.Errorf("%d writes after Abort returned", w.late)
			}
			if _, err := enc.Write(data[:10]); err == nil {
				t.Error("Write after Abort succeeded")
			}
		})
	}
}

// failingWriter fails every write, as an upload cancelled by an interrupt.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("upload cancelled") }

// TestFilterNextFails: when the writer after a filter fails, writing into
// the filter fails too, soon, with the writer's error (a cancelled upload
// stays recognisable as an interrupt), not as the filter's death by
// SIGPIPE.
func TestFilterNextFails(t *testing.T) {
	cat, _ := NewFilter("cat")
	enc, err := NewEncoder(failingWriter{}, Encoding{Zstd: true, Filters: []Filter{cat}})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(3)).Read(data)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 64; i++ {
			if _, err := enc.Write(data); err != nil {
				done <- err
				return
			}
		}
		done <- enc.Close()
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "upload cancelled") {
			t.Errorf("error %v, want the writer's", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("writing into a filter whose output cannot be written hangs")
	}
	enc.Abort()
}
