package receive

import (
	"errors"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
)

// fuzzLimit caps the file sizes a fuzzed stream may make, so that a
// fallocate or clone of a huge range does not fill the disk.
const fuzzLimit = 1 << 20

// limitTree is a DirTree refusing data beyond fuzzLimit.
type limitTree struct{ *DirTree }

var errTooBig = errors.New("beyond the fuzz limit")

func (l limitTree) Write(path string, offset uint64, data []byte) error {
	if offset > fuzzLimit {
		return errTooBig
	}
	return l.DirTree.Write(path, offset, data)
}

func (l limitTree) Truncate(path string, size uint64) error {
	if size > fuzzLimit {
		return errTooBig
	}
	return l.DirTree.Truncate(path, size)
}

func (l limitTree) Fallocate(path string, mode uint32, offset, n uint64) error {
	if offset > fuzzLimit || n > fuzzLimit {
		return errTooBig
	}
	return l.DirTree.Fallocate(path, mode, offset, n)
}

func (l limitTree) Clone(path string, offset uint64, src ID, srcPath string, srcOffset, n uint64) error {
	if offset > fuzzLimit || n > fuzzLimit {
		return errTooBig
	}
	return l.DirTree.Clone(path, offset, src, srcPath, srcOffset, n)
}

func (l limitTree) EncodedWrite(path string, e *Encoded) error {
	if e.Offset > fuzzLimit {
		return errTooBig
	}
	return l.DirTree.EncodedWrite(path, e)
}

// fuzzEncode turns commands into the fuzzer's input: a version byte, then
// per command its type, payload length (one byte each) and payload (the
// attributes as a stream has them). The fuzzer mutates commands, not
// CRCs.
func fuzzEncode(version uint32, cmds ...cmd) []byte {
	b := []byte{byte(version - 1)}
	for _, c := range cmds {
		full := sendstream.AppendCommand(nil, version, c.typ, c.attrs...)
		payload := full[sendstream.CmdHeaderLen:]
		if len(payload) > 255 {
			panic("seed command too long")
		}
		b = append(b, byte(c.typ), byte(len(payload)))
		b = append(b, payload...)
	}
	return b
}

func FuzzApply(f *testing.F) {
	link := func(path, target string) cmd {
		return c(sendstream.CmdSymlink, aPath(path), aStr(sendstream.AttrPathLink, target))
	}
	write := func(path string) cmd {
		return c(sendstream.CmdWrite, aPath(path), aU64(off, 0), data("pwned"))
	}
	f.Add(fuzzEncode(1,
		c(sendstream.CmdMkfile, aPath("o257-5-0")),
		c(sendstream.CmdRename, aPath("o257-5-0"), aStr(sendstream.AttrPathTo, "f")),
		write("f"),
		c(sendstream.CmdChmod, aPath("f"), aU64(sendstream.AttrMode, 0o644)),
		c(sendstream.CmdUtimes, aPath("f"), aTime(sendstream.AttrATime, 1, 0), aTime(sendstream.AttrMTime, 1, 0), aTime(sendstream.AttrCTime, 1, 0)),
	))
	f.Add(fuzzEncode(2,
		c(sendstream.CmdMkdir, aPath("d")),
		c(sendstream.CmdMkfile, aPath("d/f")),
		c(sendstream.CmdFallocate, aPath("d/f"), aU32(sendstream.AttrFallocateMode, 0), aU64(off, 0), aU64(sendstream.AttrSize, 10)),
		c(sendstream.CmdClone, aPath("d/f"), aU64(off, 0), aU64(sendstream.AttrCloneLen, 0),
			aUUID(sendstream.AttrCloneUUID, testSelf.UUID), aU64(sendstream.AttrCloneCTransID, 7),
			aStr(sendstream.AttrClonePath, "l/secret"), aU64(sendstream.AttrCloneOffset, 0)),
		c(sendstream.CmdRename, aPath("d"), aStr(sendstream.AttrPathTo, "l")),
		c(sendstream.CmdRmdir, aPath("l")),
	))
	f.Add(fuzzEncode(2, link("l", "../outside"), write("l/secret"),
		c(sendstream.CmdMkdir, aPath("l/d")),
		c(sendstream.CmdLink, aPath("x"), aStr(sendstream.AttrPathLink, "l/secret"))))
	f.Add(fuzzEncode(3, link("l", "../outside/secret"),
		c(sendstream.CmdChmod, aPath("l"), aU64(sendstream.AttrMode, 0o777)),
		c(sendstream.CmdChown, aPath("l"), aU64(sendstream.AttrUID, 1), aU64(sendstream.AttrGID, 1)),
		c(sendstream.CmdSetXattr, aPath("l"), aStr(sendstream.AttrXattrName, "user.x"), aStr(sendstream.AttrXattrData, "p")),
		c(sendstream.CmdTruncate, aPath("l"), aU64(sendstream.AttrSize, 0))))
	f.Add(fuzzEncode(1, link("l", "/"), write("l/tmp/x"),
		c(sendstream.CmdMkfifo, aPath("p")), write("p")))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		s := newSandbox(t)
		before := s.state(t)
		a := &Applier{Tree: limitTree{s.tree}, Self: testSelf}
		version := uint32(in[0]%3) + 1
		in = in[1:]
		for len(in) >= 2 {
			typ, n := uint16(in[0]), int(in[1])
			in = in[2:]
			n = min(n, len(in))
			cmd := &sendstream.Command{Type: typ, Version: version, Payload: in[:n]}
			in = in[n:]
			// Errors are expected; what matters is where commands act.
			_ = a.Command(cmd)
		}
		s.tree.Close()
		if after := s.state(t); after != before {
			t.Fatalf("outside changed:\n%s\nwas\n%s", after, before)
		}
	})
}
