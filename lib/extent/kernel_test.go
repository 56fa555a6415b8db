package extent

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// kernelExtents are extents as a btrfs send --compressed-data carried
// them (kernel 6.18), with the SHA-256 of what the kernel read back.
var kernelExtents = []struct {
	file        string
	compression uint32
	n           int
	sha         string
}{
	{"lzo-text", LZO4K, 131072, "d1f7aba0fd8e729faa2f92937d30f1636dc5bf27e42650ca44c8bfaa13b866b8"},
	// Random sectors among text: segments longer than a sector.
	{"lzo-mixed", LZO4K, 131072, "969e47e7eac749e4bb9b5a1db788c01e4974278cbcc17cec6c64715296b3287f"},
	// A segment header skips from 8191 to the next sector.
	{"lzo-padded", LZO4K, 65536, "7507848ee95a649a2e4e199c428cc2fa68f69892a3895d94430a1e5568dec22a"},
	{"zlib-text", Zlib, 131072, "32dea9cb54a1d29178efdfa77fcfac800b5d42cb69ce4a1345d2a17a4f508daa"},
	{"zstd-text", Zstd, 131072, "b7452601d4a8f29d89640057325f1d2528eda658aecac93eb10fd81176a6d948"},
}

func readKernelExtent(t testing.TB, file string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKernelExtents(t *testing.T) {
	for _, e := range kernelExtents {
		dst := make([]byte, e.n)
		if err := Decode(dst, e.compression, readKernelExtent(t, e.file)); err != nil {
			t.Errorf("%s: %v", e.file, err)
			continue
		}
		sum := sha256.Sum256(dst)
		if got := hex.EncodeToString(sum[:]); got != e.sha {
			t.Errorf("%s: sha256 %s, want %s", e.file, got, e.sha)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, e := range kernelExtents {
		b.Run(e.file, func(b *testing.B) {
			src := readKernelExtent(b, e.file)
			dst := make([]byte, e.n)
			b.SetBytes(int64(e.n))
			b.ReportAllocs()
			for b.Loop() {
				if err := Decode(dst, e.compression, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
