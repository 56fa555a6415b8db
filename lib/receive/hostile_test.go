package receive

import (
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/sendstream"
	"golang.org/x/sys/unix"
)

// TestHostileStreams applies crafted streams that try to act outside the
// receive directory: each must fail at the command that would, and
// nothing beside the directory may change.
func TestHostileStreams(t *testing.T) {
	link := func(path, target string) cmd {
		return c(sendstream.CmdSymlink, aPath(path), aStr(sendstream.AttrPathLink, target))
	}
	mkfile := func(path string) cmd { return c(sendstream.CmdMkfile, aPath(path)) }
	write := func(path string) cmd {
		return c(sendstream.CmdWrite, aPath(path), aU64(off, 0), data("pwned"))
	}
	clone := func(path, src string) cmd {
		return c(sendstream.CmdClone, aPath(path), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
			aUUID(sendstream.AttrCloneUUID, testSelf.UUID), aU64(sendstream.AttrCloneCTransID, 7),
			aStr(sendstream.AttrClonePath, src), aU64(sendstream.AttrCloneOffset, 0))
	}
	times := func(path string) cmd {
		return c(sendstream.CmdUtimes, aPath(path), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 1, 0), aTime(sendstream.AttrCTime, 1, 0))
	}
	for _, tc := range []struct {
		name string
		// cmds gets the sandbox's outside directory's absolute path.
		cmds func(outside string) []cmd
		// ok: the stream applies (acting on the link itself, inside).
		ok bool
	}{
		{"dotdot", func(string) []cmd { return []cmd{mkfile("../outside/new")} }, false},
		{"dotdot write", func(string) []cmd { return []cmd{write("../outside/secret")} }, false},
		{"absolute", func(o string) []cmd { return []cmd{write(o + "/secret")} }, false},
		{"dot", func(string) []cmd { return []cmd{c(sendstream.CmdMkdir, aPath("./x"))} }, false},
		{"empty component", func(string) []cmd { return []cmd{c(sendstream.CmdMkdir, aPath("a//x"))} }, false},
		{"root rename", func(string) []cmd { return []cmd{c(sendstream.CmdRename, aPath(""), aStr(sendstream.AttrPathTo, "x"))} }, false},
		{"write through link to slash", func(o string) []cmd {
			return []cmd{link("l", "/"), write("l" + o + "/secret")}
		}, false},
		{"mkfile through link to slash", func(o string) []cmd {
			return []cmd{link("l", "/"), mkfile("l" + o + "/new")}
		}, false},
		{"mkdir through link", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdMkdir, aPath("l/d"))}
		}, false},
		{"mkdir through nested link", func(string) []cmd {
			return []cmd{c(sendstream.CmdMkdir, aPath("a")), link("a/l", "../../outside/sub"), c(sendstream.CmdMkdir, aPath("a/l/d"))}
		}, false},
		{"write through link", func(string) []cmd { return []cmd{link("l", "../outside"), write("l/secret")} }, false},
		{"write to link", func(string) []cmd { return []cmd{link("l", "../outside/secret"), write("l")} }, false},
		{"mkfile over link", func(string) []cmd { return []cmd{link("l", "../outside/new"), mkfile("l")} }, false},
		{"truncate link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdTruncate, aPath("l"), aU64(sendstream.AttrSize, 0))}
		}, false},
		{"fallocate link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdFallocate, aPath("l"), aU32(sendstream.AttrFallocateMode, 0), aU64(off, 0), aU64(sendstream.AttrSize, 100))}
		}, false},
		{"rename onto link dir", func(string) []cmd {
			return []cmd{mkfile("f"), link("l", "../outside"), c(sendstream.CmdRename, aPath("f"), aStr(sendstream.AttrPathTo, "l/secret"))}
		}, false},
		{"rename out of link dir", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdRename, aPath("l/secret"), aStr(sendstream.AttrPathTo, "stolen"))}
		}, false},
		{"rename link onto", func(string) []cmd {
			// Replaces the link itself, never its target.
			return []cmd{mkfile("f"), link("l", "../outside/secret"), c(sendstream.CmdRename, aPath("f"), aStr(sendstream.AttrPathTo, "l"))}
		}, true},
		{"link via link dir", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdLink, aPath("stolen"), aStr(sendstream.AttrPathLink, "l/secret"))}
		}, false},
		{"link to link", func(string) []cmd {
			// A hard link to the symbolic link, not to its target.
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdLink, aPath("l2"), aStr(sendstream.AttrPathLink, "l")), write("l2")}
		}, false},
		{"unlink via link dir", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdUnlink, aPath("l/secret"))}
		}, false},
		{"rmdir via link dir", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdRmdir, aPath("l/sub"))}
		}, false},
		{"clone from link dir", func(string) []cmd {
			return []cmd{mkfile("f"), link("l", "../outside"), clone("f", "l/secret")}
		}, false},
		{"clone from link", func(string) []cmd {
			return []cmd{mkfile("f"), link("l", "../outside/secret"), clone("f", "l")}
		}, false},
		{"clone into link", func(string) []cmd {
			return []cmd{mkfile("f"), link("l", "../outside/secret"), clone("l", "f")}
		}, false},
		{"chmod link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdChmod, aPath("l"), aU64(sendstream.AttrMode, 0o777))}
		}, false},
		{"chmod link to dir", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdChmod, aPath("l"), aU64(sendstream.AttrMode, 0o777))}
		}, false},
		{"chown link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdChown, aPath("l"), aU64(sendstream.AttrUID, 4321), aU64(sendstream.AttrGID, 4321))}
		}, true},
		{"utimes link", func(string) []cmd { return []cmd{link("l", "../outside/secret"), times("l")} }, true},
		{"utimes via link dir", func(string) []cmd { return []cmd{link("l", "../outside"), times("l/secret")} }, false},
		{"setxattr link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdSetXattr, aPath("l"), aStr(sendstream.AttrXattrName, "trusted.x"), aStr(sendstream.AttrXattrData, "pwned"))}
		}, true},
		{"setxattr user link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdSetXattr, aPath("l"), aStr(sendstream.AttrXattrName, "user.x"), aStr(sendstream.AttrXattrData, "pwned"))}
		}, false},
		{"removexattr link", func(string) []cmd {
			return []cmd{link("l", "../outside/secret"), c(sendstream.CmdRemoveXattr, aPath("l"), aStr(sendstream.AttrXattrName, "user.x"))}
		}, false},
		{"setxattr via link dir", func(string) []cmd {
			return []cmd{link("l", "../outside"), c(sendstream.CmdSetXattr, aPath("l/secret"), aStr(sendstream.AttrXattrName, "user.y"), aStr(sendstream.AttrXattrData, "pwned"))}
		}, false},
		{"write to device", func(string) []cmd {
			return []cmd{c(sendstream.CmdMknod, aPath("null"), aU64(sendstream.AttrMode, unix.S_IFCHR), aU64(sendstream.AttrRdev, unix.Mkdev(1, 3))), write("null")}
		}, false},
		{"write to fifo", func(string) []cmd { return []cmd{c(sendstream.CmdMkfifo, aPath("p")), write("p")} }, false},
		{"truncate fifo", func(string) []cmd {
			return []cmd{c(sendstream.CmdMkfifo, aPath("p")), c(sendstream.CmdTruncate, aPath("p"), aU64(sendstream.AttrSize, 0))}
		}, false},
		{"write to dir", func(string) []cmd { return []cmd{write("")} }, false},
		{"renamed dir then link", func(string) []cmd {
			// The cached directory "d" must not outlive its name.
			return []cmd{c(sendstream.CmdMkdir, aPath("d")), mkfile("d/f"), c(sendstream.CmdRename, aPath("d"), aStr(sendstream.AttrPathTo, "e")),
				link("d", "../outside"), write("d/secret")}
		}, false},
		{"rmdir then link", func(string) []cmd {
			return []cmd{c(sendstream.CmdMkdir, aPath("d")), mkfile("d/f"), c(sendstream.CmdUnlink, aPath("d/f")), c(sendstream.CmdRmdir, aPath("d")),
				link("d", "../outside"), mkfile("d/f")}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			before := s.state(t)
			done := make(chan error, 1)
			go func() {
				_, err := apply(s.tree, stream(2, tc.cmds(s.outside)...))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("stream hangs")
			}
			if tc.ok && err != nil {
				t.Errorf("apply: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("applied")
			}
			if after := s.state(t); after != before {
				t.Errorf("outside changed:\n%s\nwas\n%s", after, before)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error on several lines: %q", err)
			}
		})
	}
}
