package receive

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
	"golang.org/x/sys/unix"
)

var (
	plainParent = ID{UUID: uuid.UUID{0xaa, 1}, CTransID: 10}
	plainChild  = ID{UUID: uuid.UUID{0xbb, 2}, CTransID: 11}
)

// mirror is a plain-directory mirror in a temporary directory.
type mirror struct {
	dir  string
	fd   int
	dest *PlainDest
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("receive tests run as root")
		}
		t.Skip("receive tests run as root")
	}
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	m := &mirror{dir: dir, fd: fd, dest: NewPlainDest(fd, fd)}
	// Hard links, the case to prove: reflinks make new inodes anyway.
	m.dest.noReflink = true
	return m
}

// receive applies cmds as the stream of id (from parent) into name.
func (m *mirror) receive(t *testing.T, name string, id ID, parent *ID, cmds ...cmd) error {
	t.Helper()
	tree, err := m.dest.Begin(name, id, parent)
	if err != nil {
		return err
	}
	defer tree.Close()
	data := stream(2, cmds...)
	a := &Applier{Tree: tree, Self: id}
	r := sendstream.NewReader(bytes.NewReader(data))
	first := true
	r.OnCommand(func(_ *sendstream.Stream, c *sendstream.Command) error {
		if first {
			first = false
			return nil
		}
		return a.Command(c)
	})
	s, err := r.Next()
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, s)
	return err
}

// treeState describes every entry below dir: type, mode, owner, times,
// size, content, link target, xattrs and which entries share an inode
// (not access times: reading the files to describe them changes those).
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	inos := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l := fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d mtime=%d.%d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
			if first, ok := inos[st.Ino]; ok {
				l += " same-as=" + first
			} else {
				inos[st.Ino] = rel
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			l += " -> " + target
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(names)
			for _, name := range names {
				if name != "" {
					v := make([]byte, 4096)
					k, _ := unix.Lgetxattr(p, name, v)
					l += fmt.Sprintf(" %s=%q", name, v[:max(k, 0)])
				}
			}
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// parentCmds make the parent: files a (two extents around a hole), b
// and c (one file, two names), a directory, a symbolic link, a FIFO.
func parentCmds() []cmd {
	var cmds []cmd
	for _, f := range []string{"a", "b"} {
		cmds = append(cmds, c(sendstream.CmdMkfile, aPath(f)),
			c(sendstream.CmdWrite, aPath(f), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, "parent "+f)),
			c(sendstream.CmdWrite, aPath(f), aU64(sendstream.AttrFileOffset, 1<<20), aStr(sendstream.AttrData, "end")),
			c(sendstream.CmdSetXattr, aPath(f), aStr(sendstream.AttrXattrName, "user.k"), aStr(sendstream.AttrXattrData, "v")),
			c(sendstream.CmdChown, aPath(f), aU64(sendstream.AttrUID, 1000), aU64(sendstream.AttrGID, 100)),
			c(sendstream.CmdChmod, aPath(f), aU64(sendstream.AttrMode, 0o640)),
			c(sendstream.CmdUtimes, aPath(f), aTime(sendstream.AttrATime, 1000, 1), aTime(sendstream.AttrMTime, 2000, 2), aTime(sendstream.AttrCTime, 3000, 3)))
	}
	cmds = append(cmds, c(sendstream.CmdLink, aPath("c"), aStr(sendstream.AttrPathLink, "b")),
		c(sendstream.CmdMkdir, aPath("d")),
		c(sendstream.CmdSymlink, aPath("d/l"), aStr(sendstream.AttrPathLink, "../a")),
		c(sendstream.CmdMkfifo, aPath("d/f")),
		c(sendstream.CmdUtimes, aPath("d"), aTime(sendstream.AttrATime, 5, 0), aTime(sendstream.AttrMTime, 6, 0), aTime(sendstream.AttrCTime, 7, 0)))
	return cmds
}

func zlibOf(s string) string {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(s))
	zw.Close()
	return z.String()
}

func cloneCmd(path string, src ID, srcPath string) cmd {
	return c(sendstream.CmdClone, aPath(path), aU64(sendstream.AttrFileOffset, 0), aU64(sendstream.AttrCloneLen, 6),
		aUUID(sendstream.AttrCloneUUID, src.UUID), aU64(sendstream.AttrCloneCTransID, src.CTransID),
		aStr(sendstream.AttrClonePath, srcPath), aU64(sendstream.AttrCloneOffset, 0))
}

// TestPlainBreaksBeforeChange applies each command that changes a file
// to a child of a parent whose files it hard-links: the parent's
// directory stays exactly as it was, the child changes, and a file with
// two names in the parent keeps them as one file of its own.
func TestPlainBreaksBeforeChange(t *testing.T) {
	tests := []struct {
		name string
		cmd  cmd
	}{
		{"write", c(sendstream.CmdWrite, aPath("a"), aU64(sendstream.AttrFileOffset, 2), aStr(sendstream.AttrData, "XX"))},
		{"truncate", c(sendstream.CmdTruncate, aPath("a"), aU64(sendstream.AttrSize, 3))},
		{"clone into", cloneCmd("a", plainChild, "b")},
		{"clone from parent", cloneCmd("a", plainParent, "b")},
		{"fallocate", c(sendstream.CmdFallocate, aPath("a"), aU32(sendstream.AttrFallocateMode, 0), aU64(sendstream.AttrFileOffset, 0), aU64(sendstream.AttrSize, 1<<22))},
		{"encoded write", c(sendstream.CmdEncodedWrite, aPath("a"), aU64(sendstream.AttrFileOffset, 0), aU64(sendstream.AttrUnencodedFileLen, 4),
			aU64(sendstream.AttrUnencodedLen, 4), aU64(sendstream.AttrUnencodedOffset, 0), aU32(sendstream.AttrCompression, 1), aStr(sendstream.AttrData, zlibOf("ZZZZ")))},
		{"chmod", c(sendstream.CmdChmod, aPath("a"), aU64(sendstream.AttrMode, 0o600))},
		{"chown", c(sendstream.CmdChown, aPath("a"), aU64(sendstream.AttrUID, 7), aU64(sendstream.AttrGID, 8))},
		{"utimes", c(sendstream.CmdUtimes, aPath("a"), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 1, 0), aTime(sendstream.AttrCTime, 1, 0))},
		{"set xattr", c(sendstream.CmdSetXattr, aPath("a"), aStr(sendstream.AttrXattrName, "user.k"), aStr(sendstream.AttrXattrData, "new"))},
		{"remove xattr", c(sendstream.CmdRemoveXattr, aPath("a"), aStr(sendstream.AttrXattrName, "user.k"))},
		{"link", c(sendstream.CmdLink, aPath("a2"), aStr(sendstream.AttrPathLink, "a"))},
		{"write one of a group", c(sendstream.CmdWrite, aPath("c"), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, "CC"))},
		{"rename then write", c(sendstream.CmdRename, aPath("a"), aStr(sendstream.AttrPathTo, "d/moved"))},
		{"unlink", c(sendstream.CmdUnlink, aPath("a"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMirror(t)
			if err := m.receive(t, "p", plainParent, nil, parentCmds()...); err != nil {
				t.Fatal(err)
			}
			before := treeState(t, filepath.Join(m.dir, "p"))
			cmds := []cmd{tt.cmd}
			if tt.name == "rename then write" {
				cmds = append(cmds, c(sendstream.CmdWrite, aPath("d/moved"), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, "M")))
			}
			if err := m.receive(t, "q", plainChild, &plainParent, cmds...); err != nil {
				t.Fatal(err)
			}
			if after := treeState(t, filepath.Join(m.dir, "p")); after != before {
				t.Errorf("parent changed:\n%s\nwas:\n%s", after, before)
			}
			child := treeState(t, filepath.Join(m.dir, "q"))
			if child == before {
				t.Errorf("child is the parent:\n%s", child)
			}
			if !strings.Contains(child, "same-as=b") {
				t.Errorf("c and b are no longer one file in the child:\n%s", child)
			}
			var pb, qb, qc unix.Stat_t
			unix.Lstat(filepath.Join(m.dir, "p/b"), &pb)
			unix.Lstat(filepath.Join(m.dir, "q/b"), &qb)
			unix.Lstat(filepath.Join(m.dir, "q/c"), &qc)
			if pb.Ino == qb.Ino || qb.Ino != qc.Ino {
				t.Errorf("group: parent b %d, child b %d, child c %d", pb.Ino, qb.Ino, qc.Ino)
			}
		})
	}
}

// TestPlainUnchangedFilesShared: what an incremental does not touch is a
// hard link to the parent's file, and the copy equals the parent.
func TestPlainUnchangedFilesShared(t *testing.T) {
	m := newMirror(t)
	if err := m.receive(t, "p", plainParent, nil, parentCmds()...); err != nil {
		t.Fatal(err)
	}
	if err := m.receive(t, "q", plainChild, &plainParent); err != nil {
		t.Fatal(err)
	}
	p, q := treeState(t, filepath.Join(m.dir, "p")), treeState(t, filepath.Join(m.dir, "q"))
	if p != q {
		t.Errorf("copy differs:\n%s\nparent:\n%s", q, p)
	}
	var pa, qa unix.Stat_t
	unix.Lstat(filepath.Join(m.dir, "p/a"), &pa)
	unix.Lstat(filepath.Join(m.dir, "q/a"), &qa)
	if pa.Ino != qa.Ino {
		t.Errorf("unchanged file a copied, not linked")
	}
	ents, err := ListPlain(m.fd)
	if err != nil || len(ents) != 2 || !ents[0].Complete || !ents[1].Complete {
		t.Fatalf("ListPlain: %+v, %v", ents, err)
	}
}

// TestPlainNotCompleteUntilEnd: a stream without END leaves no
// directory under its name, and a leftover that RemoveLeftover deletes.
func TestPlainNotCompleteUntilEnd(t *testing.T) {
	m := newMirror(t)
	tree, err := m.dest.Begin("p", plainParent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Mkfile("x"); err != nil {
		t.Fatal(err)
	}
	tree.Close()
	if _, err := os.Lstat(filepath.Join(m.dir, "p")); err == nil {
		t.Fatal("p exists before END")
	}
	st, err := m.dest.Examine("p", plainParent)
	if err != nil || st != PlainLeftover {
		t.Fatalf("Examine: %v, %v", st, err)
	}
	if ents, _ := ListPlain(m.fd); len(ents) != 1 || ents[0].Complete {
		t.Fatalf("listed %+v", ents)
	}
	if err := m.dest.RemoveLeftover("p"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(m.dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	if err := m.receive(t, "p", plainParent, nil, parentCmds()...); err != nil {
		t.Fatal(err)
	}
	if st, err := m.dest.Examine("p", plainParent); err != nil || st != PlainComplete {
		t.Fatalf("Examine after: %v, %v", st, err)
	}
}

// TestPlainHostile: a stream's paths stay in its temporary directory,
// whatever symbolic links it makes, and cannot forge a marker beside it.
func TestPlainHostile(t *testing.T) {
	m := newMirror(t)
	if err := m.receive(t, "p", plainParent, nil, parentCmds()...); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		ents, _ := os.ReadDir(m.dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ") + "\n" + treeState(t, filepath.Join(m.dir, "p"))
	}
	before := state()
	marker := `{"format":"buttersink-dir-1","state":"complete","name":"evil","ino":1,"uuid":"aa000000-0000-0000-0000-000000000000","received_uuid":"aa000000-0000-0000-0000-000000000000","stransid":1,"parent_uuid":null,"parent_received_uuid":null,"parent_stransid":0,"otime":"2020-01-01T00:00:00Z"}`
	attacks := [][]cmd{
		{c(sendstream.CmdMkfile, aPath("../.evil.bsdir"))},
		{c(sendstream.CmdSymlink, aPath("up"), aStr(sendstream.AttrPathLink, "..")), c(sendstream.CmdMkfile, aPath("up/.evil.bsdir"))},
		{c(sendstream.CmdSymlink, aPath("up"), aStr(sendstream.AttrPathLink, "..")), c(sendstream.CmdMkdir, aPath("up/evil"))},
		{c(sendstream.CmdSymlink, aPath("abs"), aStr(sendstream.AttrPathLink, m.dir)), c(sendstream.CmdMkfile, aPath("abs/.evil.bsdir"))},
		{c(sendstream.CmdSymlink, aPath("pa"), aStr(sendstream.AttrPathLink, "../p/a")),
			c(sendstream.CmdWrite, aPath("pa"), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, marker))},
		{c(sendstream.CmdSymlink, aPath("pa"), aStr(sendstream.AttrPathLink, "../p/a")), c(sendstream.CmdChmod, aPath("pa"), aU64(sendstream.AttrMode, 0o777))},
		{c(sendstream.CmdLink, aPath("x"), aStr(sendstream.AttrPathLink, "../p/a"))},
		{cloneCmd("a", plainParent, "../p/a")},
		{cloneCmd("a", plainParent, "d/l")},
	}
	for i, cmds := range attacks {
		name := fmt.Sprintf("q%d", i)
		err := m.receive(t, name, plainChild, &plainParent, cmds...)
		if err == nil {
			t.Errorf("attack %d succeeded", i)
		}
		if st, _ := m.dest.Examine(name, plainChild); st == PlainLeftover {
			if err := m.dest.RemoveLeftover(name); err != nil {
				t.Fatal(err)
			}
		}
		if after := state(); after != before {
			t.Fatalf("attack %d changed the mirror:\n%s\nwas:\n%s", i, after, before)
		}
	}
	// A marker inside a snapshot is never listed.
	if err := m.receive(t, "inner", plainChild, nil,
		c(sendstream.CmdMkdir, aPath("evil")), c(sendstream.CmdMkfile, aPath(".evil.bsdir")),
		c(sendstream.CmdWrite, aPath(".evil.bsdir"), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, marker))); err != nil {
		t.Fatal(err)
	}
	ents, err := ListPlain(m.fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Path, "evil") {
			t.Errorf("listed a marker a stream made: %+v", e)
		}
	}
}

// TestPlainMarkerNames: names a mirror keeps are refused as snapshots.
func TestPlainMarkerNames(t *testing.T) {
	m := newMirror(t)
	for _, n := range []string{".p.bsdir", ".p.bsrecv-part", "a/b", "..", ""} {
		if _, err := m.dest.Begin(n, plainParent, nil); err == nil {
			t.Errorf("Begin(%q) succeeded", n)
		}
	}
}

func FuzzParseMarker(f *testing.F) {
	f.Add([]byte(`{"format":"buttersink-dir-1","state":"complete","name":"p","ino":5,"uuid":"aa000000-0000-0000-0000-000000000000","received_uuid":"bb000000-0000-0000-0000-000000000000","stransid":1,"parent_uuid":null,"parent_received_uuid":null,"parent_stransid":0,"otime":"2020-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"format":"buttersink-dir-1","state":"receiving","name":"p","temp":".p.bsrecv-part","ino":5}`))
	f.Add([]byte(`{"format":"buttersink-dir-1","state":"complete","name":"p","ino":5,"uuid":"aa000000-0000-0000-0000-000000000000","received_uuid":"bb000000-0000-0000-0000-000000000000","stransid":1,"in_place":true,"filter":{"include":["/a/**"],"exclude":["*.o"]},"otime":"2020-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMarker(b)
		if err != nil {
			return
		}
		if m.Name == "" || strings.Contains(m.Name, "/") || m.Name == ".." || m.Name == "." || m.UUID.IsZero() {
			t.Fatalf("accepted %q", b)
		}
		if m.Temp != "" && m.Temp != TempName(m.Name) {
			t.Fatalf("accepted temp %q", m.Temp)
		}
	})
}

// TestPlainInPlace: an incremental applied in place leaves the directory
// as a separate receive makes it, its marker naming the new snapshot,
// nothing beside it, and the earlier snapshots are skipped.
func TestPlainInPlace(t *testing.T) {
	m := newMirror(t)
	change := c(sendstream.CmdWrite, aPath("a"), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, "new"))
	if err := m.receive(t, "home", plainParent, nil, parentCmds()...); err != nil {
		t.Fatal(err)
	}
	if err := m.receive(t, "sep", plainParent, nil, parentCmds()...); err != nil {
		t.Fatal(err)
	}
	times := func(p string) cmd {
		return c(sendstream.CmdUtimes, aPath(p), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 2, 0), aTime(sendstream.AttrCTime, 3, 0))
	}
	if err := m.receive(t, "sep2", plainChild, &plainParent, change, cloneCmd("b", plainParent, "a"), times("a"), times("b"), times("")); err != nil {
		t.Fatal(err)
	}
	if st, err := m.dest.ExamineInPlace("home", plainChild, &plainParent); err != nil || st != PlainNone {
		t.Fatalf("ExamineInPlace: %v, %v", st, err)
	}
	tree, err := m.dest.BeginInPlace("home", plainChild, plainParent)
	if err != nil {
		t.Fatal(err)
	}
	data := stream(2, change, cloneCmd("b", plainParent, "a"), times("a"), times("b"), times(""))
	a := &Applier{Tree: tree, Self: plainChild}
	r := sendstream.NewReader(bytes.NewReader(data))
	first := true
	r.OnCommand(func(_ *sendstream.Stream, c *sendstream.Command) error {
		if first {
			first = false
			return nil
		}
		return a.Command(c)
	})
	s, err := r.Next()
	if err == nil {
		_, err = io.Copy(io.Discard, s)
	}
	tree.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, want := treeState(t, filepath.Join(m.dir, "home")), treeState(t, filepath.Join(m.dir, "sep2"))
	if got != want {
		t.Errorf("in place:\n%s\nwant:\n%s", got, want)
	}
	mk, err := ReadMarker(m.fd, "home")
	if err != nil || mk.State != StateComplete || mk.ReceivedUUID != plainChild.UUID || mk.PartIno != 0 || len(mk.Applied) != 1 {
		t.Fatalf("marker %+v, %v", mk, err)
	}
	if _, err := os.Lstat(filepath.Join(m.dir, TempName("home"))); err == nil {
		t.Error("temporary directory left")
	}
	for _, id := range []ID{plainParent, plainChild} {
		if st, err := m.dest.ExamineInPlace("home", id, nil); err != nil || st != PlainComplete {
			t.Errorf("ExamineInPlace(%v): %v, %v", id, st, err)
		}
	}
	if _, err := m.dest.ExamineInPlace("home", ID{UUID: uuid.UUID{9}}, &ID{UUID: uuid.UUID{8}}); err == nil {
		t.Error("a stream of another chain accepted")
	}
}

// TestPlainRemove deletes a snapshot directory, following none of the
// symbolic links in it, and only the one its caller names by uuid.
func TestPlainRemove(t *testing.T) {
	m := newMirror(t)
	outside := filepath.Join(m.dir, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o644)
	if err := m.receive(t, "p", plainParent, nil, append(parentCmds(),
		c(sendstream.CmdSymlink, aPath("out"), aStr(sendstream.AttrPathLink, "../outside")),
		c(sendstream.CmdSymlink, aPath("abs"), aStr(sendstream.AttrPathLink, outside)))...); err != nil {
		t.Fatal(err)
	}
	if err := m.receive(t, "q", plainChild, &plainParent); err != nil {
		t.Fatal(err)
	}
	q := treeState(t, filepath.Join(m.dir, "q"))
	mk, err := m.dest.Lookup("p")
	if err != nil || mk == nil {
		t.Fatalf("Lookup: %v, %v", mk, err)
	}
	if err := m.dest.Remove("p", uuid.UUID{1}); err == nil {
		t.Error("removed by another uuid")
	}
	if err := m.dest.Remove("p", mk.UUID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p", ".p.bsdir", TempName("p"), "outside/keep"} {
		_, err := os.Lstat(filepath.Join(m.dir, p))
		if gone := err != nil; gone != (p != "outside/keep") {
			t.Errorf("%s: gone %v", p, gone)
		}
	}
	if got := treeState(t, filepath.Join(m.dir, "q")); got != q {
		t.Errorf("child changed:\n%s\nwas:\n%s", got, q)
	}
	if mk, err := m.dest.Lookup("p"); mk != nil || err != nil {
		t.Errorf("Lookup after: %v, %v", mk, err)
	}
}

// TestPlainInPlaceCut: an in-place receive cut while applying leaves the
// directory complete as it was and a leftover that is removed; one cut
// during the exchange is finished by the next look.
func TestPlainInPlaceCut(t *testing.T) {
	m := newMirror(t)
	if err := m.receive(t, "home", plainParent, nil, parentCmds()...); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, filepath.Join(m.dir, "home"))

	// Cut while applying.
	tree, err := m.dest.BeginInPlace("home", plainChild, plainParent)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Write("a", 0, []byte("new")); err != nil {
		t.Fatal(err)
	}
	tree.Close()
	if got := treeState(t, filepath.Join(m.dir, "home")); got != before {
		t.Fatalf("home changed by a cut receive:\n%s", got)
	}
	if ents, _ := ListPlain(m.fd); len(ents) != 1 || !ents[0].Complete {
		t.Fatalf("listed %+v", ents)
	}
	st, err := m.dest.ExamineInPlace("home", plainChild, &plainParent)
	if err != nil || st != PlainLeftover {
		t.Fatalf("ExamineInPlace: %v, %v", st, err)
	}
	if err := m.dest.RemoveLeftover("home"); err != nil {
		t.Fatal(err)
	}
	if st, err := m.dest.ExamineInPlace("home", plainChild, &plainParent); err != nil || st != PlainNone {
		t.Fatalf("ExamineInPlace after removal: %v, %v", st, err)
	}

	// Cut during the exchange: the marker says receiving, the new
	// content is complete in the temporary directory.
	tree, err = m.dest.BeginInPlace("home", plainChild, plainParent)
	if err != nil {
		t.Fatal(err)
	}
	pt := tree.(*PlainTree)
	if err := pt.Write("a", 0, []byte("new")); err != nil {
		t.Fatal(err)
	}
	pt.DirTree.End()
	if err := WriteMarker(m.fd, pt.marker); err != nil {
		t.Fatal(err)
	}
	tree.Close()
	if ents, _ := ListPlain(m.fd); len(ents) != 1 || ents[0].Complete {
		t.Fatalf("listed during the exchange %+v", ents)
	}
	st, err = m.dest.ExamineInPlace("home", plainChild, &plainParent)
	if err != nil || st != PlainComplete {
		t.Fatalf("ExamineInPlace after a cut exchange: %v, %v", st, err)
	}
	if got := readFile(t, filepath.Join(m.dir, "home", "a"))[:3]; got != "new" {
		t.Errorf("home/a starts %q", got)
	}
	if _, err := os.Lstat(filepath.Join(m.dir, TempName("home"))); err == nil {
		t.Error("old content left")
	}
}

// plainLimit is a PlainTree refusing data beyond fuzzLimit.
type plainLimit struct{ *PlainTree }

func (l plainLimit) Write(path string, offset uint64, data []byte) error {
	if offset > fuzzLimit {
		return errTooBig
	}
	return l.PlainTree.Write(path, offset, data)
}

func (l plainLimit) Truncate(path string, size uint64) error {
	if size > fuzzLimit {
		return errTooBig
	}
	return l.PlainTree.Truncate(path, size)
}

func (l plainLimit) Fallocate(path string, mode uint32, offset, n uint64) error {
	if offset > fuzzLimit || n > fuzzLimit {
		return errTooBig
	}
	return l.PlainTree.Fallocate(path, mode, offset, n)
}

func (l plainLimit) Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	if offset > fuzzLimit || n > fuzzLimit {
		return errTooBig
	}
	return l.PlainTree.Clone(path, offset, src, srcPath, srcOffset, n)
}

func (l plainLimit) EncodedWrite(path string, e *Encoded) error {
	if e.Offset > fuzzLimit {
		return errTooBig
	}
	return l.PlainTree.EncodedWrite(path, e)
}

// FuzzPlainApply applies random commands to an incremental receive into
// a mirror whose parent's files it hard-links: the parent's directory
// stays exactly as it was, and nothing appears in the mirror but the
// child's own names.
func FuzzPlainApply(f *testing.F) {
	write := func(path string) cmd {
		return c(sendstream.CmdWrite, aPath(path), aU64(sendstream.AttrFileOffset, 0), aStr(sendstream.AttrData, "pwned"))
	}
	f.Add(fuzzEncode(1, write("a"), c(sendstream.CmdChmod, aPath("b"), aU64(sendstream.AttrMode, 0o777))))
	f.Add(fuzzEncode(2, c(sendstream.CmdLink, aPath("n"), aStr(sendstream.AttrPathLink, "c")), write("n"),
		c(sendstream.CmdRename, aPath("a"), aStr(sendstream.AttrPathTo, "d/a")), write("d/a")))
	f.Add(fuzzEncode(2, cloneCmd("b", plainParent, "a"), cloneCmd("a", plainChild, "b"),
		c(sendstream.CmdSetXattr, aPath("c"), aStr(sendstream.AttrXattrName, "user.k"), aStr(sendstream.AttrXattrData, "x"))))
	f.Add(fuzzEncode(1, c(sendstream.CmdSymlink, aPath("up"), aStr(sendstream.AttrPathLink, "..")), write("up/p/a"),
		c(sendstream.CmdTruncate, aPath("d/l"), aU64(sendstream.AttrSize, 0)),
		c(sendstream.CmdUtimes, aPath("b"), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 1, 0), aTime(sendstream.AttrCTime, 1, 0))))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		m := newMirror(t)
		if err := m.receive(t, "p", plainParent, nil, parentCmds()...); err != nil {
			t.Fatal(err)
		}
		before := treeState(t, filepath.Join(m.dir, "p"))
		tree, err := m.dest.Begin("q", plainChild, &plainParent)
		if err != nil {
			t.Fatal(err)
		}
		a := &Applier{Tree: plainLimit{tree.(*PlainTree)}, Self: plainChild}
		version := uint32(in[0]%3) + 1
		in = in[1:]
		for len(in) >= 2 {
			typ, n := uint16(in[0]), int(in[1])
			in = in[2:]
			n = min(n, len(in))
			_ = a.Command(&sendstream.Command{Type: typ, Version: version, Payload: in[:n]})
			in = in[n:]
		}
		_ = tree.End()
		tree.Close()
		if after := treeState(t, filepath.Join(m.dir, "p")); after != before {
			t.Fatalf("parent changed:\n%s\nwas\n%s", after, before)
		}
		ents, _ := os.ReadDir(m.dir)
		for _, e := range ents {
			switch e.Name() {
			case "p", ".p.bsdir", "q", ".q.bsdir", TempName("q"):
			default:
				t.Fatalf("%s appeared in the mirror", e.Name())
			}
		}
	})
}
