package tarball

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// dump describes every file below dir: type, mode, owner, times, size,
// content digest, link target, device and user xattrs; one line each.
func dump(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%q %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// Directory times change as tar fills them in.
			fmt.Fprintf(&b, " m%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if first, ok := inodes[st.Ino]; ok && st.Nlink > 1 {
				fmt.Fprintf(&b, " link=%q", first)
				break
			}
			inodes[st.Ino] = rel
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " size=%d sha=%x", len(data), sha256.Sum256(data))
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %q", l)
		case unix.S_IFCHR, unix.S_IFBLK:
			fmt.Fprintf(&b, " dev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			buf := make([]byte, 4096)
			n, _ := unix.Llistxattr(p, buf)
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			for _, x := range names {
				if strings.HasPrefix(x, "user.") {
					v := make([]byte, 4096)
					m, _ := unix.Lgetxattr(p, x, v)
					fmt.Fprintf(&b, " %s=%q", x, v[:m])
				}
			}
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func writeArchive(t *testing.T, src string, opt Options) ([]byte, Stats) {
	t.Helper()
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var buf bytes.Buffer
	tw := NewWriter(&buf)
	st, err := WriteTree(tw, fd, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

func extract(t *testing.T, archive []byte, args ...string) string {
	t.Helper()
	out := t.TempDir()
	f := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(f, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", append([]string{"-x", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "-p", "-f", f, "-C", out}, args...)...)
	return out
}

func makeTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	j := func(p string) string { return filepath.Join(src, p) }
	must(os.MkdirAll(j("d/e"), 0o755))
	must(os.WriteFile(j("d/f"), []byte("hello"), 0o644))
	must(os.WriteFile(j("empty"), nil, 0o600))
	must(os.Link(j("d/f"), j("hard")))
	must(os.Symlink("../nowhere", j("d/e/sym")))
	must(unix.Mkfifo(j("fifo"), 0o640))
	long := strings.Repeat("x", 120) + "/" + strings.Repeat("ü", 80)
	must(os.MkdirAll(j(filepath.Dir(long)), 0o755))
	must(os.WriteFile(j(long), []byte("long"), 0o644))
	must(os.WriteFile(j("suid"), []byte("#!"), 0o755))
	must(os.Chmod(j("suid"), 0o4755|os.ModeSetuid))
	must(unix.Chmod(j("suid"), 0o4755))
	must(unix.Chmod(j("d/e"), 0o1777))
	// Sparse: data, hole, data, ending in a hole.
	f, err := os.Create(j("sparse"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("a"), 4096), 0)
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("b"), 8192), 1<<20)
	must(err)
	must(f.Truncate(4 << 20))
	must(f.Close())
	must(os.WriteFile(j("holeonly"), nil, 0o644))
	must(os.Truncate(j("holeonly"), 1<<20))
	if err := unix.Lsetxattr(j("d/f"), "user.k", []byte("v\x00\n="), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}
	if os.Geteuid() == 0 {
		must(unix.Mknod(j("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(j("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
		must(os.Lchown(j("d/f"), 1234, 5678))
		must(os.Lchown(j("d/e/sym"), 42, 43))
	}
	must(unix.Mknod(j("sock"), unix.S_IFSOCK|0o600, 0))
	ts := []unix.Timespec{{Sec: 1700000000, Nsec: 123456789}, {Sec: 1600000000, Nsec: 987654321}}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, j("d/f"), ts, unix.AT_SYMLINK_NOFOLLOW))
	must(unix.UtimesNanoAt(unix.AT_FDCWD, j("d/e/sym"), ts, unix.AT_SYMLINK_NOFOLLOW))
	return src
}

func TestWriteTreeExtracts(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	src := makeTree(t)
	a, st := writeArchive(t, src, Options{Prefix: "snap"})
	if st.Sockets != 1 {
		t.Errorf("sockets %d, want 1", st.Sockets)
	}
	if !bytes.Equal(a[len(a)-1024:], make([]byte, 1024)) {
		t.Error("no end of archive")
	}
	// Deterministic.
	b, _ := writeArchive(t, src, Options{Prefix: "snap"})
	if !bytes.Equal(a, b) {
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("two archives of one tree differ at %d: %q", i, a[i-i%512:i-i%512+200])
				break
			}
		}
	}
	out := extract(t, a)
	if err := os.Remove(filepath.Join(src, "sock")); err != nil {
		t.Fatal(err)
	}
	want, got := dump(t, src), dump(t, filepath.Join(out, "snap"))
	if want != got {
		t.Errorf("extracted tree differs:\nwant\n%s\ngot\n%s", want, got)
	}
	// Holes stay holes.
	var sst unix.Stat_t
	if err := unix.Stat(filepath.Join(out, "snap/sparse"), &sst); err != nil {
		t.Fatal(err)
	}
	if sst.Blocks*512 >= 1<<20 {
		t.Errorf("sparse file extracted with %d blocks", sst.Blocks)
	}
	if len(a) > 200<<10 {
		t.Errorf("archive of %d bytes: holes written as data?", len(a))
	}
	// One file out of it.
	one := extract(t, a, "snap/sparse")
	w, _ := os.ReadFile(filepath.Join(src, "sparse"))
	g, err := os.ReadFile(filepath.Join(one, "snap/sparse"))
	if err != nil || !bytes.Equal(w, g) {
		t.Errorf("single file out of the archive differs (%v)", err)
	}
}

func TestWriteTreeSelect(t *testing.T) {
	src := makeTree(t)
	sel := func(p string) bool { return p == "d/e/sym" || strings.HasPrefix(p, "d/e/sym/") }
	a, _ := writeArchive(t, src, Options{Prefix: "s", Select: sel})
	out := extract(t, a)
	var names []string
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(out, p)
		names = append(names, rel)
		return nil
	})
	if want := []string{".", "s", "s/d", "s/d/e", "s/d/e/sym"}; !slices.Equal(names, want) {
		t.Errorf("selected %q, want %q", names, want)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(out, "s/d/e"), &st)
	if st.Mode&0o7777 != 0o1777 {
		t.Errorf("directory above a selected file has mode %o", st.Mode&0o7777)
	}
}

// A hard link whose first name is not selected is written whole under
// the selected one.
func TestWriteTreeSelectHardLink(t *testing.T) {
	src := makeTree(t)
	a, _ := writeArchive(t, src, Options{Prefix: "s", Select: func(p string) bool { return p == "hard" }})
	out := extract(t, a)
	if b, err := os.ReadFile(filepath.Join(out, "s/hard")); err != nil || string(b) != "hello" {
		t.Errorf("hard link out alone: %q, %v", b, err)
	}
}

func TestPAXTime(t *testing.T) {
	for _, c := range []struct {
		t    Time
		want string
	}{
		{Time{1, 0}, "1"}, {Time{1, 500000000}, "1.5"}, {Time{-2, 750000000}, "-1.25"}, {Time{-3, 0}, "-3"}, {Time{0, 1}, "0.000000001"},
	} {
		if got := c.t.pax(); got != c.want {
			t.Errorf("%v: %q, want %q", c.t, got, c.want)
		}
	}
}

func TestRecordLength(t *testing.T) {
	for n := 0; n < 2000; n += 7 {
		var r records
		r.add("k", strings.Repeat("v", n))
		s := string(r.b)
		var l int
		fmt.Sscanf(s, "%d", &l)
		if l != len(s) {
			t.Fatalf("record %q: length %d, is %d", s[:20], l, len(s))
		}
	}
}
