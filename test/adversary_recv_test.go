package test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/test/harness"
)

// watchCreates reports every name created, opened for writing or
// deleted directly in dir while fn runs.
func watchCreates(t *testing.T, dir string, fn func()) []string {
	t.Helper()
	in, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(in)
	if _, err := syscall.InotifyAddWatch(in, dir, syscall.IN_CREATE|syscall.IN_DELETE|syscall.IN_MODIFY|syscall.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	fn()
	var got []string
	buf := make([]byte, 1<<16)
	n, _ := syscall.Read(in, buf)
	for off := 0; off+syscall.SizeofInotifyEvent <= n; {
		e := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(e.Len)]), "\x00")
		got = append(got, fmt.Sprintf("%s %#x", name, e.Mask))
		off += syscall.SizeofInotifyEvent + int(e.Len)
	}
	return got
}

// TestAdversaryRecv runs bsrecv on hostile streams in one world
// (hsSetup): each must be refused, or received inside the destination,
// with nothing outside it changed.
func TestAdversaryRecv(t *testing.T) {
	w := hsSetup(t)
	P := func(v string) sendstream.Attr { return hsS(sendstream.AttrPath, v) }

	// A stream's name leads only to directories of the destination's own
	// mount: below a mount point (a tmpfs, or a bind mount of a directory
	// elsewhere on the same btrfs) bsrecv creates nothing, not even for
	// a moment: no directory, no receive marker, no subvolume.
	t.Run("mount below the destination", func(t *testing.T) {
		harness.MustSh(t, `
			mkdir "$DST/tmp" "$DST/bind"
			mount -t tmpfs -o size=1m bs-adversary "$DST/tmp"
			mount --bind "$FS/outside" "$DST/bind"`, "DST="+w.dst, "FS="+w.fs)
		defer harness.Sh(t, `umount "$DST/tmp"; umount "$DST/bind"; rmdir "$DST/tmp" "$DST/bind"`, "DST="+w.dst)
		for _, c := range []struct{ watch, name string }{
			{w.dst + "/tmp", "tmp/x"},
			{w.dst + "/tmp", "tmp/sub/x"},
			{w.fs + "/outside", "bind/x"},
			{w.fs + "/outside", "bind/new/x"},
			{w.fs + "/outside/d", "bind/d/x"},
			{w.fs + "/outside", "bind"},
		} {
			var r harness.Result
			ev := watchCreates(t, c.watch, func() { r = w.bsrecv(t, hsStream(hsSubvol(c.name), hsEnd())) })
			if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "a mount point") {
				t.Errorf("%s: exit %d, stdout %q, stderr %q: want a failure at the mount point", c.name, r.Code, r.Stdout, r.Stderr)
			}
			if len(ev) > 0 {
				t.Errorf("%s: bsrecv acted below a mount point in the destination: %v", c.name, ev)
			}
			if after := w.outside(t); after != w.base {
				t.Errorf("%s: outside the destination changed:\n%s", c.name, after)
				w.repair(t)
			}
		}
	})

	// A SUBVOL with two UUIDs: the first (outside-ro's) is what bsrecv's
	// check took for the stream's own, so a CLONE naming it passed as a
	// clone within the stream; the receiver took the second.
	t.Run("two uuids", func(t *testing.T) {
		sub := hsC(sendstream.CmdSubvol, P("evil"), hsUUID(sendstream.AttrUUID, w.outsideRO), hsUUID(sendstream.AttrUUID, hsStreamUUID), hsU64(sendstream.AttrCTransID, 7))
		clone := hsC(sendstream.CmdClone, P("f"), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrCloneLen, 0),
			hsUUID(sendstream.AttrCloneUUID, w.outsideRO), hsU64(sendstream.AttrCloneCTransID, w.outsideCT), hsS(sendstream.AttrClonePath, "secret"), hsU64(sendstream.AttrCloneOffset, 0))
		w.refused(t, hsStream(sub, hsC(sendstream.CmdMkfile, P("f")), clone, hsEnd()), "SUBVOL: attribute 1 twice")
	})

	// Many streams in one run, each with more directories than the
	// receiver caches and a clone source: under a low descriptor limit,
	// a descriptor kept from one stream to the next runs out.
	t.Run("descriptors across streams", func(t *testing.T) {
		base := [16]byte{0xba, 0x5e}
		all := hsStream(hsC(sendstream.CmdSubvol, P("base"), hsUUID(sendstream.AttrUUID, base), hsU64(sendstream.AttrCTransID, 7)),
			hsC(sendstream.CmdMkfile, P("secret")), hsC(sendstream.CmdWrite, P("secret"), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "shared")), hsEnd())
		// The last two streams need the whole directory cache, the rest
		// little, so that the limit is tight enough for one descriptor left
		// per stream to reach it.
		for i := range 40 {
			cmds := []hsCmd{hsC(sendstream.CmdSubvol, P(fmt.Sprintf("s%d", i)), hsUUID(sendstream.AttrUUID, [16]byte{0x5, byte(i)}), hsU64(sendstream.AttrCTransID, 7))}
			dirs := 3
			if i >= 38 {
				dirs = 140
			}
			for j := range dirs {
				d := fmt.Sprintf("d%d", j)
				cmds = append(cmds, hsC(sendstream.CmdMkdir, P(d)), hsC(sendstream.CmdMkfile, P(d+"/f")))
			}
			cmds = append(cmds, hsC(sendstream.CmdClone, P("d0/f"), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrCloneLen, 0),
				hsUUID(sendstream.AttrCloneUUID, base), hsU64(sendstream.AttrCloneCTransID, 7), hsS(sendstream.AttrClonePath, "secret"), hsU64(sendstream.AttrCloneOffset, 0)), hsEnd())
			all = append(all, hsStream(cmds...)...)
		}
		f := w.sentinel + "/../bs-adversary-many.stream"
		if err := os.WriteFile(f, all, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f)
		// bsrecv needs about 145 descriptors here (128 of them cached
		// directories).
		r := harness.Sh(t, `ulimit -n 160 && bsrecv "$DST/" < "$F" >/dev/null`, "DST="+w.dst, "F="+f)
		if r.Code != 0 {
			t.Errorf("exit %d: %s", r.Code, r.Stderr)
		}
		harness.MustSh(t, `[ "$(cat "$DST/s39/d0/f")" = shared ]; for s in "$DST"/*; do btrfs -q subvolume delete "$s"; done`, "DST="+w.dst)
	})

	// A block device node of a disk (a loop device on a file of zeros)
	// that the stream then writes, truncates, clones into or out of:
	// each is refused, and the disk is never written.
	t.Run("device", func(t *testing.T) {
		img := w.sentinel + "/../bs-adversary-disk"
		if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(img)
		dev := strings.TrimSpace(harness.MustSh(t, `losetup --find --show "$IMG"`, "IMG="+img).Stdout)
		defer harness.Sh(t, `losetup -d "$DEV"`, "DEV="+dev)
		var st syscall.Stat_t
		if err := syscall.Stat(dev, &st); err != nil {
			t.Fatal(err)
		}
		mknod := hsC(sendstream.CmdMknod, P("disk"), hsU64(sendstream.AttrMode, syscall.S_IFBLK|0o666), hsU64(sendstream.AttrRdev, st.Rdev))
		chmod := hsC(sendstream.CmdChmod, P("disk"), hsU64(sendstream.AttrMode, 0o666))
		mkf := hsC(sendstream.CmdMkfile, P("f"))
		wr := hsC(sendstream.CmdWrite, P("f"), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "pwned\n"))
		clone := func(to, from string) hsCmd {
			return hsC(sendstream.CmdClone, P(to), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrCloneLen, 4096),
				hsUUID(sendstream.AttrCloneUUID, hsStreamUUID), hsU64(sendstream.AttrCloneCTransID, 7), hsS(sendstream.AttrClonePath, from), hsU64(sendstream.AttrCloneOffset, 0))
		}
		for name, cmds := range map[string][]hsCmd{
			"write":      {hsC(sendstream.CmdWrite, P("disk"), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "pwned\n"))},
			"truncate":   {hsC(sendstream.CmdTruncate, P("disk"), hsU64(sendstream.AttrSize, 0))},
			"fallocate":  {hsC(sendstream.CmdFallocate, P("disk"), hsU32(sendstream.AttrFallocateMode, 0x3), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrSize, 4096))},
			"clone into": {mkf, wr, clone("disk", "f")},
			"clone from": {mkf, clone("f", "disk")},
			"link then write": {hsC(sendstream.CmdLink, P("alias"), hsS(sendstream.AttrPathLink, "disk")),
				hsC(sendstream.CmdWrite, P("alias"), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "pwned\n"))},
			"encoded write": {hsC(sendstream.CmdEncodedWrite, P("disk"), hsU64(sendstream.AttrFileOffset, 0), hsU64(sendstream.AttrUnencodedFileLen, 5),
				hsU64(sendstream.AttrUnencodedLen, 5), hsU64(sendstream.AttrUnencodedOffset, 0), hsU32(sendstream.AttrCompression, 1),
				hsS(sendstream.AttrData, "x\x9c+(\xcfKM\x01\x00\x06\x89\x02\x1f"))},
		} {
			all := append([]hsCmd{hsSubvol("evil"), mknod, chmod}, cmds...)
			w.refused(t, hsStream(append(all, hsEnd())...), "receive failed: ")
			if b, err := os.ReadFile(img); err != nil || strings.Trim(string(b), "\x00") != "" {
				t.Errorf("%s: the disk behind the device was written (%v)", name, err)
			}
		}
	})

	// A resumed stream is never applied: not onto the complete
	// subvolume of its name (which stays as it is), nor onto a live
	// writable subvolume that no bsrecv made.
	t.Run("resumed", func(t *testing.T) {
		harness.MustSh(t, `btrfs -q subvolume create "$DST/home"; echo precious > "$DST/home/data"`, "DST="+w.dst)
		full := hsStream(hsSubvol("done"), hsC(sendstream.CmdMkfile, P("f")), hsEnd())
		if r := w.bsrecv(t, full); r.Code != 0 {
			t.Fatalf("exit %d: %s", r.Code, r.Stderr)
		}
		before := harness.MustSh(t, `cd "$DST" && find . -mindepth 1 -exec stat -c '%n %s %Y %i' {} + | sort; btrfs subvolume show done | grep -i uuid`, "DST="+w.dst).Stdout
		for _, name := range []string{"done", "home"} {
			head := hsStream(hsSubvol(name))
			rs, err := sendstream.AppendResumed(nil, head, sendstream.ResumeFrom{Offset: int64(len(head))})
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, hsStream(hsC(sendstream.CmdMkfile, P("pwned")), hsC(sendstream.CmdWrite, P("data"), hsU64(sendstream.AttrFileOffset, 0), hsS(sendstream.AttrData, "pwned")), hsEnd())[sendstream.HeaderLen:]...)
			r := w.bsrecv(t, rs)
			t.Logf("%s: exit %d: %s", name, r.Code, r.Stderr)
		}
		if after := harness.MustSh(t, `cd "$DST" && find . -mindepth 1 -exec stat -c '%n %s %Y %i' {} + | sort; btrfs subvolume show done | grep -i uuid`, "DST="+w.dst).Stdout; after != before {
			t.Errorf("the destination changed:\n%s\nwas\n%s", after, before)
		}
		if after := w.outside(t); after != w.base {
			t.Errorf("outside the destination changed")
		}
		harness.MustSh(t, `btrfs -q subvolume delete "$DST/done" "$DST/home"`, "DST="+w.dst)
	})
}
