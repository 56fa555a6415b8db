package receive

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
	"golang.org/x/sys/unix"
)

// BenchmarkApplySmallFiles applies what the kernel sends for new small
// files (orphan, rename, data, owner, mode, times) in 10 directories.
func BenchmarkApplySmallFiles(b *testing.B) {
	const files = 1000
	var cmds []cmd
	for d := range 10 {
		cmds = append(cmds, c(sendstream.CmdMkdir, aPath(fmt.Sprintf("d%d", d))))
	}
	for i := range files {
		o, name := fmt.Sprintf("o%d-5-0", i+300), fmt.Sprintf("d%d/f%d", i%10, i)
		cmds = append(cmds,
			c(sendstream.CmdMkfile, aPath(o), aU64(sendstream.AttrIno, uint64(i+300))),
			c(sendstream.CmdRename, aPath(o), aStr(sendstream.AttrPathTo, name)),
			c(sendstream.CmdWrite, aPath(name), aU64(off, 0), data("some small file content\n")),
			c(sendstream.CmdChown, aPath(name), aU64(sendstream.AttrUID, 0), aU64(sendstream.AttrGID, 0)),
			c(sendstream.CmdChmod, aPath(name), aU64(sendstream.AttrMode, 0o644)),
			c(sendstream.CmdUtimes, aPath(name), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 1, 0), aTime(sendstream.AttrCTime, 1, 0)))
	}
	in := stream(2, cmds...)
	dir := b.TempDir()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		root := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		tree, err := NewDirTree(fd)
		unix.Close(fd)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := apply(tree, in); err != nil {
			b.Fatal(err)
		}
		tree.Close()
	}
}
