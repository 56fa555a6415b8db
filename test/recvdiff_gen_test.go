package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// rdGen makes random trees and random changes to them, in a writable
// subvolume, from a seed: the same seed makes the same operations. An
// operation the state does not allow (a clone into a nodatacow file, a
// rename into a non-empty directory) fails and is skipped, the same way
// on every run.
type rdGen struct {
	r    *rand.Rand
	root string
	n    int
}

func newRdGen(seed uint64, root string) *rdGen {
	return &rdGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), root: root}
}

type rdNode struct {
	rel  string
	mode uint32
}

func (g *rdGen) abs(rel string) string {
	if rel == "" {
		return g.root
	}
	return g.root + "/" + rel
}

// list is every path below the root, in order, the root first as "".
func (g *rdGen) list() []rdNode {
	out := []rdNode{{"", unix.S_IFDIR}}
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(g.abs(rel))
		if err != nil {
			return
		}
		for _, e := range ents {
			c := e.Name()
			if rel != "" {
				c = rel + "/" + c
			}
			var st unix.Stat_t
			if unix.Lstat(g.abs(c), &st) != nil {
				continue
			}
			out = append(out, rdNode{c, st.Mode & unix.S_IFMT})
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				walk(c)
			}
		}
	}
	walk("")
	return out
}

func (g *rdGen) pick(of []rdNode, typ uint32) (rdNode, bool) {
	var c []rdNode
	for _, n := range of {
		if typ == 0 || n.mode == typ {
			c = append(c, n)
		}
	}
	if len(c) == 0 {
		return rdNode{}, false
	}
	return c[g.r.IntN(len(c))], true
}

// name is a new name: plain, or with spaces, newlines, bytes that are
// not UTF-8, or 255 bytes long.
func (g *rdGen) name() string {
	g.n++
	s := fmt.Sprint(g.n)
	switch g.r.IntN(10) {
	case 0:
		return "with space " + s
	case 1:
		return "new\nline" + s
	case 2:
		return "\xff\xfe\x80bin" + s
	case 3:
		return strings.Repeat("L", 255-len(s)) + s
	case 4:
		return "é ü-" + s
	default:
		return "n" + s
	}
}

// dir picks an existing directory to create in, keeping paths short
// enough for the generator's own path-based calls.
func (g *rdGen) dir(nodes []rdNode) string {
	for i := 0; i < 5; i++ {
		d, _ := g.pick(nodes, unix.S_IFDIR)
		if len(g.abs(d.rel)) < 2600 {
			return d.rel
		}
	}
	return ""
}

func rdJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (g *rdGen) size() int64 {
	sizes := []int64{0, 1, 17, 100, 2000, 4095, 4096, 4097, 8191, 8192, 12289, 65536, 131073, 300000}
	if g.r.IntN(20) == 0 {
		return 1<<20 + g.r.Int64N(2<<20)
	}
	return sizes[g.r.IntN(len(sizes))]
}

// data is n bytes: random, a repeated line (compressible), or zeros.
func (g *rdGen) data(n int64) []byte {
	b := make([]byte, n)
	switch g.r.IntN(3) {
	case 0:
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
	case 1:
		line := []byte(fmt.Sprintf("line %d of a compressible file\n", g.r.IntN(1000)))
		for i := range b {
			b[i] = line[i%len(line)]
		}
	}
	return b
}

func (g *rdGen) write(rel string, off int64, b []byte) error {
	f, err := os.OpenFile(g.abs(rel), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(b, off)
	return err
}

// create makes one new entry of a random kind.
func (g *rdGen) create(nodes []rdNode) {
	p := rdJoin(g.dir(nodes), g.name())
	a := g.abs(p)
	switch g.r.IntN(16) {
	case 0, 1:
		unix.Mkdir(a, 0o755)
	case 2, 3, 4, 5:
		g.write(p, 0, g.data(g.size()))
	case 6: // sparse, maybe with a trailing hole
		g.write(p, g.r.Int64N(4)*65536, g.data(g.r.Int64N(9000)))
		g.write(p, 300000+g.r.Int64N(100000), g.data(5000))
		if g.r.IntN(2) == 0 {
			os.Truncate(a, 1<<20+g.r.Int64N(4096))
		}
	case 7:
		if f, ok := g.pick(nodes, unix.S_IFREG); ok {
			unix.Link(g.abs(f.rel), a)
		}
	case 8:
		targets := []string{"dangling/" + g.name(), "../" + g.name(), strings.Repeat("long/", 200) + "end",
			"odd \x01\xff\n bytes", "/abs/olute"}
		unix.Symlink(targets[g.r.IntN(len(targets))], a)
	case 9:
		unix.Mkfifo(a, 0o640)
	case 10:
		unix.Mknod(a, unix.S_IFSOCK|0o600, 0)
	case 11:
		unix.Mknod(a, unix.S_IFCHR|0o660, int(unix.Mkdev(uint32(1+g.r.IntN(300)), uint32(g.r.IntN(300)))))
	case 12:
		unix.Mknod(a, unix.S_IFBLK|0o640, int(unix.Mkdev(7, uint32(g.r.IntN(5000)))))
	case 13: // a whole-file reflink
		if f, ok := g.pick(nodes, unix.S_IFREG); ok {
			g.clone(f.rel, p, 0, 0, 0)
		}
	case 14: // an empty nodatacow file, data maybe written later
		if fd, err := unix.Open(a, unix.O_CREAT|unix.O_WRONLY, 0o644); err == nil {
			unix.Close(fd)
			g.setFlags(p, rdNoCOW)
		}
	case 15: // a nested directory chain
		for i := 0; i < 1+g.r.IntN(4) && len(a) < 2400; i++ {
			unix.Mkdir(a, 0o700)
			p = rdJoin(p, g.name())
			a = g.abs(p)
		}
	}
}

// clone reflinks n bytes (0: to the source's end) of src at soff into
// dst at doff; whole file when all are zero.
func (g *rdGen) clone(src, dst string, soff, n, doff int64) error {
	s, err := os.Open(g.abs(src))
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := os.OpenFile(g.abs(dst), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer d.Close()
	if soff == 0 && n == 0 && doff == 0 {
		return unix.IoctlFileClone(int(d.Fd()), int(s.Fd()))
	}
	return unix.IoctlFileCloneRange(int(d.Fd()), &unix.FileCloneRange{Src_fd: int64(s.Fd()),
		Src_offset: uint64(soff), Src_length: uint64(n), Dest_offset: uint64(doff)})
}

func (g *rdGen) setFlags(rel string, add uint32) error {
	fd, err := unix.Open(g.abs(rel), unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(f|add))
}

// rdCapability is a raw security.capability value (revision 2,
// effective) granting cap_net_raw and cap_sys_admin.
func rdCapability() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<13|1<<21)
	return b
}

// rdACL is a raw POSIX ACL xattr value: owner, one named user, group,
// mask and others.
func rdACL(uid uint32) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	le(uint32(2))
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 7, ^uint32(0)}, {2, 4, uid}, {4, 5, ^uint32(0)}, {0x10, 7, ^uint32(0)}, {0x20, 4, ^uint32(0)}} {
		le(e.tag)
		le(e.perm)
		le(e.id)
	}
	return b.Bytes()
}

// attr changes one attribute of an existing entry.
func (g *rdGen) attr(nodes []rdNode) {
	n, _ := g.pick(nodes, 0)
	a := g.abs(n.rel)
	switch g.r.IntN(9) {
	case 0:
		names := []string{"user.a", "user.b", "user.long." + strings.Repeat("x", 200), "trusted.t"}
		vals := [][]byte{nil, []byte("v"), []byte("\x00\xff binary\n"), bytes.Repeat([]byte("big"), 1000)}
		unix.Lsetxattr(a, names[g.r.IntN(len(names))], vals[g.r.IntN(len(vals))], 0)
	case 1:
		for _, x := range []string{"user.a", "user.b", "security.capability", "system.posix_acl_access"} {
			if g.r.IntN(2) == 0 {
				unix.Lremovexattr(a, x)
			}
		}
	case 2:
		if n.mode == unix.S_IFREG {
			unix.Lsetxattr(a, "security.capability", rdCapability(), 0)
		}
	case 3:
		if n.mode == unix.S_IFREG || n.mode == unix.S_IFDIR {
			unix.Lsetxattr(a, "system.posix_acl_access", rdACL(uint32(1000+g.r.IntN(5))), 0)
		}
		if n.mode == unix.S_IFDIR {
			unix.Lsetxattr(a, "system.posix_acl_default", rdACL(2000), 0)
		}
	case 4:
		if n.mode != unix.S_IFLNK {
			modes := []uint32{0o644, 0o600, 0o4755, 0o2750, 0o1777, 0o6711, 0o000, 0o7777, 0o444}
			unix.Chmod(a, modes[g.r.IntN(len(modes))])
		}
	case 5:
		ids := []int{0, 1000, 65534, 123456}
		unix.Lchown(a, ids[g.r.IntN(len(ids))], ids[g.r.IntN(len(ids))])
	case 6:
		g.times(n.rel)
	case 7:
		if n.mode == unix.S_IFREG || n.mode == unix.S_IFDIR {
			flags := []uint32{rdNoDump, rdNoAtime}
			g.setFlags(n.rel, flags[g.r.IntN(len(flags))])
		}
	case 8:
		if n.mode == unix.S_IFREG {
			g.write(n.rel, g.r.Int64N(10000), g.data(1+g.r.Int64N(5000)))
		}
	}
}

// times sets an arbitrary atime and mtime, with nanoseconds.
func (g *rdGen) times(rel string) error {
	ts := func() unix.Timespec {
		return unix.Timespec{Sec: g.r.Int64N(4000000000), Nsec: g.r.Int64N(1e9)}
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, g.abs(rel), []unix.Timespec{ts(), ts()}, unix.AT_SYMLINK_NOFOLLOW)
}

// within reports whether p is q or below it.
func rdWithin(p, q string) bool { return q == "" || p == q || strings.HasPrefix(p, q+"/") }

// change makes one random change of the kinds an incremental send has
// to express.
func (g *rdGen) change(nodes []rdNode) {
	n, _ := g.pick(nodes[1:], 0)
	if n.rel == "" && len(nodes) > 1 {
		n = nodes[1]
	}
	if n.rel == "" {
		g.create(nodes)
		return
	}
	a := g.abs(n.rel)
	switch g.r.IntN(16) {
	case 0: // overwrite the middle, append, truncate
		if n.mode == unix.S_IFREG {
			var st unix.Stat_t
			unix.Stat(a, &st)
			switch g.r.IntN(3) {
			case 0:
				g.write(n.rel, st.Size/2, g.data(1+g.r.Int64N(9000)))
			case 1:
				g.write(n.rel, st.Size, g.data(1+g.r.Int64N(70000)))
			default:
				os.Truncate(a, g.r.Int64N(st.Size+1))
			}
		}
	case 1, 2: // delete a file or a whole tree
		os.RemoveAll(a)
	case 3, 4: // rename a file or a whole tree
		d := g.dir(nodes)
		if !rdWithin(d, n.rel) {
			os.Rename(a, g.abs(rdJoin(d, g.name())))
		}
	case 5: // swap two names
		m, _ := g.pick(nodes[1:], 0)
		if m.rel != "" && !rdWithin(m.rel, n.rel) && !rdWithin(n.rel, m.rel) {
			tmp := g.abs(g.name())
			os.Rename(a, tmp)
			os.Rename(g.abs(m.rel), a)
			os.Rename(tmp, g.abs(m.rel))
		}
	case 6: // rename cycle of three
		m, _ := g.pick(nodes[1:], 0)
		o, _ := g.pick(nodes[1:], 0)
		if m.rel != "" && o.rel != "" && !rdWithin(m.rel, n.rel) && !rdWithin(n.rel, m.rel) &&
			!rdWithin(o.rel, n.rel) && !rdWithin(n.rel, o.rel) && !rdWithin(o.rel, m.rel) && !rdWithin(m.rel, o.rel) {
			tmp := g.abs(g.name())
			os.Rename(a, tmp)
			os.Rename(g.abs(o.rel), a)
			os.Rename(g.abs(m.rel), g.abs(o.rel))
			os.Rename(tmp, g.abs(m.rel))
		}
	case 7: // replace by the other type under the same name
		os.RemoveAll(a)
		if n.mode == unix.S_IFDIR {
			g.write(n.rel, 0, g.data(g.size()))
		} else {
			unix.Mkdir(a, 0o755)
			g.write(n.rel+"/inside", 0, []byte("x"))
		}
	case 8: // move a directory into a sibling, then rename the sibling
		if n.mode == unix.S_IFDIR {
			par := path.Dir(n.rel)
			if par == "." {
				par = ""
			}
			for _, s := range nodes {
				if s.mode == unix.S_IFDIR && s.rel != n.rel && path.Dir(s.rel) == path.Dir(n.rel) {
					os.Rename(a, g.abs(s.rel+"/"+path.Base(n.rel)))
					os.Rename(g.abs(s.rel), g.abs(rdJoin(par, g.name())))
					break
				}
			}
		}
	case 9: // create then delete, then create: inode numbers move on
		tmp := g.abs(rdJoin(g.dir(nodes), g.name()))
		os.WriteFile(tmp, []byte("gone"), 0o644)
		os.Remove(tmp)
		g.create(nodes)
	case 10: // hardlink added or one name removed
		if n.mode == unix.S_IFREG {
			if g.r.IntN(2) == 0 {
				unix.Link(a, g.abs(rdJoin(g.dir(nodes), g.name())))
			} else {
				os.Remove(a)
			}
		}
	case 11: // clone into a lower offset, of itself or another file
		m, ok := g.pick(nodes, unix.S_IFREG)
		if ok && n.mode == unix.S_IFREG {
			var st unix.Stat_t
			unix.Stat(g.abs(m.rel), &st)
			if blocks := st.Size / 4096; blocks >= 2 {
				from := 1 + g.r.Int64N(blocks-1)
				g.clone(m.rel, n.rel, from*4096, (blocks-from)*4096, 0)
			}
		}
	case 12: // punch a hole
		if n.mode == unix.S_IFREG {
			if f, err := os.OpenFile(a, os.O_WRONLY, 0); err == nil {
				unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, g.r.Int64N(8)*4096, 4096*(1+g.r.Int64N(20)))
				f.Close()
			}
		}
	default:
		g.attr(nodes)
	}
}

// round makes count operations, of creations when build, else mostly
// changes, then gives some entries arbitrary times (last, so that no
// later operation in the round moves them).
func (g *rdGen) round(count int, build bool) {
	for i := 0; i < count; i++ {
		nodes := g.list()
		switch {
		case build && g.r.IntN(4) != 0, !build && g.r.IntN(5) == 0:
			g.create(nodes)
		case build:
			g.attr(nodes)
		default:
			g.change(nodes)
		}
	}
	nodes := g.list()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].rel < nodes[j].rel })
	for _, n := range nodes {
		if g.r.IntN(4) == 0 {
			g.times(n.rel)
		}
	}
}

// File flags (FS_*_FL, chattr's letters), which x/sys does not name.
const (
	rdNoDump  = 0x00000040 // d
	rdNoAtime = 0x00000080 // A
	rdNoCOW   = 0x00800000 // C
)
