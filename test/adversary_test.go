package test

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/test/harness"
)

// A receive marker forged in the destination must not make bsrecv take
// a writable subvolume no bsrecv made (a live one the admin keeps in the
// destination) for the leftover of an interrupted receive and have the
// next stream of that name delete it. A stream cannot forge one: through
// a symbolic link it made it reaches nothing outside its own subvolume;
// whoever else can write to the destination can, and is caught by the
// marker's age.
func TestAdversaryStreamForgesMarker(t *testing.T) {
	fs := harness.Btrfs(t, 200)
	harness.MustSh(t, `
		mkdir "$FS/dst"
		btrfs -q subvolume create "$FS/dst/home"
		echo precious > "$FS/dst/home/data"
		sleep 0.3 # the admin's subvolume is older than the attack
	`, "FS="+fs)
	P := func(v string) sendstream.Attr { return hsS(sendstream.AttrPath, v) }
	f := fs + "/in"
	for _, c := range []hsCmd{hsC(sendstream.CmdMkfile, P("l"+fs+"/dst/.home.bsrecv")), hsC(sendstream.CmdMkfifo, P("l"+fs+"/dst/.other.bsrecv"))} {
		forge := hsStream(hsSubvol("evil"), hsC(sendstream.CmdSymlink, P("l"), hsS(sendstream.AttrPathLink, "/")), c, hsEnd())
		if err := os.WriteFile(f, forge, 0o600); err != nil {
			t.Fatal(err)
		}
		r := harness.Sh(t, `bsrecv "$FS/dst/" < "$F"`, "FS="+fs, "F="+f)
		if r.Code != 1 || !strings.Contains(r.Stderr, "receive failed: "+sendstream.CmdName(c.typ)) {
			t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		if ents, _ := os.ReadDir(fs + "/dst"); len(ents) != 1 {
			t.Errorf("the destination holds %v", ents)
		}
	}

	harness.MustSh(t, `touch "$FS/dst/.home.bsrecv"`, "FS="+fs)
	if err := os.WriteFile(f, hsStream(hsSubvol("home"), hsEnd()), 0o600); err != nil {
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

	// A FIFO (or a device) made there as the marker of the next stream's
	// name is looked at, never opened: inotify sees every open but O_PATH's.
	harness.MustSh(t, `mkfifo "$FS/dst/.other.bsrecv"`, "FS="+fs)
	in, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(in)
	if _, err := syscall.InotifyAddWatch(in, fs+"/dst/.other.bsrecv", syscall.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, hsStream(hsSubvol("other"), hsEnd()), 0o600); err != nil {
		t.Fatal(err)
	}
	r = harness.Sh(t, `bsrecv "$FS/dst/" < "$F"`, "FS="+fs, "F="+f)
	if r.Code != 1 || !strings.Contains(r.Stderr, "receive marker "+fs+"/dst/.other.bsrecv: is not a regular file") {
		t.Errorf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	if n, _ := syscall.Read(in, make([]byte, 4096)); n > 0 {
		t.Errorf("bsrecv opened the FIFO at a receive marker's name")
	}
}

// A destination named through a symbolic link is resolved once: changed
// while bsrecv runs (an admin switching disks), the rest of the input
// still goes to the directory whose lock bsrecv holds.
func TestAdversaryDestLinkChanged(t *testing.T) {
	fs := harness.Btrfs(t, 200)
	a := hsStream(hsSubvol("a"), hsEnd())
	b := hsStream(hsSubvol("b"), hsEnd())
	for n, st := range map[string][]byte{"a": a, "b": b} {
		if err := os.WriteFile(fs+"/"+n+".stream", st, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	harness.MustSh(t, `
		cd "$FS"; mkdir A B; ln -s A link
		{ cat a.stream; sleep 1.5; cat b.stream; } | bsrecv "$FS/link/" >/dev/null & pid=$!
		for i in $(seq 100); do [ -d A/a ] && break; sleep 0.05; done
		ln -sfn B link
		wait $pid
		[ -d A/b ] || { echo "b not received into A: A: $(ls A) B: $(ls B)"; exit 1; }
		[ -z "$(ls -A B)" ] || { echo "B holds $(ls -A B)"; exit 1; }`, "FS="+fs)
}

// A leftover that one run could not delete (something inside it) is
// deleted by a later run once that is cleared: the failed run leaves the
// marker as it found it.
func TestAdversaryLeftoverSurvivesFailedDelete(t *testing.T) {
	fs := harness.Btrfs(t, 200)
	if err := os.WriteFile(fs+"/x.stream", hsStream(hsSubvol("x"), hsEnd()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := harness.Sh(t, `
		mkdir "$FS/dst"; cd "$FS/dst"
		# A leftover as a killed bsrecv leaves it: the unlocked marker,
		# then the writable subvolume, made after it.
		echo "bsrecv pid 1" > .x.bsrecv; sleep 0.1
		btrfs -q subvolume create x; btrfs -q subvolume create x/inner; sleep 0.1
		bsrecv "$FS/dst/" < "$FS/x.stream"`, "FS="+fs)
	if r.Code != 1 || !strings.Contains(r.Stderr, "deleting the leftover") {
		t.Fatalf("the first run: exit %d, stderr %q", r.Code, r.Stderr)
	}
	r = harness.Sh(t, `btrfs -q subvolume delete "$FS/dst/x/inner"; bsrecv "$FS/dst/" < "$FS/x.stream"`, "FS="+fs)
	if r.Code != 0 || !strings.Contains(r.Stderr, "deleting the leftover") {
		t.Errorf("the second run: exit %d, stderr %q", r.Code, r.Stderr)
	}
}
