package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/test/harness"
)

// A test-only send stream encoder: a v1 header and commands with their
// TLVs and CRC32C (sendstream.AppendCommand computes it).
type hsCmd struct {
	typ   uint16
	attrs []sendstream.Attr
}

func hsStream(cmds ...hsCmd) []byte {
	// Version 1, unless a command needs 2 (btrfs receive refuses
	// FALLOCATE and later ones in a version 1 stream).
	var v uint32 = 1
	for _, c := range cmds {
		if c.typ >= sendstream.CmdFallocate {
			v = 2
		}
	}
	b := sendstream.AppendHeader(nil, v)
	for _, c := range cmds {
		b = sendstream.AppendCommand(b, v, c.typ, c.attrs...)
	}
	return b
}

// hsC is a command; those that make an inode get the INO btrfs receive
// wants.
func hsC(typ uint16, attrs ...sendstream.Attr) hsCmd {
	switch typ {
	case sendstream.CmdMkfile, sendstream.CmdMkdir, sendstream.CmdMknod, sendstream.CmdMkfifo, sendstream.CmdMksock, sendstream.CmdSymlink:
		attrs = append(attrs, hsU64(sendstream.AttrIno, 300))
	}
	return hsCmd{typ, attrs}
}
func hsS(t uint16, v string) sendstream.Attr { return sendstream.Attr{Type: t, Value: []byte(v)} }
func hsU64(t uint16, v uint64) sendstream.Attr {
	return sendstream.Attr{Type: t, Value: binary.LittleEndian.AppendUint64(nil, v)}
}
func hsUUID(t uint16, u [16]byte) sendstream.Attr { return sendstream.Attr{Type: t, Value: u[:]} }

func hsU32(t uint16, v uint32) sendstream.Attr {
	return sendstream.Attr{Type: t, Value: binary.LittleEndian.AppendUint32(nil, v)}
}

// hsTime is a timespec attribute (le64 seconds, le32 nanoseconds).
func hsTime(t uint16, sec uint64) sendstream.Attr {
	return sendstream.Attr{Type: t, Value: binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, sec), 0)}
}

var hsStreamUUID = [16]byte{0xb5, 0xec, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}

func hsSubvol(name string) hsCmd {
	return hsC(sendstream.CmdSubvol, hsS(sendstream.AttrPath, name), hsUUID(sendstream.AttrUUID, hsStreamUUID), hsU64(sendstream.AttrCTransID, 7))
}

func hsSnapshot(name string, parent [16]byte, pct uint64) hsCmd {
	return hsC(sendstream.CmdSnapshot, hsS(sendstream.AttrPath, name), hsUUID(sendstream.AttrUUID, hsStreamUUID), hsU64(sendstream.AttrCTransID, 9),
		hsUUID(sendstream.AttrCloneUUID, parent), hsU64(sendstream.AttrCloneCTransID, pct))
}

func hsEnd() hsCmd { return hsC(sendstream.CmdEnd) }

// The commands that make or touch one path p, as the kernel would send
// them for a new file (or, for LINK and RENAME, with p on either side).
// p names an existing file x; the commands that make one aim at a new
// name beside it, where they would succeed if they got there.
func hsOnPath(p string) map[string][]hsCmd {
	P := func(v string) sendstream.Attr { return hsS(sendstream.AttrPath, v) }
	mkf := hsC(sendstream.CmdMkfile, P("f"))
	n := strings.TrimSuffix(p, "x") + "new"
	return map[string][]hsCmd{
		"mkfile":        {hsC(sendstream.CmdMkfile, P(n))},
		"mkdir":         {hsC(sendstream.CmdMkdir, P(n))},
		"mknod":         {hsC(sendstream.CmdMknod, P(n), hsU64(sendstream.AttrMode, 0o20600), hsU64(sendstream.AttrRdev, 0x103))},
		"mkfifo":        {hsC(sendstream.CmdMkfifo, P(n))},
		"mksock":        {hsC(sendstream.CmdMksock, P(n))},
		"symlink":       {hsC(sendstream.CmdSymlink, P(n), hsS(sendstream.AttrPathLink, "target"))},
		"rename from":   {hsC(sendstream.CmdRename, P(p), hsS(sendstream.AttrPathTo, "stolen"))},
		"rename to":     {mkf, hsC(sendstream.CmdRename, P("f"), hsS(sendstream.AttrPathTo, n))},
		"link out":      {mkf, hsC(sendstream.CmdLink, P(n), hsS(sendstream.AttrPathLink, "f"))},
		"hardlink in":   {hsC(sendstream.CmdLink, P("stolen"), hsS(sendstream.AttrPathLink, p))},
		"unlink":        {hsC(sendstream.CmdUnlink, P(p))},
		"rmdir":         {hsC(sendstream.CmdRmdir, P(p))},
		"set_xattr":     {hsC(sendstream.CmdSetXattr, P(p), hsS(sendstream.AttrXattrName, "user.evil"), hsS(sendstream.AttrXattrData, "1"))},
		"remove_xattr":  {hsC(sendstream.CmdRemoveXattr, P(p), hsS(sendstream.AttrXattrName, "user.keep"))},
		"write":         {hsC(sendstream.CmdWrite, P(p), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "pwned\n"))},
		"clone to":      {mkf, hsC(sendstream.CmdWrite, P("f"), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "pwned\n")), hsC(sendstream.CmdClone, P(p), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrCloneLen, 6), hsUUID(sendstream.AttrCloneUUID, hsStreamUUID), hsU64(sendstream.AttrCloneCTransID, 7), hsS(sendstream.AttrClonePath, "f"), hsU64(sendstream.AttrCloneOffset, 0))},
		"clone from":    {mkf, hsC(sendstream.CmdClone, P("f"), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrCloneLen, 0), hsUUID(sendstream.AttrCloneUUID, hsStreamUUID), hsU64(sendstream.AttrCloneCTransID, 7), hsS(sendstream.AttrClonePath, p), hsU64(sendstream.AttrCloneOffset, 0))},
		"truncate":      {hsC(sendstream.CmdTruncate, P(p), hsU64(sendstream.AttrSize, 0))},
		"chmod":         {hsC(sendstream.CmdChmod, P(p), hsU64(sendstream.AttrMode, 0o4777))},
		"chown":         {hsC(sendstream.CmdChown, P(p), hsU64(sendstream.AttrUID, 4242), hsU64(sendstream.AttrGID, 4242))},
		"utimes":        {hsC(sendstream.CmdUtimes, P(p), hsTime(sendstream.AttrATime, 0), hsTime(sendstream.AttrMTime, 0), hsTime(sendstream.AttrCTime, 0))},
		"second path":   {hsC(sendstream.CmdTruncate, P("f"), P(p), hsU64(sendstream.AttrSize, 0))},
		"fallocate":     {hsC(sendstream.CmdFallocate, P(p), hsU32(sendstream.AttrFallocateMode, 0), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrSize, 1<<20))},
		"update_extent": {hsC(sendstream.CmdUpdateExtent, P(p), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrSize, 1))},
	}
}

// hsWorld is a filesystem with a destination directory, things outside
// it (a subvolume and its read-only snapshot, plain files) and a sentinel
// directory elsewhere that hostile paths aim at.
type hsWorld struct {
	fs, dst, sentinel string
	outsideRO         [16]byte // uuid of fs/outside-ro
	outsideCT         uint64
	// base is outside's state as the world was made (or last rebased):
	// a refused stream changes nothing outside, so each run compares
	// with it and reads the outside once, after the run.
	base string
	bin  string // the built commands
}

func hsSetup(t *testing.T) *hsWorld {
	fs := harness.Btrfs(t, 300)
	sentinel, err := os.MkdirTemp("", "bs-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sentinel) })
	harness.MustSh(t, `
		mkdir "$FS/dst"
		btrfs -q subvolume create "$FS/outside"
		head -c 65536 /dev/urandom > "$FS/outside/secret"
		btrfs -q subvolume snapshot -r "$FS/outside" "$FS/outside-ro"
		# A received copy outside the destination: btrfs receive finds
		# parents and clone sources by received UUID first.
		mkdir "$FS/elsewhere" && btrfs send -q "$FS/outside-ro" | btrfs receive "$FS/elsewhere/" 2>/dev/null
	`+hsTargets, "FS="+fs, "S="+sentinel)
	info := srInfo(t, fs+"/outside-ro")
	w := &hsWorld{fs: fs, dst: fs + "/dst", sentinel: sentinel, outsideRO: info.UUID, outsideCT: info.CTransID, bin: harness.Bin(t)}
	w.rebase(t)
	return w
}

// hsTargets makes the files hostile paths aim at, beside the
// destination, in the writable subvolume outside it and in the sentinel.
const hsTargets = `
		echo keep > "$FS/x"; setfattr -n user.keep -v 1 "$FS/x"; mkdir "$FS/d"
		for d in "$S" "$FS/outside"; do
			echo keep > "$d/x"; setfattr -n user.keep -v 1 "$d/x"; mkdir "$d/d"; echo keep > "$d/stolen"
		done
		# Read everything once, so that the oracle's reads update no
		# atime (relatime), and commit: the writable subvolume's
		# ctransid then changes only if something writes to it.
		sleep 0.01; find "$FS" "$S" -type f -exec cat {} + >/dev/null; ls -R "$FS" "$S" >/dev/null
		btrfs filesystem sync "$FS"
`

// repair puts the targets back after a run that reached them, so that
// the next run starts from the same world (a test without the fixes then
// fails in every subtest that escapes, not only in the first), and
// takes the new base.
func (w *hsWorld) repair(t *testing.T) {
	harness.MustSh(t, `
		cd "$FS"
		for e in * .[!.]*; do
			case "$e" in dst|outside|outside-ro|elsewhere|src|snaps) ;; *) rm -rf "$e" ;; esac
		done
		find "$S" -mindepth 1 -delete
		find "$FS/outside" -mindepth 1 -maxdepth 1 ! -name secret -exec rm -rf {} +
	`+hsTargets, "FS="+w.fs, "S="+w.sentinel)
	w.rebase(t)
}

// rebase takes the state outside the destination as the one runs must
// leave unchanged, after a test changed it on purpose.
func (w *hsWorld) rebase(t *testing.T) { w.base = w.outside(t) }

// bsrecv runs bsrecv DST/ with stream on its standard input (a pipe, as
// from ssh or bss3get), without a shell in between.
func (w *hsWorld) bsrecv(t *testing.T, stream []byte) harness.Result {
	t.Helper()
	cmd := exec.Command(filepath.Join(w.bin, "bsrecv"), w.dst+"/")
	cmd.Stdin = bytes.NewReader(stream)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := harness.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("bsrecv: %v", err)
		}
		r.Code = ee.ExitCode()
	}
	return r
}

// outside is the state of everything outside the destination: every
// file of the filesystem but those below dst (names, modes, owners,
// sizes, link counts, times, xattrs, data), its subvolumes with their
// flags, and the sentinel directory.
func (w *hsWorld) outside(t *testing.T) string {
	t.Helper()
	var lines []string
	for p, d := range srTree(t, w.fs) {
		if p == "dst" || strings.HasPrefix(p, "dst/") {
			continue
		}
		lines = append(lines, p+" "+d)
	}
	for p, d := range srTree(t, w.sentinel) {
		lines = append(lines, "sentinel/"+p+" "+d)
	}
	subs, err := btrfs.List(w.fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if !strings.HasPrefix(s.Path, "dst/") {
			lines = append(lines, fmt.Sprintf("subvolume %s %s ro=%v received=%s ctransid=%d", s.Path, s.UUID.Canonical(), s.ReadOnly, s.ReceivedUUID.Canonical(), s.CTransID))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// refused feeds stream to bsrecv and checks the oracle: bsrecv fails,
// prints no record, everything outside the destination is as before and
// the destination holds nothing (no subvolume, no receive marker).
func (w *hsWorld) refused(t *testing.T, stream []byte, wantErr string) {
	t.Helper()
	r := w.bsrecv(t, stream)
	if after := w.outside(t); after != w.base {
		t.Errorf("outside the destination changed:\nbefore:\n%s\nafter:\n%s", w.base, after)
		w.repair(t)
	}
	if r.Code == 0 || r.Stdout != "" {
		t.Errorf("exit %d, stdout %q: want a failure and no record", r.Code, r.Stdout)
	}
	if n := strings.Count(r.Stderr, "bsrecv: error: "); n != 1 || !strings.Contains(r.Stderr, wantErr) {
		t.Errorf("want one error line with %q; stderr:\n%s", wantErr, r.Stderr)
	}
	ents, _ := os.ReadDir(w.dst)
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("destination holds %v", names)
		harness.Sh(t, `cd "$DST" && for e in * .[!.]*; do [ -e "$e" ] || continue; btrfs -q subvolume delete "$e" 2>/dev/null || rm -rf "$e"; done`, "DST="+w.dst)
	}
}

// Streams with paths that leave the subvolume, in every path-carrying
// command, and through a symbolic link the stream made.
func TestHostileStreamPaths(t *testing.T) {
	w := hsSetup(t)
	up := strings.Repeat("../", 24)
	targets := map[string]string{
		"dotdot to sentinel":   up + strings.TrimPrefix(w.sentinel, "/") + "/x",
		"dotdot to filesystem": "../../outside/x",
		"absolute":             w.sentinel + "/x",
	}
	for tname, p := range targets {
		for cname, cmds := range hsOnPath(p) {
			t.Run(tname+"/"+cname, func(t *testing.T) {
				if cname == "rmdir" {
					cmds = hsOnPath(strings.TrimSuffix(p, "x") + "d")[cname]
				}
				all := append([]hsCmd{hsSubvol("evil"), hsC(sendstream.CmdMkfile, hsS(sendstream.AttrPath, "first"))}, cmds...)
				w.refused(t, hsStream(append(all, hsEnd())...), "refused: "+sendstream.CmdName(cmds[len(cmds)-1].typ))
			})
		}
	}
	// The subvolume's own name.
	for _, name := range []string{up + "x", w.sentinel + "/x", "a/../x"} {
		w.refused(t, hsStream(hsSubvol(name), hsEnd()), "invalid")
	}
	// Through a symbolic link the stream itself made (to the sentinel, to
	// the filesystem, to /): the path checks let these by; the receiver
	// opens every path beneath the new subvolume (openat2), so the kernel
	// refuses them.
	for i, l := range []struct{ link, dir string }{{w.sentinel, "l"}, {"../../outside", "l"}, {"/", "l" + w.sentinel}} {
		for cname, cmds := range hsOnPath(l.dir + "/x") {
			switch cname {
			case "hardlink in", "rename from", "clone from", "second path", "update_extent":
				continue // "first"-relative or harmless
			}
			if cname == "rmdir" {
				cmds = hsOnPath(l.dir + "/d")[cname]
			}
			t.Run(fmt.Sprintf("symlink%d/%s", i, cname), func(t *testing.T) {
				all := append([]hsCmd{hsSubvol("evil"), hsC(sendstream.CmdSymlink, hsS(sendstream.AttrPath, "l"), hsS(sendstream.AttrPathLink, l.link))}, cmds...)
				w.refused(t, hsStream(append(all, hsEnd())...), "receive failed: ")
			})
		}
	}
	// Hardlink and rename out of the subvolume through a symbolic link.
	for _, c := range [][]hsCmd{
		{hsC(sendstream.CmdLink, hsS(sendstream.AttrPath, "stolen"), hsS(sendstream.AttrPathLink, "l/x"))},
		{hsC(sendstream.CmdRename, hsS(sendstream.AttrPath, "l/x"), hsS(sendstream.AttrPathTo, "stolen"))},
		{hsC(sendstream.CmdMkfile, hsS(sendstream.AttrPath, "f")), hsC(sendstream.CmdRename, hsS(sendstream.AttrPath, "f"), hsS(sendstream.AttrPathTo, "l/new"))},
	} {
		all := append([]hsCmd{hsSubvol("evil"), hsC(sendstream.CmdSymlink, hsS(sendstream.AttrPath, "l"), hsS(sendstream.AttrPathLink, w.sentinel))}, c...)
		w.refused(t, hsStream(append(all, hsEnd())...), "receive failed: ")
	}
}

// Parents and clone sources outside the destination.
func TestHostileStreamSources(t *testing.T) {
	w := hsSetup(t)
	clone := func(u [16]byte, ct uint64) hsCmd {
		return hsC(sendstream.CmdClone, hsS(sendstream.AttrPath, "f"), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrCloneLen, 0),
			hsUUID(sendstream.AttrCloneUUID, u), hsU64(sendstream.AttrCloneCTransID, ct), hsS(sendstream.AttrClonePath, "secret"), hsU64(sendstream.AttrCloneOffset, 0))
	}
	mkf := hsC(sendstream.CmdMkfile, hsS(sendstream.AttrPath, "f"))
	t.Run("parent outside", func(t *testing.T) {
		w.refused(t, hsStream(hsSnapshot("evil", w.outsideRO, w.outsideCT), hsEnd()), "parent "+fmtUUID(w.outsideRO)+" is outside the destination: "+w.fs+"/elsewhere/outside-ro")
	})
	t.Run("clone outside", func(t *testing.T) {
		w.refused(t, hsStream(hsSubvol("evil"), mkf, clone(w.outsideRO, w.outsideCT), hsEnd()), "CLONE: clone source "+fmtUUID(w.outsideRO)+" is outside the destination")
	})
	t.Run("second clone uuid outside", func(t *testing.T) {
		c := clone(hsStreamUUID, 7)
		c.attrs = append(c.attrs, hsUUID(sendstream.AttrCloneUUID, w.outsideRO))
		w.refused(t, hsStream(hsSubvol("evil"), mkf, c, hsEnd()), "is outside the destination")
	})
	t.Run("clone outside after a parent inside", func(t *testing.T) {
		// A parent below the destination: outside-ro received there, its
		// received UUID is outside-ro's UUID. The older copy in
		// elsewhere/, which the UUID tree lists first, is passed over.
		harness.MustSh(t, `bssend "$FS/outside-ro" | bsrecv "$FS/dst/" >/dev/null`, "FS="+w.fs)
		defer harness.MustSh(t, `btrfs -q subvolume delete "$FS/dst/outside-ro"`, "FS="+w.fs)
		writable := srInfo(t, w.fs+"/outside")
		// The parent check passes; the clone from fs/outside is refused.
		w.rebase(t)
		st := hsStream(hsSnapshot("evil", w.outsideRO, w.outsideCT), mkf, clone(writable.UUID, writable.CTransID), hsEnd())
		r := w.bsrecv(t, st)
		if r.Code == 0 || r.Stdout != "" || strings.Count(r.Stderr, "error:") != 1 || !strings.Contains(r.Stderr, "CLONE: clone source "+writable.UUID.Canonical()+" is outside the destination: "+w.fs+"/outside") {
			t.Errorf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		if ents, _ := os.ReadDir(w.dst); len(ents) != 1 {
			t.Errorf("destination holds %v", ents)
		}
		if w.outside(t) != w.base {
			t.Errorf("outside changed")
		}
		// The same clone from the parent inside is received.
		st = hsStream(hsSnapshot("evil", w.outsideRO, w.outsideCT), mkf, clone(w.outsideRO, w.outsideCT), hsEnd())
		if r := w.bsrecv(t, st); r.Code != 0 {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
		harness.MustSh(t, `cmp "$FS/dst/evil/f" "$FS/outside-ro/secret"; btrfs -q subvolume delete "$FS/dst/evil"`, "FS="+w.fs)
	})
}

func fmtUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

var _ = bytes.Equal
var _ = rand.New
