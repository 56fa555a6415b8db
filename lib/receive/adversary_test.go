package receive

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/sendstream"
)

// TestAdversaryStaleCaches renames directories and files through an
// alias (a symbolic link to the root, which the caches do not know as
// the same path), so that a cached directory or write descriptor outlives
// the name it was opened by, then puts a symbolic link leading out at
// that name and acts on it with every command. A stale descriptor may
// misdirect a command inside the tree; nothing outside may change.
func TestAdversaryStaleCaches(t *testing.T) {
	P := aPath
	sym := func(p, target string) cmd {
		return c(sendstream.CmdSymlink, P(p), aStr(sendstream.AttrPathLink, target))
	}
	mv := func(from, to string) cmd { return c(sendstream.CmdRename, P(from), aStr(sendstream.AttrPathTo, to)) }
	write := func(p string) cmd { return c(sendstream.CmdWrite, P(p), aU64(off, 0), data("pwned")) }
	// What acts on a name: each is tried on the stale name.
	acts := map[string]func(p string) []cmd{
		"mkfile": func(p string) []cmd { return []cmd{c(sendstream.CmdMkfile, P(p))} },
		"mkdir":  func(p string) []cmd { return []cmd{c(sendstream.CmdMkdir, P(p))} },
		"mknod": func(p string) []cmd {
			return []cmd{c(sendstream.CmdMknod, P(p), aU64(sendstream.AttrMode, 0o20000), aU64(sendstream.AttrRdev, 0x103))}
		},
		"symlink":  func(p string) []cmd { return []cmd{sym(p, "x")} },
		"write":    func(p string) []cmd { return []cmd{write(p)} },
		"truncate": func(p string) []cmd { return []cmd{c(sendstream.CmdTruncate, P(p), aU64(sendstream.AttrSize, 0))} },
		"fallocate": func(p string) []cmd {
			return []cmd{c(sendstream.CmdFallocate, P(p), aU32(sendstream.AttrFallocateMode, 0), aU64(off, 0), aU64(sendstream.AttrSize, 1<<16))}
		},
		"clone into": func(p string) []cmd {
			return []cmd{c(sendstream.CmdMkfile, P("src")), write("src"), c(sendstream.CmdClone, P(p), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
				aUUID(sendstream.AttrCloneUUID, testSelf.UUID), aU64(sendstream.AttrCloneCTransID, 7),
				aStr(sendstream.AttrClonePath, "src"), aU64(sendstream.AttrCloneOffset, 0))}
		},
		"clone from": func(p string) []cmd {
			return []cmd{c(sendstream.CmdMkfile, P("dst")), c(sendstream.CmdClone, P("dst"), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
				aUUID(sendstream.AttrCloneUUID, testSelf.UUID), aU64(sendstream.AttrCloneCTransID, 7),
				aStr(sendstream.AttrClonePath, p), aU64(sendstream.AttrCloneOffset, 0))}
		},
		"encoded write": func(p string) []cmd {
			return []cmd{c(sendstream.CmdEncodedWrite, P(p), aU64(off, 0), aU64(sendstream.AttrUnencodedFileLen, 5),
				aU64(sendstream.AttrUnencodedLen, 5), aU64(sendstream.AttrUnencodedOffset, 0), aU32(sendstream.AttrCompression, 1),
				data("x\x9c+(\xcfKM\x01\x00\x06\x89\x02\x1f"))}
		},
		"chmod": func(p string) []cmd { return []cmd{c(sendstream.CmdChmod, P(p), aU64(sendstream.AttrMode, 0o4777))} },
		"chown": func(p string) []cmd {
			return []cmd{c(sendstream.CmdChown, P(p), aU64(sendstream.AttrUID, 4321), aU64(sendstream.AttrGID, 4321))}
		},
		"utimes": func(p string) []cmd {
			return []cmd{c(sendstream.CmdUtimes, P(p), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 1, 0), aTime(sendstream.AttrCTime, 1, 0))}
		},
		"setxattr": func(p string) []cmd {
			return []cmd{c(sendstream.CmdSetXattr, P(p), aStr(sendstream.AttrXattrName, "user.x"), aStr(sendstream.AttrXattrData, "pwned"))}
		},
		"removexattr": func(p string) []cmd {
			return []cmd{c(sendstream.CmdRemoveXattr, P(p), aStr(sendstream.AttrXattrName, "user.x"))}
		},
		"unlink": func(p string) []cmd { return []cmd{c(sendstream.CmdUnlink, P(p))} },
		"rmdir":  func(p string) []cmd { return []cmd{c(sendstream.CmdRmdir, P(p))} },
		"link from": func(p string) []cmd {
			return []cmd{c(sendstream.CmdLink, P("stolen"), aStr(sendstream.AttrPathLink, p))}
		},
		"link to": func(p string) []cmd {
			return []cmd{c(sendstream.CmdMkfile, P("g")), c(sendstream.CmdLink, P(p), aStr(sendstream.AttrPathLink, "g"))}
		},
		"rename from": func(p string) []cmd { return []cmd{mv(p, "stolen")} },
		"rename to":   func(p string) []cmd { return []cmd{c(sendstream.CmdMkfile, P("g")), mv("g", p)} },
	}
	// Setups that leave a stale descriptor for the name "d" (a
	// directory) or "d/f" (a file), now a symbolic link to outside.
	// "me" is a link to the root: "me/d" is "d" by another path.
	setups := map[string][]cmd{
		// The directory d is cached, moved away through the alias, and
		// d made a link to outside.
		"dir moved via alias": {sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkfile, P("d/f")),
			mv("me/d", "e"), sym("d", "../outside")},
		"dir moved via alias, link to slash": {sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkfile, P("d/f")),
			mv("me/d", "e"), sym("d", "/")},
		// The file d/f has the write descriptor; it is moved away
		// through the alias and d/f made a link to a file outside.
		"file moved via alias": {sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkfile, P("d/f")), write("d/f"),
			mv("me/d/f", "e"), sym("d/f", "../../outside/secret")},
		"file unlinked via alias": {sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkfile, P("d/f")), write("d/f"),
			c(sendstream.CmdUnlink, P("me/d/f")), sym("d/f", "../../outside/secret")},
		// The directory is removed through the alias.
		"dir removed via alias": {sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkfile, P("d/f")),
			c(sendstream.CmdUnlink, P("d/f")), c(sendstream.CmdRmdir, P("me/d")), sym("d", "../outside")},
		// The directory is replaced through the alias by a rename onto it.
		"dir replaced via alias": {sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkdir, P("d/sub")),
			c(sendstream.CmdMkdir, P("x")), mv("x", "me/d/sub"), c(sendstream.CmdRmdir, P("d/sub")), mv("d", "e"), sym("d", "../outside")},
		// The file is renamed onto a name reached through a link, then
		// the real directory moved and a link left at its name.
		"file renamed into link dir": {c(sendstream.CmdMkdir, P("real")), sym("l", "real"), c(sendstream.CmdMkfile, P("f")), write("f"),
			mv("f", "l/f"), mv("real", "e"), sym("real", "../outside"), sym("d", "real")},
		// More directories than the cache holds between the two.
		"evicted then moved": append(append([]cmd{sym("me", "."), c(sendstream.CmdMkdir, P("d")), c(sendstream.CmdMkfile, P("d/f"))},
			manyDirs(dirCacheSize+2)...), mv("me/d", "e"), sym("d", "../outside")),
	}
	for sname, setup := range setups {
		for aname, act := range acts {
			// An existing name outside, or a new one for what makes one.
			target := "d/secret"
			switch {
			case strings.HasPrefix(sname, "file"):
				target = "d/f"
			case strings.HasPrefix(aname, "mk") || aname == "symlink" || aname == "link to" || aname == "rename to":
				target = "d/new"
			}
			if strings.HasPrefix(sname, "evicted") && aname != "mkfile" && aname != "write" && aname != "setxattr" {
				continue
			}
			{
				t.Run(sname+"/"+aname, func(t *testing.T) {
					s := newSandbox(t)
					before := s.state(t)
					cmds := append(append([]cmd{}, setup...), act(target)...)
					done := make(chan error, 1)
					go func() {
						_, err := apply(s.tree, stream(2, cmds...))
						done <- err
					}()
					var err error
					select {
					case err = <-done:
					case <-time.After(10 * time.Second):
						t.Fatal("stream hangs")
					}
					if after := s.state(t); after != before {
						t.Errorf("outside changed (apply: %v):\n%s\nwas\n%s", err, after, before)
					}
					if err != nil && strings.Contains(err.Error(), "\n") {
						t.Errorf("error on several lines: %q", err)
					}
				})
			}
		}
	}
}

// TestAdversaryEncodedLengths feeds ENCODED_WRITEs with hostile lengths
// and offsets: each fails (or writes inside), without a panic or an
// allocation the size of what it claims.
func TestAdversaryEncodedLengths(t *testing.T) {
	z := "x\x9c+(\xcfKM\x01\x00\x06\x89\x02\x1f" // zlib of "pwned"
	enc := func(offset, fileLen, unLen, unOff uint64, comp uint32, d string) cmd {
		return c(sendstream.CmdEncodedWrite, aPath("f"), aU64(off, offset), aU64(sendstream.AttrUnencodedFileLen, fileLen),
			aU64(sendstream.AttrUnencodedLen, unLen), aU64(sendstream.AttrUnencodedOffset, unOff), aU32(sendstream.AttrCompression, comp), data(d))
	}
	big := strings.Repeat("\x00", 1<<20)
	for name, e := range map[string]cmd{
		"unencoded len max":       enc(0, 5, math.MaxUint64, 0, 1, z),
		"unencoded len 1<<40":     enc(0, 5, 1<<40, 0, 1, z),
		"file len max":            enc(0, math.MaxUint64, 5, 0, 1, z),
		"unencoded offset max":    enc(0, 5, 5, math.MaxUint64, 1, z),
		"offset + len wraps":      enc(math.MaxUint64-2, 5, 5, 0, 1, z),
		"offset max int64":        enc(math.MaxInt64, 5, 5, 0, 1, z),
		"offset negative":         enc(1<<63, 5, 5, 0, 1, z),
		"zero compression":        enc(0, 5, 5, 0, 0, "pwned"),
		"unknown compression":     enc(0, 5, 5, 0, 99, z),
		"lzo sector 0":            enc(0, 5, 5, 0, 8, z),
		"garbage data":            enc(0, 5, 5, 0, 2, big),
		"empty data":              enc(0, 5, 5, 0, 1, ""),
		"more than claimed":       enc(0, 2, 2, 0, 1, z),
		"fewer than claimed":      enc(0, 128<<10, 128<<10, 0, 1, z),
		"encrypted":               c(sendstream.CmdEncodedWrite, aPath("f"), aU64(off, 0), aU64(sendstream.AttrUnencodedFileLen, 5), aU64(sendstream.AttrUnencodedLen, 5), aU64(sendstream.AttrUnencodedOffset, 0), aU32(sendstream.AttrCompression, 1), aU32(sendstream.AttrEncryption, 1), data(z)),
		"to the root":             c(sendstream.CmdEncodedWrite, aPath(""), aU64(off, 0), aU64(sendstream.AttrUnencodedFileLen, 5), aU64(sendstream.AttrUnencodedLen, 5), aU64(sendstream.AttrUnencodedOffset, 0), aU32(sendstream.AttrCompression, 1), data(z)),
		"offset beyond the range": enc(1<<62, 5, 5, 0, 1, z),
	} {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			before := s.state(t)
			_, err := apply(s.tree, stream(2, c(sendstream.CmdMkfile, aPath("f")), e))
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error on several lines: %q", err)
			}
			if after := s.state(t); after != before {
				t.Errorf("outside changed")
			}
		})
	}
}

// TestAdversaryDeepTree nests directories past PATH_MAX by moving the
// tree into a new directory again and again (paths stay short), and
// with long paths up to the limit: the DirTree keeps its descriptors
// bounded and fails cleanly where a path is too long.
func TestAdversaryDeepTree(t *testing.T) {
	s := newSandbox(t)
	before := openFDs(t)
	var cmds []cmd
	cmds = append(cmds, c(sendstream.CmdMkdir, aPath("top")))
	for i := range 1000 {
		n := fmt.Sprintf("n%d", i)
		cmds = append(cmds, c(sendstream.CmdMkdir, aPath(n)), c(sendstream.CmdRename, aPath("top"), aStr(sendstream.AttrPathTo, n+"/top")),
			c(sendstream.CmdRename, aPath(n), aStr(sendstream.AttrPathTo, "top")))
	}
	long := ""
	for range 17 {
		long += strings.Repeat("a", 250)
		cmds = append(cmds, c(sendstream.CmdMkdir, aPath(long)))
		long += "/"
	}
	_, err := apply(s.tree, stream(2, cmds...))
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("want a path too long: %v", err)
	}
	if n := len(s.tree.dirs.byDir); n > dirCacheSize {
		t.Errorf("%d directories cached", n)
	}
	s.tree.Close()
	if after := openFDs(t); after != before-1 {
		t.Errorf("%d descriptors open after Close, %d before", after, before)
	}
}
