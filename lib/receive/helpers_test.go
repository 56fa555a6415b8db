package receive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
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

// cmd is one command of a test stream.
type cmd struct {
	typ   uint16
	attrs []sendstream.Attr
}

func c(typ uint16, attrs ...sendstream.Attr) cmd { return cmd{typ, attrs} }

func aPath(p string) sendstream.Attr { return aStr(sendstream.AttrPath, p) }
func aStr(typ uint16, s string) sendstream.Attr {
	return sendstream.Attr{Type: typ, Value: []byte(s)}
}
func aU64(typ uint16, v uint64) sendstream.Attr {
	return sendstream.Attr{Type: typ, Value: binary.LittleEndian.AppendUint64(nil, v)}
}
func aU32(typ uint16, v uint32) sendstream.Attr {
	return sendstream.Attr{Type: typ, Value: binary.LittleEndian.AppendUint32(nil, v)}
}
func aTime(typ uint16, sec int64, nsec uint32) sendstream.Attr {
	b := binary.LittleEndian.AppendUint64(nil, uint64(sec))
	return sendstream.Attr{Type: typ, Value: binary.LittleEndian.AppendUint32(b, nsec)}
}
func aUUID(typ uint16, u uuid.UUID) sendstream.Attr {
	return sendstream.Attr{Type: typ, Value: u[:]}
}

var testSelf = ID{UUID: uuid.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, CTransID: 7}

// stream makes a whole stream: header, SUBVOL, cmds, END.
func stream(version uint32, cmds ...cmd) []byte {
	b := sendstream.AppendHeader(nil, version)
	b = sendstream.AppendCommand(b, version, sendstream.CmdSubvol, aStr(sendstream.AttrPath, "sv"),
		aUUID(sendstream.AttrUUID, testSelf.UUID), aU64(sendstream.AttrCTransID, testSelf.CTransID))
	for _, c := range cmds {
		b = sendstream.AppendCommand(b, version, c.typ, c.attrs...)
	}
	return sendstream.AppendCommand(b, version, sendstream.CmdEnd)
}

// apply feeds a stream's commands after the first to an Applier on tree,
// as a receiver does.
func apply(tree Tree, data []byte) (*Applier, error) {
	a := &Applier{Tree: tree, Self: testSelf}
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
		return a, err
	}
	_, err = io.Copy(io.Discard, s)
	return a, err
}

// sandbox is a receive directory with a sentinel directory beside it.
type sandbox struct {
	dir, root, outside string
	tree               *DirTree
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("receive tests run as root")
		}
		t.Skip("receive tests run as root")
	}
	dir := t.TempDir()
	s := &sandbox{dir: dir, root: filepath.Join(dir, "root"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{s.root, s.outside, filepath.Join(s.outside, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "beside"), []byte("beside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(s.outside, "secret"), "user.x", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(s.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if s.tree, err = NewDirTree(fd); err != nil {
		t.Fatal(err)
	}
	s.tree.Self = testSelf
	t.Cleanup(func() { s.tree.Close() })
	return s
}

// state describes everything under dir but root: names, types, modes,
// owners, times, sizes, contents, link targets and xattrs.
func (s *sandbox) state(t testing.TB) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l := fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d mtime=%d.%d ctime=%d.%d", p, st.Mode, st.Uid, st.Gid,
			st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			l += " -> " + target
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(names)
			for _, name := range names {
				if name == "" {
					continue
				}
				v := make([]byte, 4096)
				m, _ := unix.Lgetxattr(p, name, v)
				l += fmt.Sprintf(" %s=%q", name, v[:max(m, 0)])
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
