// Command mktree makes the receive benchmark's data set, and its change
// for an incremental, quickly and the same every time for a given seed.
//
//	mktree [-seed N] [-mib M] [-files N] create DIR
//	mktree [-seed N] [-renames N] [-deletes N] change DIR
//
// create writes M MiB of file data in DIR/big (4 files holding 3/4 of it)
// and DIR/mid (4 MiB files, one sparse), and a tree of N small files
// (0-8 KiB) in DIR/tree: about 100 entries to a directory, three levels
// deep, with varied modes, owners, times and user xattrs, 2% symbolic
// links and 2% extra hard links.
//
// change rewrites 10% of the small files, gives 1% new modes and owners,
// renames and deletes some (files/50 each unless given), and changes the
// large files a little: a rewritten middle, an append, a truncate, a new
// and a removed 4 MiB file.
//
// Run as root (owners). Not a buttersink command: test data only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	seed := flag.Uint64("seed", 1, "random seed")
	mib := flag.Int("mib", 1024, "MiB of large-file data (create)")
	files := flag.Int("files", 50000, "small files (create)")
	renames := flag.Int("renames", -1, "small files renamed (change; default files/50)")
	deletes := flag.Int("deletes", -1, "small files deleted (change; default files/50)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: mktree [flags] create|change DIR")
		os.Exit(2)
	}
	g := &gen{rng: rand.New(rand.NewPCG(*seed, 0x6275747465727369)), root: flag.Arg(1)}
	var err error
	switch flag.Arg(0) {
	case "create":
		err = g.create(*mib, *files)
	case "change":
		err = g.change(*renames, *deletes)
	default:
		err = fmt.Errorf("unknown action %q", flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mktree: error:", err)
		os.Exit(1)
	}
}

type gen struct {
	rng  *rand.Rand
	root string
	buf  []byte
	// dirs are the directories made, parents first, whose metadata is
	// set last (entries made in them change their mtime).
	dirs []string
}

const chunk = 1 << 20

var (
	modes = []os.FileMode{0o644, 0o600, 0o640, 0o755, 0o444, 0o664, 0o700, 0o750}
	ids   = []int{0, 33, 1000, 1001, 65534}
	// A per-run base that is not a round number, inside 2015-2024.
	epoch = time.Date(2015, 3, 7, 11, 13, 17, 0, time.UTC).Unix()
)

// fill fills b with data that is neither zeros nor dedupable across files
// and about half compressible: 2 KiB of random bytes then 2 KiB of a
// repeated line, in every 4 KiB.
func (g *gen) fill(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		end := min(i+4096, len(b))
		half := min(i+2048, end)
		for j := i; j < half; j += 8 {
			v := g.rng.Uint64()
			for k := 0; k < 8 && j+k < half; k++ {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		line := fmt.Sprintf("block %d of %x: the quick brown fox\n", i/4096, g.rng.Uint32())
		for j := half; j < end; {
			j += copy(b[j:end], line)
		}
	}
}

func (g *gen) writeBig(path string, size, hole int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if g.buf == nil {
		g.buf = make([]byte, chunk)
	}
	for off := hole; off < size; off += chunk {
		b := g.buf[:min(chunk, size-off)]
		g.fill(b)
		if _, err := f.WriteAt(b, off); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func (g *gen) create(mib, files int) error {
	for _, d := range []string{"big", "mid", "tree"} {
		if err := os.Mkdir(filepath.Join(g.root, d), 0o755); err != nil {
			return err
		}
	}
	large := int64(mib) * 3 / 16 << 20
	for i := range 4 {
		if err := g.writeBig(filepath.Join(g.root, "big", fmt.Sprintf("big%d", i)), large, 0); err != nil {
			return err
		}
	}
	for i := range (int64(mib)<<20 - 4*large) >> 22 {
		var hole int64
		if i == 1 {
			hole = 1 << 20
		}
		if err := g.writeBig(g.midPath(int(i)), 4<<20, hole); err != nil {
			return err
		}
	}
	return g.smallTree(files)
}

func (g *gen) midPath(i int) string {
	return filepath.Join(g.root, "mid", fmt.Sprintf("m%03d", i))
}

// leaf is the directory of small entry i: tree/tA/sB/dC.
func (g *gen) leaf(i, leaves int) string {
	l := i % leaves
	return filepath.Join(g.root, "tree", fmt.Sprintf("t%d", l%10), fmt.Sprintf("s%d", l/10%10), fmt.Sprintf("d%d", l))
}

func (g *gen) smallTree(files int) error {
	leaves := max(1, files/100)
	seen := map[string]bool{}
	for i := range leaves {
		d := g.leaf(i, leaves)
		for p := d; !seen[p] && p != filepath.Join(g.root, "tree"); p = filepath.Dir(p) {
			seen[p] = true
		}
	}
	for p := range seen {
		g.dirs = append(g.dirs, p)
	}
	sort.Slice(g.dirs, func(i, j int) bool {
		return len(g.dirs[i]) < len(g.dirs[j]) || len(g.dirs[i]) == len(g.dirs[j]) && g.dirs[i] < g.dirs[j]
	})
	for _, d := range g.dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	var regular []string
	for i := range files {
		p := filepath.Join(g.leaf(i, leaves), fmt.Sprintf("f%05d", i))
		switch r := g.rng.IntN(100); {
		case r < 2 && len(regular) > 0:
			target := regular[g.rng.IntN(len(regular))]
			rel, err := filepath.Rel(filepath.Dir(p), target)
			if err != nil {
				return err
			}
			if g.rng.IntN(10) == 0 {
				rel += ".missing" // dangling
			}
			if err := os.Symlink(rel, p); err != nil {
				return err
			}
			if err := g.meta(p, true); err != nil {
				return err
			}
		case r < 4 && len(regular) > 0:
			if err := os.Link(regular[g.rng.IntN(len(regular))], p); err != nil {
				return err
			}
		default:
			if err := g.small(p); err != nil {
				return err
			}
			regular = append(regular, p)
		}
	}
	if err := unix.Mkfifo(filepath.Join(g.root, "tree", "fifo"), 0o640); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(g.root, "tree", "empty"), 0o700); err != nil {
		return err
	}
	return g.dirMeta()
}

// small writes small file p (created or rewritten) and sets its metadata.
func (g *gen) small(p string) error {
	size := g.rng.IntN(8193)
	if g.rng.IntN(20) == 0 {
		size = 0
	}
	if g.buf == nil {
		g.buf = make([]byte, chunk)
	}
	b := g.buf[:size]
	g.fill(b)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return err
	}
	if r := g.rng.IntN(100); r < 6 {
		v := []byte(strings.Repeat("v", 1+g.rng.IntN(200)))
		if err := unix.Setxattr(p, "user.bench", v, 0); err != nil {
			return err
		}
		if r == 0 {
			if err := unix.Setxattr(p, "user.bench.second", []byte("2"), 0); err != nil {
				return err
			}
		}
	}
	return g.meta(p, false)
}

// meta sets a random owner, mode (not for links) and times on p.
func (g *gen) meta(p string, link bool) error {
	if err := os.Lchown(p, ids[g.rng.IntN(len(ids))], ids[g.rng.IntN(len(ids))]); err != nil {
		return err
	}
	if !link {
		if err := os.Chmod(p, modes[g.rng.IntN(len(modes))]); err != nil {
			return err
		}
	}
	return g.times(p)
}

func (g *gen) times(p string) error {
	ts := []unix.Timespec{
		unix.NsecToTimespec((epoch+g.rng.Int64N(9*365*86400))*1e9 + g.rng.Int64N(1e9)),
		unix.NsecToTimespec((epoch+g.rng.Int64N(9*365*86400))*1e9 + g.rng.Int64N(1e9)),
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// dirMeta sets the directories' metadata, deepest first, so that none is
// changed again by setting a child's.
func (g *gen) dirMeta() error {
	for i := len(g.dirs) - 1; i >= 0; i-- {
		d := g.dirs[i]
		if err := os.Lchown(d, ids[g.rng.IntN(len(ids))], ids[g.rng.IntN(len(ids))]); err != nil {
			return err
		}
		if err := os.Chmod(d, []os.FileMode{0o755, 0o750, 0o700, 0o775}[g.rng.IntN(4)]); err != nil {
			return err
		}
		if i%10 == 0 {
			if err := unix.Setxattr(d, "user.dir", []byte(d[len(g.root):]), 0); err != nil {
				return err
			}
		}
		if err := g.times(d); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) change(renames, deletes int) error {
	var regular []string
	err := filepath.WalkDir(filepath.Join(g.root, "tree"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			regular = append(regular, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	if renames < 0 {
		renames = len(regular) / 50
	}
	if deletes < 0 {
		deletes = len(regular) / 50
	}
	if renames+deletes > len(regular) {
		return errors.New("more renames and deletes than files")
	}
	g.rng.Shuffle(len(regular), func(i, j int) { regular[i], regular[j] = regular[j], regular[i] })
	// Rewritten and metadata-changed files are drawn from all; the renamed
	// and the deleted from the end, apart from each other.
	rewrite := len(regular) / 10
	for _, p := range regular[:rewrite] {
		if err := g.small(p); err != nil {
			return err
		}
	}
	for _, p := range regular[rewrite : rewrite+len(regular)/100] {
		if err := g.meta(p, false); err != nil {
			return err
		}
	}
	moved := regular[len(regular)-renames:]
	for i, p := range moved {
		// Half stay in their directory, half move to another's.
		to := filepath.Join(filepath.Dir(p), fmt.Sprintf("r%05d", i))
		if i%2 == 1 {
			to = filepath.Join(filepath.Dir(moved[(i+7)%len(moved)]), fmt.Sprintf("r%05d", i))
		}
		if err := os.Rename(p, to); err != nil {
			return err
		}
	}
	for _, p := range regular[len(regular)-renames-deletes : len(regular)-renames] {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return g.changeBig()
}

func (g *gen) changeBig() error {
	big := func(i int) string { return filepath.Join(g.root, "big", fmt.Sprintf("big%d", i)) }
	b := make([]byte, 8<<20)
	g.fill(b)
	f, err := os.OpenFile(big(0), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(b, st.Size()/2)
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	f, err = os.OpenFile(big(1), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b[:4<<20])
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	st, err = os.Stat(big(2))
	if err != nil {
		return err
	}
	if err := os.Truncate(big(2), st.Size()/2); err != nil {
		return err
	}
	// The first 4 MiB file left goes and "new" is made again, so that
	// changes can follow one another (restore.sh makes a chain of them).
	mid, err := os.ReadDir(filepath.Join(g.root, "mid"))
	if err != nil {
		return err
	}
	for _, e := range mid {
		if strings.HasPrefix(e.Name(), "m") {
			if err := os.Remove(filepath.Join(g.root, "mid", e.Name())); err != nil {
				return err
			}
			break
		}
	}
	if err := os.Remove(filepath.Join(g.root, "mid", "new")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return g.writeBig(filepath.Join(g.root, "mid", "new"), 4<<20, 0)
}
