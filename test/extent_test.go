package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/extent"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/test/harness"
)

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// extentText is compressible data that is no short loop: words drawn at
// random.
func extentText(r *rand.Rand, n int) []byte {
	words := strings.Fields("receive send subvolume snapshot extent sector lzo zstd zlib btrfs parent clone inode orphan rename write truncate")
	var b []byte
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, " \n"[r.IntN(2)])
	}
	return b[:n]
}

func extentRandom(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeExtentFiles fills dir with files whose extents btrfs compresses:
// text of sizes around sectors and extents (inline ones included), a
// periodic pattern, sectors of random bytes between text, and two files
// that keep only part of an extent (overwritten in the middle; a range
// cloned out of a file since removed), whose sent extents start at an
// offset into the decoded data.
func writeExtentFiles(t *testing.T, dir string, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{100, 2000, 4095, 4096, 4097, 65537, 131072, 131073, 300000} {
		write(fmt.Sprintf("text-%d", n), extentText(r, n))
	}
	write("pattern", bytes.Repeat([]byte("0123456789abcdef-pattern\x00\x00\x00"), 40000))
	var mixed []byte
	for i := 0; i < 64; i++ {
		if i%3 == 1 {
			mixed = append(mixed, extentRandom(r, 4096)...)
		} else {
			mixed = append(mixed, extentText(r, 4096)...)
		}
	}
	write("mixed", mixed)
	write("zeros", make([]byte, 200000))
	// Sectors that start with k random bytes and end in zeros compress
	// with LZO to sizes that put the 8th segment header of the extent at
	// 8191, where it would straddle a sector: it must be read at 8192.
	var padded []byte
	for _, k := range []int{1031, 1031, 1031, 1064, 1064, 1064, 1098, 0, 0, 0, 0, 0, 0, 0, 0, 0} {
		sector := make([]byte, 4096)
		copy(sector, extentRandom(rand.New(rand.NewPCG(1, 2)), k))
		padded = append(padded, sector...)
	}
	write("lzo-padded", padded)

	write("overwritten", bytes.Repeat(extentText(r, 1000), 256))
	write("cloned-source", bytes.Repeat(extentText(r, 3000), 100))
	mustRun(t, "sync", "-f", dir)
	f, err := os.OpenFile(filepath.Join(dir, "overwritten"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(extentText(r, 8192), 40<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src, err := os.Open(filepath.Join(dir, "cloned-source"))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "cloned"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlFileCloneRange(int(dst.Fd()), &unix.FileCloneRange{
		Src_fd: int64(src.Fd()), Src_offset: 68 << 10, Src_length: 40 << 10,
	}); err != nil {
		t.Fatalf("clone a range: %v", err)
	}
	src.Close()
	dst.Close()
	if err := os.Remove(filepath.Join(dir, "cloned-source")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "sync", "-f", dir)
}

// TestExtentDecodesSentExtents sends subvolumes written with each of
// btrfs's compressions with --compressed-data, rebuilds every file from
// the stream's WRITEs and decoded ENCODED_WRITEs and compares it with
// the file as the kernel reads it.
func TestExtentDecodesSentExtents(t *testing.T) {
	mnt := harness.Btrfs(t, 512)
	algs := []string{"zlib", "zstd", "lzo"}
	for i, alg := range algs {
		// The compression is chosen at writeback: each subvolume is
		// synced before the mount option changes.
		mustRun(t, "mount", "-o", "remount,compress-force="+alg, mnt)
		vol := filepath.Join(mnt, alg)
		mustRun(t, "btrfs", "-q", "subvolume", "create", vol)
		writeExtentFiles(t, vol, uint64(i))
		mustRun(t, "btrfs", "-q", "subvolume", "snapshot", "-r", vol, vol+".snap")
	}
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			snap := filepath.Join(mnt, alg+".snap")
			stream := filepath.Join(t.TempDir(), "stream")
			mustRun(t, "btrfs", "-q", "send", "--proto", "2", "--compressed-data", "-f", stream, snap)
			files, stats := rebuildFromStream(t, stream)
			t.Logf("%s: %+v", alg, stats)
			if stats.encoded[alg] == 0 || stats.partial == 0 {
				t.Errorf("the stream has %d %s ENCODED_WRITEs, %d of part of an extent; want some of each", stats.encoded[alg], alg, stats.partial)
			}
			ents, err := os.ReadDir(snap)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				want, err := os.ReadFile(filepath.Join(snap, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				got, ok := files[e.Name()]
				if !ok {
					t.Errorf("%s: not in the stream", e.Name())
					continue
				}
				if !bytes.Equal(got, want) {
					i := 0
					for i < len(got) && i < len(want) && got[i] == want[i] {
						i++
					}
					t.Errorf("%s: rebuilt %d bytes, file has %d, first difference at %d", e.Name(), len(got), len(want), i)
				}
			}
		})
	}
}

type extentStats struct {
	writes  int
	encoded map[string]int
	partial int // ENCODED_WRITEs with an UNENCODED_OFFSET
	padded  int // ENCODED_WRITEs whose data ends in zeros to a sector
}

// rebuildFromStream applies a full stream's file data to files in memory,
// by the names they end with.
func rebuildFromStream(t *testing.T, stream string) (map[string][]byte, extentStats) {
	f, err := os.Open(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	stats := extentStats{encoded: map[string]int{}}
	names := map[uint32]string{extent.Zlib: "zlib", extent.Zstd: "zstd", extent.LZO4K: "lzo"}
	at := func(path string, off uint64, b []byte) {
		f := files[path]
		if end := int(off) + len(b); end > len(f) {
			f = append(f, make([]byte, end-len(f))...)
		}
		copy(f[off:], b)
		files[path] = f
	}
	err = sendstream.Walk(f, func(_ *sendstream.Stream, c *sendstream.Command) error {
		path, _ := c.Attr(sendstream.AttrPath)
		p := string(path)
		switch c.Type {
		case sendstream.CmdMkfile:
			files[p] = nil
		case sendstream.CmdRename:
			to, _ := c.Attr(sendstream.AttrPathTo)
			if b, ok := files[p]; ok {
				delete(files, p)
				files[string(to)] = b
			}
		case sendstream.CmdTruncate:
			size, _ := c.Uint64(sendstream.AttrSize)
			b := files[p]
			if int(size) <= len(b) {
				files[p] = b[:size]
			} else {
				files[p] = append(b, make([]byte, int(size)-len(b))...)
			}
		case sendstream.CmdWrite:
			off, _ := c.Uint64(sendstream.AttrFileOffset)
			data, _ := c.Attr(sendstream.AttrData)
			at(p, off, data)
			stats.writes++
		case sendstream.CmdEncodedWrite:
			off, _ := c.Uint64(sendstream.AttrFileOffset)
			fileLen, _ := c.Uint64(sendstream.AttrUnencodedFileLen)
			n, _ := c.Uint64(sendstream.AttrUnencodedLen)
			uoff, _ := c.Uint64(sendstream.AttrUnencodedOffset)
			comp, _ := c.Attr(sendstream.AttrCompression)
			enc, _ := c.Attr(sendstream.AttrEncryption)
			data, _ := c.Attr(sendstream.AttrData)
			if len(comp) != 4 || len(enc) == 4 && binary.LittleEndian.Uint32(enc) != 0 {
				return fmt.Errorf("%s: compression %x encryption %x", p, comp, enc)
			}
			if n > extent.MaxLen || uoff+fileLen > n {
				return fmt.Errorf("%s: unencoded offset %d, file length %d, length %d", p, uoff, fileLen, n)
			}
			compression := binary.LittleEndian.Uint32(comp)
			buf := make([]byte, n)
			if err := extent.Decode(buf, compression, data); err != nil {
				return fmt.Errorf("%s at %d: %w", p, off, err)
			}
			at(p, off, buf[uoff:uoff+fileLen])
			stats.encoded[names[compression]]++
			if uoff != 0 {
				stats.partial++
			}
			if len(data)%4096 == 0 && data[len(data)-1] == 0 {
				stats.padded++
			}
		case sendstream.CmdClone, sendstream.CmdUpdateExtent:
			return fmt.Errorf("%s: unexpected %s", p, sendstream.CmdName(c.Type))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, stats
}
