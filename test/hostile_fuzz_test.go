package test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/test/harness"
)

// The stream fuzzer: random mutations of two valid streams, a full one
// and an incremental one whose parent is at the destination, fed to bsrecv
// under the hostile suite's oracle. BS_RECVFUZZ_N and BS_RECVFUZZ_SEED
// change the number of mutations per stream and the seed, for longer hunts.
func TestHostileStreamMutations(t *testing.T) {
	n, seed := 30, int64(12)
	if v, err := strconv.Atoi(os.Getenv("BS_RECVFUZZ_N")); err == nil {
		n = v
	}
	if v, err := strconv.ParseInt(os.Getenv("BS_RECVFUZZ_SEED"), 10, 64); err == nil {
		seed = v
	}
	w := hsSetup(t)
	// A source outside the destination with one of everything a stream
	// carries; s2 renames, unlinks, rewrites, clones, truncates and drops
	// an xattr relative to s1. s1 is received at the destination.
	harness.MustSh(t, `
		btrfs -q subvolume create "$FS/src"; mkdir "$FS/snaps"; cd "$FS/src"
		mkdir -p d/e; echo one > d/f; head -c 8192 /dev/urandom > data; ln -s d/f link; ln d/f hard
		mkfifo fifo; setfattr -n user.a -v 1 d/f; chmod 0640 data; echo gone > d/e/gone
		btrfs -q subvolume snapshot -r . "$FS/snaps/s1"
		echo two >> d/f; mv data d/moved; rm link d/e/gone; rmdir d/e; cp --reflink=always d/moved copy
		truncate -s 100 copy; setfattr -x user.a d/f; mkdir n; echo n > n/x; chmod 0700 n; ln -s n nl
		btrfs -q subvolume snapshot -r . "$FS/snaps/s2"
		bssend "$FS/snaps/s1" | bsrecv "$FS/dst/" >/dev/null
		# Read everything once, symbolic links too (see hsSetup).
		sleep 0.01; find "$FS" -type f -exec cat {} + >/dev/null; find "$FS" -type l -exec readlink {} + >/dev/null; ls -R "$FS" >/dev/null
		btrfs filesystem sync "$FS"
	`, "FS="+w.fs)
	send := func(args ...string) []byte {
		out, err := exec.Command("btrfs", append([]string{"send", "-q"}, args...)...).Output()
		if err != nil {
			t.Fatalf("btrfs send %v: %v", args, err)
		}
		return out
	}
	streams := []struct {
		name string
		b    []byte
	}{
		{"full", send("--proto", "2", w.fs+"/snaps/s2")},
		{"incremental", send("--proto", "1", "-p", w.fs+"/snaps/s1", w.fs+"/snaps/s2")},
	}
	want := srTree(t, w.fs+"/snaps/s2")
	// The parent at the destination is part of what must not change.
	outside := func() string {
		var lines []string
		for p, d := range srTree(t, w.dst+"/s1") {
			lines = append(lines, "dst/s1/"+p+" "+d)
		}
		s := srInfo(t, w.dst+"/s1")
		sort.Strings(lines)
		return w.outside(t) + "\n" + strings.Join(lines, "\n") + fmt.Sprintf("\ns1 %s ro=%v %s %d", s.UUID.Canonical(), s.ReadOnly, s.ReceivedUUID.Canonical(), s.STransID)
	}
	base := outside()
	for k, st := range streams {
		if v := hzParse(st.b); !v.valid || len(v.streams) != 1 || v.escapes {
			t.Fatalf("%s: the unmutated stream does not parse: %+v", st.name, v)
		}
		// The unmutated stream is received whole: the oracle's tree
		// comparison holds for it.
		hzRun(t, w, st.b, st.b, want, "unmutated "+st.name, &base, outside)
		rng := rand.New(rand.NewSource(seed + int64(k)))
		for i := 0; i < n; i++ {
			desc, b := hzMutate(rng, st.b, hzKinds[i/2%len(hzKinds)], i%2 == 1)
			hzRun(t, w, st.b, b, want, fmt.Sprintf("%s #%d %s", st.name, i, desc), &base, outside)
		}
	}
}

// hzRun feeds b (a mutation of orig) to bsrecv and checks the oracle:
// nothing outside the destination changes; a stream that is not intact
// (a CRC, a length, a missing END) or carries an escaping path fails with
// one error line and no record; every record printed is a read-only
// subvolume received from the stream it names, with the tree of the
// original when that stream is the original's bytes; after any run the
// destination holds s1 and the reported snapshots, nothing else (no
// writable subvolume, no receive marker, no directory).
func hzRun(t *testing.T, w *hsWorld, orig, b []byte, want map[string]string, desc string, base *string, outside func() string) {
	t.Helper()
	v := hzParse(b)
	r := w.bsrecv(t, b)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s (valid %v, escapes %v, %d complete streams; exit %d):\n%s\nstdout: %s\nstderr: %s",
			desc, v.valid, v.escapes, len(v.streams), r.Code, fmt.Sprintf(format, args...), r.Stdout, r.Stderr)
	}
	outcome := "received"
	if r.Code != 0 {
		outcome = strings.TrimSpace(r.Stderr)
		if i := strings.LastIndex(outcome, "bsrecv: error: "); i >= 0 {
			outcome = outcome[i:]
		}
		outcome = fmt.Sprintf("exit %d: %.160s", r.Code, outcome)
	}
	t.Logf("%s: %s", desc, outcome)
	if now := outside(); now != *base {
		fail("outside the destination changed:\nbefore:\n%s\nafter:\n%s", *base, now)
		*base = now
	}
	if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine ") {
		fail("bsrecv panicked")
	}
	var recs []snapshot.Snapshot
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if line == "" {
			continue
		}
		var s snapshot.Snapshot
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			fail("stdout line %q: %v", line, err)
			continue
		}
		recs = append(recs, s)
	}
	switch {
	case r.Code == 0 && (!v.valid || v.escapes):
		fail("accepted a damaged or escaping stream")
	case r.Code == 0 && len(recs) != len(v.streams):
		fail("exit 0 with %d records for %d streams", len(recs), len(v.streams))
	case r.Code != 0 && strings.Count(r.Stderr, "bsrecv: error: ") != 1:
		fail("want one error line")
	case v.escapes && len(recs) > 0:
		fail("records for a stream with an escaping path")
	}
	reported := map[string]bool{}
	for _, rec := range recs {
		reported[rec.Path] = true
		var from *hzHead
		for i := range v.streams {
			if v.streams[i].path == rec.Path {
				from = &v.streams[i]
			}
		}
		if from == nil {
			fail("record %s is none of the complete streams", rec.Path)
			continue
		}
		info, err := btrfs.Info(filepath.Join(w.dst, rec.Path))
		if err != nil {
			fail("record %s: %v", rec.Path, err)
			continue
		}
		if !info.ReadOnly || info.ReceivedUUID != from.uuid || info.STransID != from.ctransid ||
			rec.ReceivedUUID != from.uuid || !rec.ReadOnly || rec.UUID != info.UUID {
			fail("record %s is not a complete receive: subvolume ro %v received %s stransid %d; stream %x %d",
				rec.Path, info.ReadOnly, info.ReceivedUUID.Canonical(), info.STransID, from.uuid, from.ctransid)
		}
		if bytes.Equal(b[from.start:from.end], orig) {
			got := srTree(t, filepath.Join(w.dst, rec.Path))
			if len(got) != len(want) {
				fail("%s: %d entries, want %d", rec.Path, len(got), len(want))
			}
			for p, d := range want {
				if got[p] != d {
					fail("%s/%s: %q, want %q", rec.Path, p, got[p], d)
				}
			}
		}
	}
	// What is left at the destination: s1 and the reported snapshots
	// (with the directories of nested ones), nothing else.
	for p := range reported {
		if err := btrfs.Delete(filepath.Join(w.dst, p)); err != nil {
			t.Fatalf("%s: delete %s: %v", desc, p, err)
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			os.Remove(filepath.Join(w.dst, d))
		}
	}
	ents, _ := os.ReadDir(w.dst)
	// A cut stream keeps its partial receive for a resume (bsrecv(1)):
	// writable, without received UUID, beside its marker; never one that
	// looks complete.
	cut := strings.Contains(desc, "truncated to")
	kept := map[string]bool{}
	for _, e := range ents {
		p := filepath.Join(w.dst, e.Name())
		if ok, _ := btrfs.IsSubvolume(p); !cut || !ok || e.Name() == "s1" {
			continue
		}
		if info, err := btrfs.Info(p); err == nil && !info.ReadOnly && info.ReceivedUUID.IsZero() {
			if _, err := os.Lstat(filepath.Join(w.dst, "."+e.Name()+".bsrecv")); err == nil {
				kept[e.Name()], kept["."+e.Name()+".bsrecv"] = true, true
				btrfs.Delete(p)
				os.Remove(filepath.Join(w.dst, "."+e.Name()+".bsrecv"))
			}
		}
	}
	for _, e := range ents {
		if e.Name() == "s1" || kept[e.Name()] {
			continue
		}
		p := filepath.Join(w.dst, e.Name())
		what := "a file or directory"
		if ok, _ := btrfs.IsSubvolume(p); ok {
			info, _ := btrfs.Info(p)
			what = fmt.Sprintf("a subvolume (ro %v, received %s)", info.ReadOnly, info.ReceivedUUID.Canonical())
			btrfs.Delete(p)
		}
		os.RemoveAll(p)
		fail("left at the destination: %s, %s", e.Name(), what)
	}
}

// The kinds of mutation, taken in turn (each twice: without and with the
// CRCs fixed); escaping paths, what the path checks are for, most often.
var hzKinds = []int{hzFlip, hzEscape, hzOverwrite, hzEscape, hzTruncate, hzDup, hzEscape, hzDrop}

const (
	hzFlip = iota
	hzEscape
	hzOverwrite
	hzTruncate
	hzDup
	hzDrop
)

// hzMutate makes one random mutation of kind k of the stream s: a bit
// flip, a byte overwrite in an attribute (an escaping path, or any bytes),
// a truncation, a duplicated or a dropped command. With fix, every CRC
// the mutated bytes hold is recomputed, so that the mutation passes the
// CRC check and reaches the checks behind it.
func hzMutate(rng *rand.Rand, s []byte, k int, fix bool) (string, []byte) {
	hdr, cmds := hzSplit(s)
	version := binary.LittleEndian.Uint32(hdr[len(sendstream.Magic):])
	pick := func() int { return rng.Intn(len(cmds)) }
	var desc string
	var out []byte
	switch k {
	case hzFlip: // bit flip: anywhere in a command, rarely in the header
		b := append([]byte(nil), s...)
		var off int
		if rng.Intn(20) == 0 {
			off = rng.Intn(len(hdr))
		} else {
			i := pick()
			off = hzOffset(hdr, cmds, i) + rng.Intn(len(cmds[i]))
		}
		bit := rng.Intn(8)
		b[off] ^= 1 << bit
		desc, out = fmt.Sprintf("bit %d flipped at %d", bit, off), b
	case hzEscape, hzOverwrite: // overwrite in an attribute: a path made to escape, or random bytes
		type loc struct {
			cmd, off, n int
			path        bool
			typ         uint16
		}
		var locs, paths []loc
		for i, c := range cmds {
			typ := binary.LittleEndian.Uint16(c[4:])
			hzAttrs(c, version, func(t uint16, off, n int) {
				l := loc{cmd: i, off: off, n: n, typ: t}
				switch t {
				case sendstream.AttrPath, sendstream.AttrPathTo, sendstream.AttrClonePath:
					l.path = true
				case sendstream.AttrPathLink:
					l.path = typ != sendstream.CmdSymlink
				}
				if n > 0 {
					locs = append(locs, l)
					if l.path {
						paths = append(paths, l)
					}
				}
			})
		}
		b := append([]byte(nil), s...)
		if k == hzEscape && len(paths) > 0 {
			l := paths[rng.Intn(len(paths))]
			at := hzOffset(hdr, cmds, l.cmd) + l.off
			var repl string
			switch v := rng.Intn(4); {
			case v == 0 || l.n == 1:
				repl = "/"
			case v == 1 && l.n == 2:
				repl = ".."
			default:
				// "../" at the start, or ".." as a later component
				slashes := []int{0}
				for j := 0; j < l.n; j++ {
					if b[at+j] == '/' && j+3 <= l.n {
						slashes = append(slashes, j+1)
					}
				}
				j := slashes[rng.Intn(len(slashes))]
				if j+3 > l.n {
					j = 0
				}
				at += j
				repl = "../"[:min(3, l.n-j)]
			}
			copy(b[at:], repl)
			desc = fmt.Sprintf("%s attribute %d of %s made %q", sendstream.CmdName(binary.LittleEndian.Uint16(cmds[l.cmd][4:])), l.typ, hzPath(s, hdr, cmds, l.cmd, l.off, l.n), b[hzOffset(hdr, cmds, l.cmd)+l.off:][:l.n])
		} else {
			l := locs[rng.Intn(len(locs))]
			n := 1 + rng.Intn(min(4, l.n))
			j := rng.Intn(l.n - n + 1)
			at := hzOffset(hdr, cmds, l.cmd) + l.off + j
			rng.Read(b[at : at+n])
			desc = fmt.Sprintf("%d bytes overwritten in attribute %d of %s at %d", n, l.typ, sendstream.CmdName(binary.LittleEndian.Uint16(cmds[l.cmd][4:])), at)
		}
		out = b
	case hzTruncate:
		n := rng.Intn(len(s))
		desc, out = fmt.Sprintf("truncated to %d of %d bytes", n, len(s)), append([]byte(nil), s[:n]...)
	case hzDup, hzDrop:
		i := pick()
		var cs [][]byte
		cs = append(cs, cmds[:i]...)
		if k == hzDup {
			cs = append(cs, cmds[i], cmds[i])
			desc = "duplicated"
		} else {
			desc = "dropped"
		}
		cs = append(cs, cmds[i+1:]...)
		desc = fmt.Sprintf("command %d (%s) %s", i, sendstream.CmdName(binary.LittleEndian.Uint16(cmds[i][4:])), desc)
		out = append([]byte(nil), hdr...)
		for _, c := range cs {
			out = append(out, c...)
		}
	}
	if fix {
		hzFixCRCs(out)
		desc += ", CRCs fixed"
	}
	return desc, out
}

func hzPath(s, hdr []byte, cmds [][]byte, i, off, n int) string {
	at := hzOffset(hdr, cmds, i) + off
	return strconv.Quote(string(s[at : at+n]))
}

// hzSplit splits one valid stream into its header and commands.
func hzSplit(s []byte) ([]byte, [][]byte) {
	hdr := s[:sendstream.HeaderLen]
	var cmds [][]byte
	for p := s[sendstream.HeaderLen:]; len(p) > 0; {
		n := sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(p))
		cmds = append(cmds, p[:n])
		p = p[n:]
	}
	return hdr, cmds
}

func hzOffset(hdr []byte, cmds [][]byte, i int) int {
	off := len(hdr)
	for _, c := range cmds[:i] {
		off += len(c)
	}
	return off
}

// hzAttrs calls fn with the type, offset in the command and length of
// each attribute value of command c.
func hzAttrs(c []byte, version uint32, fn func(t uint16, off, n int)) bool {
	for off := sendstream.CmdHeaderLen; off < len(c); {
		if off+2 > len(c) {
			return false
		}
		t := binary.LittleEndian.Uint16(c[off:])
		if t == sendstream.AttrData && version >= 2 {
			fn(t, off+2, len(c)-off-2)
			return true
		}
		if off+4 > len(c) {
			return false
		}
		n := int(binary.LittleEndian.Uint16(c[off+2:]))
		if off+4+n > len(c) {
			return false
		}
		fn(t, off+4, n)
		off += 4 + n
	}
	return true
}

// The send stream CRC: CRC32C without the inversions at either end, over
// the command with its CRC field zeroed. Written here from the format,
// not taken from lib/sendstream, so that the oracle does not share its
// mistakes.
var hzTable = crc32.MakeTable(crc32.Castagnoli)

func hzCRC(c []byte) uint32 {
	z := append([]byte(nil), c...)
	copy(z[6:10], []byte{0, 0, 0, 0})
	return ^crc32.Update(0xffffffff, hzTable, z)
}

// hzFixCRCs recomputes the CRC of every command b holds whole, following
// the length fields as a reader would, across stream headers.
func hzFixCRCs(b []byte) {
	for off := 0; off < len(b); {
		if bytes.HasPrefix(b[off:], []byte(sendstream.Magic)) {
			off += sendstream.HeaderLen
			continue
		}
		if off+sendstream.CmdHeaderLen > len(b) {
			return
		}
		n := sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(b[off:]))
		if n < sendstream.CmdHeaderLen || off+n > len(b) {
			return
		}
		binary.LittleEndian.PutUint32(b[off+6:], hzCRC(b[off:off+n]))
		off += n
	}
}

type hzHead struct {
	path       string
	uuid       [16]byte
	ctransid   uint64
	start, end int // the stream's bytes in the input
}

type hzResult struct {
	// valid: the input is one or more whole streams, each a header, a
	// SUBVOL or SNAPSHOT, commands with matching CRCs, and END.
	valid bool
	// streams are the whole streams at the start of the input.
	streams []hzHead
	// escapes: some command of those streams has a path attribute that
	// is absolute or has a ".." component.
	escapes bool
}

// hzParse reads b as the format defines send streams (see hzCRC).
func hzParse(b []byte) hzResult {
	var res hzResult
	off := 0
	for off < len(b) {
		start := off
		if len(b)-off < sendstream.HeaderLen || !bytes.HasPrefix(b[off:], []byte(sendstream.Magic)) {
			return res
		}
		version := binary.LittleEndian.Uint32(b[off+len(sendstream.Magic):])
		if version < 1 || version > sendstream.MaxVersion {
			return res
		}
		off += sendstream.HeaderLen
		h := hzHead{start: start}
		escapes := false
		for first := true; ; first = false {
			if len(b)-off < sendstream.CmdHeaderLen {
				return res
			}
			n := sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(b[off:]))
			if n < sendstream.CmdHeaderLen || off+n > len(b) {
				return res
			}
			c := b[off : off+n]
			off += n
			if binary.LittleEndian.Uint32(c[6:]) != hzCRC(c) {
				return res
			}
			typ := binary.LittleEndian.Uint16(c[4:])
			head := typ == sendstream.CmdSubvol || typ == sendstream.CmdSnapshot
			if head != first {
				return res
			}
			ok := hzAttrs(c, version, func(t uint16, o, n int) {
				v := c[o : o+n]
				switch {
				case head && t == sendstream.AttrPath:
					h.path = string(v)
				case head && t == sendstream.AttrUUID && n == 16:
					copy(h.uuid[:], v)
				case head && t == sendstream.AttrCTransID && n == 8:
					h.ctransid = binary.LittleEndian.Uint64(v)
				}
				isPath := t == sendstream.AttrPath || t == sendstream.AttrPathTo || t == sendstream.AttrClonePath ||
					(t == sendstream.AttrPathLink && typ != sendstream.CmdSymlink)
				if isPath && (bytes.HasPrefix(v, []byte("/")) || bytes.Equal(v, []byte("..")) || bytes.HasPrefix(v, []byte("../")) ||
					bytes.HasSuffix(v, []byte("/..")) || bytes.Contains(v, []byte("/../"))) {
					escapes = true
				}
			})
			if !ok {
				return res
			}
			if typ == sendstream.CmdEnd {
				break
			}
		}
		h.end = off
		res.streams = append(res.streams, h)
		res.escapes = res.escapes || escapes
	}
	res.valid = len(res.streams) > 0
	return res
}
