package stage

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// encode runs data through an encoder in writes of chunk bytes.
func encode(t *testing.T, e Encoding, data []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := NewEncoder(&out, e)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; p = p[min(chunk, len(p)):] {
		if _, err := enc.Write(p[:min(chunk, len(p))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestAgeKeyReproducible: under one AgeKey the encrypted bytes depend on
// the plaintext alone (not on how it is written), age.Decrypt opens them,
// at every size around the 64 KiB chunk boundaries (the last chunk is
// flagged, full or not, and empty only for an empty payload); a fresh key
// gives other bytes; a changed byte anywhere in a chunk fails decryption.
func TestAgeKeyReproducible(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	rs := []age.Recipient{other.Recipient(), id.Recipient()}
	k, err := NewAgeKey(rs)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3*ageChunkSize+5)
	rand.New(rand.NewSource(3)).Read(data)
	for _, n := range []int{0, 1, ageChunkSize - 1, ageChunkSize, ageChunkSize + 1, 2 * ageChunkSize, len(data)} {
		a := encode(t, Encoding{Recipients: rs, AgeKey: &k}, data[:n], 1<<20)
		b := encode(t, Encoding{Recipients: rs, AgeKey: &k}, data[:n], 4093)
		if !bytes.Equal(a, b) {
			t.Fatalf("%d bytes: other bytes when written in other sizes", n)
		}
		r, err := age.Decrypt(bytes.NewReader(a), id)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data[:n]) {
			t.Fatalf("%d bytes: decrypted %d bytes, %v", n, len(got), err)
		}
	}
	fresh := encode(t, Encoding{Recipients: rs}, data, 1<<20)
	same := encode(t, Encoding{Recipients: rs, AgeKey: &k}, data, 1<<20)
	if bytes.Equal(fresh, same) {
		t.Error("a fresh key gives the same bytes")
	}
	for _, off := range []int{len(k.Header) + 10, len(k.Header) + ageChunkSize + 16 + 100, len(same) - 1} {
		bad := bytes.Clone(same)
		bad[off] ^= 1
		r, err := age.Decrypt(bytes.NewReader(bad), id)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if err == nil {
			t.Errorf("byte %d changed: decrypted", off)
		}
	}
	// A truncated object (last chunk dropped) fails too.
	r, err := age.Decrypt(bytes.NewReader(same[:len(same)-21]), id)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Error("truncated: decrypted")
	}
}

// TestAgeKeyStockCLI: the stock age command decrypts what the stage
// writes under a kept key, and refuses a tampered chunk.
func TestAgeKeyStockCLI(t *testing.T) {
	if _, err := exec.LookPath("age"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("age command not found")
		}
		t.Skip("age command not found")
	}
	id, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := []age.Recipient{id.Recipient()}
	k, _ := NewAgeKey(rs)
	data := make([]byte, 5*ageChunkSize)
	rand.New(rand.NewSource(4)).Read(data[:ageChunkSize])
	enc := encode(t, Encoding{Zstd: true, Recipients: rs, AgeKey: &k}, data, 8191)
	cmd := exec.Command("sh", "-c", `age -d -i "$1" | zstd -d`, "sh", keyFile)
	cmd.Stdin = bytes.NewReader(enc)
	got, err := cmd.Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("age -d | zstd -d: %d bytes, %v", len(got), err)
	}
	bad := bytes.Clone(enc)
	bad[len(k.Header)+3] ^= 0x40
	cmd = exec.Command("age", "-d", "-i", keyFile)
	cmd.Stdin = bytes.NewReader(bad)
	if out, err := cmd.Output(); err == nil {
		t.Errorf("age -d took a tampered chunk (%d bytes out)", len(out))
	}
}

// TestZstdSameOnAnyCores: the compressed bytes do not depend on the
// number of cores the encoder has, so a rerun elsewhere re-encodes the
// parts of an interrupted upload to the same bytes.
func TestZstdSameOnAnyCores(t *testing.T) {
	data := make([]byte, 6<<20)
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < len(data); i += 1 << 16 {
		if rng.Intn(2) == 0 {
			rng.Read(data[i : i+1<<16])
		}
	}
	for _, level := range []int{1, 3, 9} {
		var first []byte
		for _, procs := range []int{1, 2, 3, 8} {
			var out bytes.Buffer
			zw, err := zstd.NewWriter(&out, zstdOptions(level, procs)...)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(data)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = out.Bytes()
			} else if !bytes.Equal(first, out.Bytes()) {
				t.Errorf("level %d: %d cores give other bytes than one", level, procs)
			}
		}
	}
}

// FuzzAgeKey: a kept key read back is checked before use; whatever it
// holds, the writer either refuses it or writes without panicking.
func FuzzAgeKey(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	k, _ := NewAgeKey([]age.Recipient{id.Recipient()})
	f.Add(k.Header, k.FileKey)
	f.Add([]byte(ageMagic+"--- x\n0123456789abcdef"), make([]byte, 16))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, hdr, key []byte) {
		w, err := newAgeWriter(io.Discard, AgeKey{Header: hdr, FileKey: key})
		if err != nil {
			return
		}
		w.Write([]byte("data"))
		w.Close()
	})
}
