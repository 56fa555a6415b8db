package test

import (
	"os"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/test/harness"
)

// A stream reaches, through a symbolic link it made, the directory btrfs
// receive chroots into (the destination). From there it must not be able
// to make bsrecv take a writable subvolume no bsrecv made (a live one the
// admin keeps in the destination) for the leftover of an interrupted
// receive, by forging its receive marker, and have the next stream of
// that name delete it.
func TestAdversaryStreamForgesMarker(t *testing.T) {
	fs := harness.Btrfs(t, 200)
	harness.MustSh(t, `
		mkdir "$FS/dst"
		btrfs -q subvolume create "$FS/dst/home"
		echo precious > "$FS/dst/home/data"
	`, "FS="+fs)
	P := func(v string) sendstream.Attr { return hsS(sendstream.AttrPath, v) }
	forge := hsStream(hsSubvol("evil"),
		hsC(sendstream.CmdSymlink, P("l"), hsS(sendstream.AttrPathLink, "/")),
		hsC(sendstream.CmdMkfile, P("l/.home.bsrecv")),
		hsC(sendstream.CmdUnlink, P("l")),
		hsEnd())
	second := hsStream(hsSubvol("home"), hsEnd())
	f := fs + "/in"
	if err := os.WriteFile(f, append(forge, second...), 0o600); err != nil {
		t.Fatal(err)
	}
	r := harness.Sh(t, `bsrecv "$FS/dst/" < "$F"`, "FS="+fs, "F="+f)
	if b, err := os.ReadFile(fs + "/dst/home/data"); err != nil || string(b) != "precious\n" {
		t.Errorf("the writable subvolume dst/home: %q %v (want it kept)", b, err)
	}
	if r.Code != 1 || strings.Contains(r.Stderr, "deleting the leftover") ||
		!strings.Contains(r.Stderr, "bsrecv: error: "+fs+"/dst/home: already exists and is a writable subvolume older than its receive marker") {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
}
