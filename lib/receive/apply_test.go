package receive

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
	"golang.org/x/sys/unix"
)

const (
	p   = sendstream.AttrPath
	off = sendstream.AttrFileOffset
)

func data(b string) sendstream.Attr { return aStr(sendstream.AttrData, b) }

func lstat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyCommands(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint32
		cmds    []cmd
		check   func(t *testing.T, root string)
	}{
		{"file", 1, []cmd{
			c(sendstream.CmdMkfile, aPath("o257-5-0"), aU64(sendstream.AttrIno, 257)),
			c(sendstream.CmdRename, aPath("o257-5-0"), aStr(sendstream.AttrPathTo, "f")),
			c(sendstream.CmdWrite, aPath("f"), aU64(off, 0), data("hello world")),
			c(sendstream.CmdWrite, aPath("f"), aU64(off, 6), data("WORLD!")),
			c(sendstream.CmdTruncate, aPath("f"), aU64(sendstream.AttrSize, 10)),
			c(sendstream.CmdChown, aPath("f"), aU64(sendstream.AttrUID, 1234), aU64(sendstream.AttrGID, 5678)),
			c(sendstream.CmdChmod, aPath("f"), aU64(sendstream.AttrMode, 0o4751)),
			c(sendstream.CmdUtimes, aPath("f"), aTime(sendstream.AttrATime, 1000, 5), aTime(sendstream.AttrMTime, 2000, 6), aTime(sendstream.AttrCTime, 3000, 7)),
		}, func(t *testing.T, root string) {
			f := filepath.Join(root, "f")
			st := lstat(t, f)
			if got := readFile(t, f); got != "hello WORL" {
				t.Errorf("content %q", got)
			}
			if st.Mode != unix.S_IFREG|0o4751 || st.Uid != 1234 || st.Gid != 5678 {
				t.Errorf("mode %o owner %d:%d", st.Mode, st.Uid, st.Gid)
			}
			if st.Atim.Sec != 1000 || st.Atim.Nsec != 5 || st.Mtim.Sec != 2000 || st.Mtim.Nsec != 6 {
				t.Errorf("times %v %v", st.Atim, st.Mtim)
			}
		}},
		{"dirs", 2, []cmd{
			c(sendstream.CmdMkdir, aPath("o258-5-0")),
			c(sendstream.CmdRename, aPath("o258-5-0"), aStr(sendstream.AttrPathTo, "d")),
			c(sendstream.CmdMkdir, aPath("d/e")),
			c(sendstream.CmdMkfile, aPath("d/e/f")),
			c(sendstream.CmdWrite, aPath("d/e/f"), aU64(off, 0), data("x")),
			c(sendstream.CmdRename, aPath("d"), aStr(sendstream.AttrPathTo, "d2")),
			c(sendstream.CmdWrite, aPath("d2/e/f"), aU64(off, 1), data("y")),
			c(sendstream.CmdMkdir, aPath("gone")),
			c(sendstream.CmdRmdir, aPath("gone")),
			c(sendstream.CmdMkdir, aPath("d")),
			c(sendstream.CmdMkdir, aPath("d/e")),
			c(sendstream.CmdChmod, aPath(""), aU64(sendstream.AttrMode, 0o751)),
			c(sendstream.CmdUtimes, aPath(""), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 2, 0), aTime(sendstream.AttrCTime, 3, 0)),
		}, func(t *testing.T, root string) {
			if got := readFile(t, filepath.Join(root, "d2/e/f")); got != "xy" {
				t.Errorf("content %q", got)
			}
			if st := lstat(t, filepath.Join(root, "d/e")); st.Mode != unix.S_IFDIR|0o700 {
				t.Errorf("mode %o", st.Mode)
			}
			if _, err := os.Lstat(filepath.Join(root, "gone")); !os.IsNotExist(err) {
				t.Errorf("rmdir: %v", err)
			}
			if st := lstat(t, root); st.Mode != unix.S_IFDIR|0o751 || st.Mtim.Sec != 2 {
				t.Errorf("root mode %o mtime %d", st.Mode, st.Mtim.Sec)
			}
		}},
		{"nodes", 1, []cmd{
			c(sendstream.CmdMknod, aPath("chr"), aU64(sendstream.AttrMode, unix.S_IFCHR|0o644), aU64(sendstream.AttrRdev, unix.Mkdev(1, 3))),
			c(sendstream.CmdMknod, aPath("blk"), aU64(sendstream.AttrMode, unix.S_IFBLK|0o600), aU64(sendstream.AttrRdev, unix.Mkdev(7, 200))),
			c(sendstream.CmdMkfifo, aPath("fifo"), aU64(sendstream.AttrMode, unix.S_IFIFO|0o644), aU64(sendstream.AttrRdev, 0)),
			c(sendstream.CmdMksock, aPath("sock"), aU64(sendstream.AttrMode, unix.S_IFSOCK|0o755), aU64(sendstream.AttrRdev, 0)),
			c(sendstream.CmdSymlink, aPath("ln"), aU64(sendstream.AttrIno, 300), aStr(sendstream.AttrPathLink, "../../etc/\x01passwd")),
		}, func(t *testing.T, root string) {
			for name, want := range map[string]uint32{"chr": unix.S_IFCHR, "blk": unix.S_IFBLK, "fifo": unix.S_IFIFO | 0o600, "sock": unix.S_IFSOCK | 0o600} {
				if st := lstat(t, filepath.Join(root, name)); st.Mode != want {
					t.Errorf("%s: mode %o, want %o", name, st.Mode, want)
				}
			}
			if st := lstat(t, filepath.Join(root, "blk")); st.Rdev != unix.Mkdev(7, 200) {
				t.Errorf("rdev %x", st.Rdev)
			}
			if got, _ := os.Readlink(filepath.Join(root, "ln")); got != "../../etc/\x01passwd" {
				t.Errorf("symlink %q", got)
			}
		}},
		{"links", 1, []cmd{
			c(sendstream.CmdMkfile, aPath("a")),
			c(sendstream.CmdWrite, aPath("a"), aU64(off, 0), data("aaa")),
			c(sendstream.CmdMkdir, aPath("d")),
			c(sendstream.CmdLink, aPath("d/b"), aStr(sendstream.AttrPathLink, "a")),
			c(sendstream.CmdMkfile, aPath("c")),
			c(sendstream.CmdWrite, aPath("c"), aU64(off, 0), data("ccc")),
			// rename(2) replaces a file.
			c(sendstream.CmdRename, aPath("c"), aStr(sendstream.AttrPathTo, "a")),
			c(sendstream.CmdWrite, aPath("a"), aU64(off, 3), data("C")),
			c(sendstream.CmdUnlink, aPath("d/b")),
			c(sendstream.CmdMkfile, aPath("d/b")),
			c(sendstream.CmdWrite, aPath("d/b"), aU64(off, 0), data("new")),
		}, func(t *testing.T, root string) {
			if got := readFile(t, filepath.Join(root, "a")); got != "cccC" {
				t.Errorf("a %q", got)
			}
			if got := readFile(t, filepath.Join(root, "d/b")); got != "new" {
				t.Errorf("d/b %q", got)
			}
		}},
		{"rename onto written", 1, []cmd{
			c(sendstream.CmdMkfile, aPath("a")),
			c(sendstream.CmdMkfile, aPath("c")),
			c(sendstream.CmdWrite, aPath("c"), aU64(off, 0), data("ccc")),
			c(sendstream.CmdWrite, aPath("a"), aU64(off, 0), data("aaa")),
			c(sendstream.CmdRename, aPath("c"), aStr(sendstream.AttrPathTo, "a")),
			c(sendstream.CmdWrite, aPath("a"), aU64(off, 3), data("C")),
			c(sendstream.CmdMkdir, aPath("d")),
			c(sendstream.CmdMkfile, aPath("d/f")),
			c(sendstream.CmdRename, aPath("d"), aStr(sendstream.AttrPathTo, "e")),
			c(sendstream.CmdMkdir, aPath("d")),
			c(sendstream.CmdMkfile, aPath("d/f")),
			c(sendstream.CmdWrite, aPath("e/f"), aU64(off, 0), data("e")),
			c(sendstream.CmdWrite, aPath("d/f"), aU64(off, 0), data("d")),
		}, func(t *testing.T, root string) {
			for name, want := range map[string]string{"a": "cccC", "d/f": "d", "e/f": "e"} {
				if got := readFile(t, filepath.Join(root, name)); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		}},
		{"made then renamed", 1, []cmd{
			c(sendstream.CmdMkfile, aPath("o1")),
			c(sendstream.CmdRename, aPath("o1"), aStr(sendstream.AttrPathTo, "a")),
			c(sendstream.CmdWrite, aPath("a"), aU64(off, 0), data("old")),
			// Onto a file: rename(2) replaces it.
			c(sendstream.CmdMkfile, aPath("o2")),
			c(sendstream.CmdRename, aPath("o2"), aStr(sendstream.AttrPathTo, "a")),
			c(sendstream.CmdWrite, aPath("a"), aU64(off, 0), data("new")),
			c(sendstream.CmdMkdir, aPath("o3")),
			c(sendstream.CmdRename, aPath("o3"), aStr(sendstream.AttrPathTo, "d")),
			// Onto an empty directory.
			c(sendstream.CmdMkdir, aPath("o4")),
			c(sendstream.CmdMkfile, aPath("o4/f")),
			c(sendstream.CmdRename, aPath("o4"), aStr(sendstream.AttrPathTo, "d")),
			c(sendstream.CmdSymlink, aPath("o5"), aStr(sendstream.AttrPathLink, "a")),
			c(sendstream.CmdRename, aPath("o5"), aStr(sendstream.AttrPathTo, "d/l")),
			c(sendstream.CmdMknod, aPath("o6"), aU64(sendstream.AttrMode, unix.S_IFCHR|0o644), aU64(sendstream.AttrRdev, unix.Mkdev(1, 3))),
			c(sendstream.CmdRename, aPath("o6"), aStr(sendstream.AttrPathTo, "d/n")),
			c(sendstream.CmdMkfifo, aPath("o7")),
			c(sendstream.CmdRename, aPath("o7"), aStr(sendstream.AttrPathTo, "o7")),
			c(sendstream.CmdMkfile, aPath("o8")),
		}, func(t *testing.T, root string) {
			if got := readFile(t, filepath.Join(root, "a")); got != "new" {
				t.Errorf("a %q", got)
			}
			if got, _ := os.Readlink(filepath.Join(root, "d/l")); got != "a" {
				t.Errorf("d/l %q", got)
			}
			for name, want := range map[string]uint32{"d/f": unix.S_IFREG | 0o600, "d/n": unix.S_IFCHR, "o7": unix.S_IFIFO | 0o600, "o8": unix.S_IFREG | 0o600} {
				if st := lstat(t, filepath.Join(root, name)); st.Mode != want {
					t.Errorf("%s: mode %o, want %o", name, st.Mode, want)
				}
			}
			for _, name := range []string{"o1", "o2", "o3", "o4", "o5", "o6"} {
				if _, err := os.Lstat(filepath.Join(root, name)); !os.IsNotExist(err) {
					t.Errorf("%s: %v", name, err)
				}
			}
		}},
		{"many dirs", 1, manyDirs(300), func(t *testing.T, root string) {
			for i := range 300 {
				name := fmt.Sprintf("d%d/sub/f", i)
				if got := readFile(t, filepath.Join(root, name)); got != name+name {
					t.Fatalf("%s: %q", name, got)
				}
			}
		}},
		{"xattrs", 1, []cmd{
			c(sendstream.CmdMkfile, aPath("f")),
			c(sendstream.CmdSetXattr, aPath("f"), aStr(sendstream.AttrXattrName, "user.a"), aStr(sendstream.AttrXattrData, "1")),
			c(sendstream.CmdSetXattr, aPath("f"), aStr(sendstream.AttrXattrName, "user.b"), aStr(sendstream.AttrXattrData, "")),
			c(sendstream.CmdSetXattr, aPath("f"), aStr(sendstream.AttrXattrName, "user.c"), aStr(sendstream.AttrXattrData, "3")),
			c(sendstream.CmdRemoveXattr, aPath("f"), aStr(sendstream.AttrXattrName, "user.c")),
			c(sendstream.CmdSetXattr, aPath(""), aStr(sendstream.AttrXattrName, "user.root"), aStr(sendstream.AttrXattrData, "r")),
		}, func(t *testing.T, root string) {
			buf := make([]byte, 64)
			for name, want := range map[string]string{"f\x00user.a": "1", "f\x00user.b": "", "\x00user.root": "r"} {
				f, attr, _ := strings.Cut(name, "\x00")
				n, err := unix.Lgetxattr(filepath.Join(root, f), attr, buf)
				if err != nil || string(buf[:n]) != want {
					t.Errorf("%s %s: %q %v", f, attr, buf[:max(n, 0)], err)
				}
			}
			if _, err := unix.Lgetxattr(filepath.Join(root, "f"), "user.c", buf); err != unix.ENODATA {
				t.Errorf("user.c: %v", err)
			}
		}},
		{"clone", 1, []cmd{
			c(sendstream.CmdMkfile, aPath("src")),
			c(sendstream.CmdWrite, aPath("src"), aU64(off, 0), data("0123456789")),
			c(sendstream.CmdMkfile, aPath("dst")),
			c(sendstream.CmdWrite, aPath("dst"), aU64(off, 0), data("abcdefgh")),
			c(sendstream.CmdClone, aPath("dst"), aU64(off, 2), aU64(sendstream.AttrCloneLen, 3),
				aUUID(sendstream.AttrCloneUUID, testSelf.UUID), aU64(sendstream.AttrCloneCTransID, 99),
				aStr(sendstream.AttrClonePath, "src"), aU64(sendstream.AttrCloneOffset, 4)),
			c(sendstream.CmdClone, aPath("dst"), aU64(off, 8), aU64(sendstream.AttrCloneLen, 0),
				aUUID(sendstream.AttrCloneUUID, testSelf.UUID), aU64(sendstream.AttrCloneCTransID, 7),
				aStr(sendstream.AttrClonePath, "src"), aU64(sendstream.AttrCloneOffset, 7)),
		}, func(t *testing.T, root string) {
			if got := readFile(t, filepath.Join(root, "dst")); got != "ab456fgh789" {
				t.Errorf("dst %q", got)
			}
		}},
		{"v2", 2, []cmd{
			c(sendstream.CmdMkfile, aPath("f")),
			c(sendstream.CmdFallocate, aPath("f"), aU32(sendstream.AttrFallocateMode, 0), aU64(off, 0), aU64(sendstream.AttrSize, 8192)),
			c(sendstream.CmdWrite, aPath("f"), aU64(off, 0), data(strings.Repeat("z", 8192))),
			c(sendstream.CmdFallocate, aPath("f"), aU32(sendstream.AttrFallocateMode, unix.FALLOC_FL_KEEP_SIZE|unix.FALLOC_FL_PUNCH_HOLE), aU64(off, 0), aU64(sendstream.AttrSize, 4096)),
			c(sendstream.CmdUpdateExtent, aPath("f"), aU64(off, 0), aU64(sendstream.AttrSize, 4096)),
			c(sendstream.CmdFileattr, aPath("f"), aU64(sendstream.AttrFileattr, 0x40)),
		}, func(t *testing.T, root string) {
			got := readFile(t, filepath.Join(root, "f"))
			if got != strings.Repeat("\x00", 4096)+strings.Repeat("z", 4096) {
				t.Errorf("content %q...", got[:8])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			a, err := apply(s.tree, stream(tc.version, tc.cmds...))
			if err != nil {
				t.Fatal(err)
			}
			n := int64(0)
			for _, c := range tc.cmds {
				n += int64(len(sendstream.AppendCommand(nil, tc.version, c.typ, c.attrs...)))
			}
			if want := n + sendstream.CmdHeaderLen; a.Applied() != want {
				t.Errorf("applied %d bytes, want %d", a.Applied(), want)
			}
			tc.check(t, s.root)
		})
	}
}

// recorder is a Tree that remembers the calls it got.
type recorder struct {
	Tree
	calls []string
}

func (r *recorder) Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	r.calls = append(r.calls, "clone "+path+" "+src.UUID.Canonical()+" "+srcPath)
	return nil
}

func (r *recorder) EncodedWrite(path string, e *Encoded) error {
	r.calls = append(r.calls, "encoded "+path+" "+string(e.Data))
	return nil
}

func (r *recorder) EnableVerity(path string, v *Verity) error {
	r.calls = append(r.calls, "verity "+path+" "+string(v.Salt))
	return nil
}

func (r *recorder) End() error {
	r.calls = append(r.calls, "end")
	return nil
}

func TestApplyDecodes(t *testing.T) {
	other := uuid.UUID{9}
	r := &recorder{}
	_, err := apply(r, stream(3,
		c(sendstream.CmdClone, aPath("d"), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
			aUUID(sendstream.AttrCloneUUID, other), aU64(sendstream.AttrCloneCTransID, 7),
			aStr(sendstream.AttrClonePath, "s"), aU64(sendstream.AttrCloneOffset, 0)),
		c(sendstream.CmdEncodedWrite, aPath("e"), aU64(off, 0), aU64(sendstream.AttrUnencodedFileLen, 4),
			aU64(sendstream.AttrUnencodedLen, 8), aU64(sendstream.AttrUnencodedOffset, 4),
			aU32(sendstream.AttrCompression, 2), data("zzz")),
		c(sendstream.CmdEnableVerity, aPath("v"), sendstream.Attr{Type: attrVerityAlgorithm, Value: []byte{1}},
			aU32(attrVerityBlockSize, 4096), aStr(attrVeritySalt, "salt")),
	))
	if err != nil {
		t.Fatal(err)
	}
	want := "clone d " + other.Canonical() + " s|encoded e zzz|verity v salt|end"
	if got := strings.Join(r.calls, "|"); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

// namer is a Tree that records the inodes made and renamed, and refuses
// to make one where a name is taken.
type namer struct {
	recorder
	taken map[string]bool
}

func (n *namer) Alike(string) bool { return true }

func (n *namer) Mkfile(path string) error {
	if n.taken[path] {
		return unix.EEXIST
	}
	n.calls = append(n.calls, "mkfile "+path)
	return nil
}

func (n *namer) Symlink(path, target string) error {
	n.calls = append(n.calls, "symlink "+path+" "+target)
	return nil
}

func (n *namer) Rename(from, to string) error {
	n.calls = append(n.calls, "rename "+from+" "+to)
	return nil
}

func (n *namer) Chmod(path string, mode uint32) error {
	n.calls = append(n.calls, "chmod "+path)
	return nil
}

func TestApplyMakesAtFinalName(t *testing.T) {
	tr := &namer{taken: map[string]bool{"taken": true}}
	a := &Applier{Tree: tr}
	var total int64
	for i, tc := range []struct {
		cmd   cmd
		calls string
		held  bool
	}{
		{c(sendstream.CmdMkfile, aPath("o1")), "", true},
		{c(sendstream.CmdRename, aPath("o1"), aStr(sendstream.AttrPathTo, "f")), "mkfile f", false},
		{c(sendstream.CmdMkfile, aPath("o2")), "", true},
		{c(sendstream.CmdRename, aPath("o2"), aStr(sendstream.AttrPathTo, "taken")), "mkfile o2|rename o2 taken", false},
		{c(sendstream.CmdSymlink, aPath("o3"), aStr(sendstream.AttrPathLink, "x")), "", true},
		{c(sendstream.CmdRename, aPath("other"), aStr(sendstream.AttrPathTo, "g")), "symlink o3 x|rename other g", false},
		{c(sendstream.CmdMkfile, aPath("o4")), "", true},
		{c(sendstream.CmdChmod, aPath("o4"), aU64(sendstream.AttrMode, 0o644)), "mkfile o4|chmod o4", false},
		{c(sendstream.CmdMkfile, aPath("o5")), "", true},
		{c(sendstream.CmdEnd), "mkfile o5|end", false},
	} {
		b := sendstream.AppendCommand(nil, 1, tc.cmd.typ, tc.cmd.attrs...)
		tr.calls = nil
		if err := a.Command(&sendstream.Command{Type: tc.cmd.typ, Version: 1, Payload: b[sendstream.CmdHeaderLen:]}); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got := strings.Join(tr.calls, "|"); got != tc.calls {
			t.Errorf("%d: calls %s, want %s", i, got, tc.calls)
		}
		// A command held back is not applied yet.
		total += int64(len(b))
		want := total
		if tc.held {
			want -= int64(len(b))
		}
		if a.Applied() != want {
			t.Errorf("%d: applied %d, want %d", i, a.Applied(), want)
		}
	}
}

func TestApplyStrict(t *testing.T) {
	w := func(attrs ...sendstream.Attr) cmd { return c(sendstream.CmdWrite, attrs...) }
	for _, tc := range []struct {
		name    string
		version uint32
		cmd     cmd
		want    string
	}{
		{"missing", 1, w(aPath("f"), data("x")), "WRITE at byte 65: no FILE_OFFSET attribute"},
		{"short u64", 1, w(aPath("f"), aU32(off, 0), data("x")), "FILE_OFFSET of 4 bytes, want 8"},
		{"duplicate", 1, w(aPath("f"), aPath("g"), aU64(off, 0), data("x")), "attribute PATH twice"},
		{"unknown attr", 1, w(aPath("f"), aU64(off, 0), aU64(sendstream.AttrFallocateMode, 0), data("x")), "unknown attribute 25 in a protocol 1 stream"},
		{"unknown attr v3", 3, w(aPath("f"), aU64(off, 0), aU64(36, 0), data("x")), "unknown attribute 36"},
		{"unknown command", 1, c(sendstream.CmdFallocate, aPath("f")), "FALLOCATE at byte 65: unknown command in a protocol 1 stream"},
		{"unknown command v3", 3, c(27, aPath("f")), "command 27 at byte 65: unknown command"},
		{"bad time", 1, c(sendstream.CmdUtimes, aPath("f"), aTime(sendstream.AttrATime, 0, 1e9), aTime(sendstream.AttrMTime, 0, 0), aTime(sendstream.AttrCTime, 0, 0)), "ATIME with 1000000000 nanoseconds"},
		{"short time", 1, c(sendstream.CmdUtimes, aPath("f"), aU64(sendstream.AttrATime, 0), aTime(sendstream.AttrMTime, 0, 0), aTime(sendstream.AttrCTime, 0, 0)), "ATIME of 8 bytes, want 12"},
		{"mode bits", 1, c(sendstream.CmdChmod, aPath("f"), aU64(sendstream.AttrMode, 0o100644)), "more than permission bits"},
		{"short uuid", 1, c(sendstream.CmdClone, aPath("d"), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
			aStr(sendstream.AttrCloneUUID, "short"), aU64(sendstream.AttrCloneCTransID, 7),
			aStr(sendstream.AttrClonePath, "s"), aU64(sendstream.AttrCloneOffset, 0)), "CLONE_UUID of 5 bytes, want 16"},
		{"encoded range", 2, c(sendstream.CmdEncodedWrite, aPath("e"), aU64(off, 0), aU64(sendstream.AttrUnencodedFileLen, 5),
			aU64(sendstream.AttrUnencodedLen, 8), aU64(sendstream.AttrUnencodedOffset, 4), data("zzz")), "beyond the 8 unencoded bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			_, err := apply(r, stream(tc.version, tc.cmd))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if len(r.calls) != 0 {
				t.Errorf("calls %v", r.calls)
			}
		})
	}
}

func TestApplyOneSubvolume(t *testing.T) {
	a := &Applier{Tree: &recorder{}}
	for _, typ := range []uint16{sendstream.CmdSubvol, sendstream.CmdSnapshot} {
		if err := a.Command(&sendstream.Command{Type: typ, Version: 1}); err == nil {
			t.Errorf("%s accepted", sendstream.CmdName(typ))
		}
	}
	if err := a.Command(&sendstream.Command{Type: sendstream.CmdEnd, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.Command(&sendstream.Command{Type: sendstream.CmdEnd, Version: 1}); err == nil {
		t.Error("command after END accepted")
	}
}

func TestDirTreeEncodedWrite(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("0123456789"))
	zw.Close()
	enc := func(path string, fileLen, unencLen, unencOff uint64, compression, encryption uint32, payload string) cmd {
		return c(sendstream.CmdEncodedWrite, aPath(path), aU64(off, 3), aU64(sendstream.AttrUnencodedFileLen, fileLen),
			aU64(sendstream.AttrUnencodedLen, unencLen), aU64(sendstream.AttrUnencodedOffset, unencOff),
			aU32(sendstream.AttrCompression, compression), aU32(sendstream.AttrEncryption, encryption), data(payload))
	}
	s := newSandbox(t)
	if _, err := apply(s.tree, stream(2, c(sendstream.CmdMkfile, aPath("f")), enc("f", 5, 10, 2, 1, 0, z.String()),
		enc("f", 4, 16, 12, 1, 0, z.String()))); err != nil {
		t.Fatal(err)
	}
	// The second extent decodes to 10 bytes of its 16: the rest, which
	// it writes over the first's "2345", is zeros.
	if got := readFile(t, filepath.Join(s.root, "f")); got != "\x00\x00\x00\x00\x00\x00\x006" {
		t.Errorf("content %q", got)
	}
	for _, tc := range []struct {
		name string
		cmd  cmd
		want string
	}{
		{"encrypted", enc("f", 5, 10, 2, 1, 1, z.String()), "unsupported"},
		{"too long", enc("f", 5, 200000, 2, 1, 0, z.String()), "over 131072"},
		{"corrupt", enc("f", 5, 10, 2, 1, 0, "zzz"), "encoded write"},
		{"unknown compression", enc("f", 5, 10, 2, 9, 0, z.String()), "unknown compression 9"},
		{"into a fifo", enc("p", 5, 10, 2, 1, 0, z.String()), "not a regular file"},
	} {
		s := newSandbox(t)
		_, err := apply(s.tree, stream(2, c(sendstream.CmdMkfile, aPath("f")), c(sendstream.CmdMkfifo, aPath("p")), tc.cmd))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestDirTreeCloneElsewhere(t *testing.T) {
	s := newSandbox(t)
	// A clone from another subvolume has no source in a directory.
	if _, err := apply(s.tree, stream(1, c(sendstream.CmdMkfile, aPath("g")),
		c(sendstream.CmdClone, aPath("g"), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
			aUUID(sendstream.AttrCloneUUID, uuid.UUID{9}), aU64(sendstream.AttrCloneCTransID, 7),
			aStr(sendstream.AttrClonePath, "f"), aU64(sendstream.AttrCloneOffset, 0)))); err == nil || !strings.Contains(err.Error(), "not the one received") {
		t.Errorf("clone from elsewhere: %v", err)
	}
}

// manyDirs makes more directories than the cache holds and goes back to
// each.
func manyDirs(n int) []cmd {
	var cmds []cmd
	for i := range n {
		d := fmt.Sprintf("d%d", i)
		cmds = append(cmds, c(sendstream.CmdMkdir, aPath(d)), c(sendstream.CmdMkdir, aPath(d+"/sub")),
			c(sendstream.CmdMkfile, aPath(d+"/sub/f")), c(sendstream.CmdWrite, aPath(d+"/sub/f"), aU64(off, 0), data(d+"/sub/f")))
	}
	for i := range n {
		f := fmt.Sprintf("d%d/sub/f", i)
		cmds = append(cmds, c(sendstream.CmdWrite, aPath(f), aU64(off, uint64(len(f))), data(f)))
	}
	return cmds
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestDirTreeBounded: the descriptors a DirTree keeps are bounded
// whatever the stream, and all released by Close.
func TestDirTreeBounded(t *testing.T) {
	s := newSandbox(t)
	before := openFDs(t)
	cmds := append(manyDirs(200), c(sendstream.CmdSymlink, aPath("l"), aStr(sendstream.AttrPathLink, "d1")),
		c(sendstream.CmdWrite, aPath("l/sub/f"), aU64(off, 0), data("via link")))
	tree := &cacheSize{DirTree: s.tree}
	if _, err := apply(tree, stream(1, cmds...)); err != nil {
		t.Fatal(err)
	}
	if tree.atEnd != dirCacheSize {
		t.Errorf("%d directories cached, want %d", tree.atEnd, dirCacheSize)
	}
	if n := len(s.tree.dirs.byDir); n != 0 {
		t.Errorf("%d directories cached after END", n)
	}
	if got := readFile(t, filepath.Join(s.root, "d1/sub/f")); got != "via linkd1/sub/f" {
		t.Errorf("through a link inside: %q", got)
	}
	s.tree.Close()
	if after := openFDs(t); after != before-1 {
		t.Errorf("%d descriptors open after Close, %d before the stream (root included)", after, before)
	}
}

// cacheSize notes how many directories DirTree cached at END.
type cacheSize struct {
	*DirTree
	atEnd int
}

func (c *cacheSize) End() error {
	c.atEnd = len(c.dirs.byDir)
	return c.DirTree.End()
}

// TestApplyReplay: a receive resumed at its last noted point gets again
// the commands the first run carried out after it, up to a command held
// back and the one after it. With Replay they come out as once, wherever
// the first run stopped (held or made at the orphan name, made at the
// final name, renamed), and never leave the orphan behind.
func TestApplyReplay(t *testing.T) {
	mk := c(sendstream.CmdMkfile, aPath("o1"))
	mv := c(sendstream.CmdRename, aPath("o1"), aStr(sendstream.AttrPathTo, "f"))
	wr := c(sendstream.CmdWrite, aPath("f"), aU64(sendstream.AttrFileOffset, 0), data("x"))
	cmds := []cmd{mk, mv, wr}
	command := func(x cmd) *sendstream.Command {
		b := sendstream.AppendCommand(nil, 1, x.typ, x.attrs...)
		return &sendstream.Command{Type: x.typ, Version: 1, Payload: b[sendstream.CmdHeaderLen:]}
	}
	for firstRun := 0; firstRun <= len(cmds); firstRun++ {
		for _, flushed := range []bool{false, true} {
			s := newSandbox(t)
			first := &Applier{Tree: s.tree, Self: testSelf}
			for _, x := range cmds[:firstRun] {
				if err := first.Command(command(x)); err != nil {
					t.Fatal(err)
				}
			}
			if flushed {
				// A checkpoint carried out the held MKFILE at its orphan name.
				if err := first.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			again := &Applier{Tree: s.tree, Self: testSelf, Replay: true}
			for _, x := range cmds {
				if err := again.Command(command(x)); err != nil {
					t.Fatalf("after %d commands (flushed %v): %v", firstRun, flushed, err)
				}
			}
			if err := again.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(s.root, "f")); got != "x" {
				t.Errorf("after %d commands (flushed %v): f holds %q", firstRun, flushed, got)
			}
			if _, err := os.Lstat(filepath.Join(s.root, "o1")); !os.IsNotExist(err) {
				t.Errorf("after %d commands (flushed %v): the orphan o1 is left: %v", firstRun, flushed, err)
			}
		}
	}
}

// writer is a Tree that records writes and truncates.
type writer struct {
	recorder
}

func (w *writer) Write(path string, off uint64, data []byte) error {
	w.calls = append(w.calls, fmt.Sprintf("write %s %d %d", path, off, len(data)))
	return nil
}

func (w *writer) Truncate(path string, size uint64) error {
	w.calls = append(w.calls, fmt.Sprintf("truncate %s %d", path, size))
	return nil
}

func (w *writer) Chmod(path string, mode uint32) error {
	w.calls = append(w.calls, "chmod "+path)
	return nil
}

// TestApplyTruncatesFirst: a WRITE ending inside a page is held back;
// the TRUNCATE to its end that follows cuts the file at the write's
// start first; anything else carries the write out as it is.
func TestApplyTruncatesFirst(t *testing.T) {
	tr := &writer{}
	a := &Applier{Tree: tr}
	wr := func(p string, off uint64, n int) cmd {
		return c(sendstream.CmdWrite, aPath(p), aU64(sendstream.AttrFileOffset, off), data(strings.Repeat("x", n)))
	}
	trunc := func(p string, size uint64) cmd {
		return c(sendstream.CmdTruncate, aPath(p), aU64(sendstream.AttrSize, size))
	}
	var total, heldLen int64
	for i, tc := range []struct {
		cmd   cmd
		calls string
		held  bool
	}{
		{wr("f", 0, 5000), "", true},
		{trunc("f", 5000), "truncate f 0|write f 0 5000", false},
		{wr("g", 0, 8192), "write g 0 8192", false}, // ends on a page: never held
		{wr("g", 8192, 100), "", true},
		{trunc("g", 8292), "truncate g 8192|write g 8192 100", false},
		{wr("h", 0, 100), "", true},
		{trunc("h", 99), "write h 0 100|truncate h 99", false}, // another size
		{wr("i", 0, 100), "", true},
		{trunc("j", 100), "write i 0 100|truncate j 100", false}, // another file
		{wr("k", 0, 100), "", true},
		{c(sendstream.CmdChmod, aPath("k"), aU64(sendstream.AttrMode, 0o644)), "write k 0 100|chmod k", false},
		{wr("l", 0, maxHeldWrite+1), "write l 0 131073", false}, // too large to hold
		{wr("m", 0, 10), "", true},
		{c(sendstream.CmdEnd), "write m 0 10|end", false},
	} {
		b := sendstream.AppendCommand(nil, 2, tc.cmd.typ, tc.cmd.attrs...)
		tr.calls = nil
		if err := a.Command(&sendstream.Command{Type: tc.cmd.typ, Version: 2, Payload: b[sendstream.CmdHeaderLen:]}); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got := strings.Join(tr.calls, "|"); got != tc.calls {
			t.Errorf("%d: calls %s, want %s", i, got, tc.calls)
		}
		// A write held back is not applied, nor the tree at its point.
		total += int64(len(b))
		heldLen = 0
		if tc.held {
			heldLen = int64(len(b))
		}
		if a.Applied() != total-heldLen || a.Holding() != tc.held {
			t.Errorf("%d: applied %d holding %v, want %d %v", i, a.Applied(), a.Holding(), total-heldLen, tc.held)
		}
	}
}

// TestApplyTruncatesFirstContent: on a real tree, cutting first leaves
// the bytes the stream's order does, whatever the old file held.
func TestApplyTruncatesFirstContent(t *testing.T) {
	s := newSandbox(t)
	old := strings.Repeat("o", 10000)
	for _, f := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(s.root, f), []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wr := func(p string, off uint64, d string) cmd {
		return c(sendstream.CmdWrite, aPath(p), aU64(sendstream.AttrFileOffset, off), data(d))
	}
	trunc := func(p string, size uint64) cmd {
		return c(sendstream.CmdTruncate, aPath(p), aU64(sendstream.AttrSize, size))
	}
	newer := strings.Repeat("n", 5000)
	if _, err := apply(s.tree, stream(2,
		wr("a", 0, newer), trunc("a", 5000),
		wr("b", 0, strings.Repeat("n", 4096)), wr("b", 4096, "tail"), trunc("b", 4100),
		wr("c", 6000, "mid"), trunc("c", 6003),
	)); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"a": newer,
		"b": strings.Repeat("n", 4096) + "tail",
		"c": old[:6000] + "mid",
	} {
		if got := readFile(t, filepath.Join(s.root, f)); got != want {
			t.Errorf("%s: %d bytes, want %d (%q...)", f, len(got), len(want), got[:min(len(got), 20)])
		}
	}
}
