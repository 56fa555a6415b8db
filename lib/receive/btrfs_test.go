package receive

import (
	"bytes"
	"compress/zlib"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/uuid"
	"github.com/buttersink/buttersink/test/harness"
)

// A parent or clone source is a read-only subvolume below the
// destination whose received UUID and stransid, else UUID and ctransid,
// are the stream's; copies elsewhere are passed over, and the error says
// the most useful thing: a changed copy below, else one outside.
func TestChooseSource(t *testing.T) {
	u := uuid.UUID{1, 2, 3}
	below := map[uint64]btrfs.Subvol{
		300: {ID: 300, Path: "a", ReadOnly: true, ReceivedUUID: u, STransID: 10, CTransID: 99},
		301: {ID: 301, Path: "b", ReadOnly: false, ReceivedUUID: u, STransID: 10},
		302: {ID: 302, Path: "c", ReadOnly: true, ReceivedUUID: u, STransID: 11},
		303: {ID: 303, Path: "d", ReadOnly: true, UUID: u, CTransID: 10},
		304: {ID: 304, Path: "e", ReadOnly: true, UUID: u, CTransID: 12},
	}
	tests := []struct {
		name             string
		received, others []uint64
		want             uint64 // 0: an error
		changed          string
		outside          []uint64
	}{
		{"received below", []uint64{300}, nil, 300, "", nil},
		{"older copy outside first", []uint64{7, 300}, []uint64{8}, 300, "", nil},
		{"writable passed over", []uint64{301, 300}, nil, 300, "", nil},
		{"received before uuid", []uint64{300}, []uint64{303}, 300, "", nil},
		{"uuid by ctransid", []uint64{302}, []uint64{304, 303}, 303, "", nil},
		{"only writable", []uint64{301}, nil, 0, "b", nil},
		{"other transid", []uint64{302}, []uint64{304}, 0, "c", nil},
		{"changed beats outside", []uint64{7}, []uint64{304}, 0, "e", []uint64{7}},
		{"only outside", []uint64{7}, []uint64{8}, 0, "", []uint64{7, 8}},
		{"nowhere", nil, nil, 0, "", nil},
	}
	for _, tt := range tests {
		got, err := choose(u, 10, tt.received, tt.others, below)
		if tt.want != 0 {
			if err != nil || got.ID != tt.want {
				t.Errorf("%s: %d, %v; want %d", tt.name, got.ID, err, tt.want)
			}
			continue
		}
		var se *SourceError
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want a SourceError", tt.name, err)
			continue
		}
		if (se.Changed == nil) != (tt.changed == "") || (se.Changed != nil && se.Changed.Path != tt.changed) || len(se.Outside) != len(tt.outside) {
			t.Errorf("%s: %+v", tt.name, se)
		}
		for i := range tt.outside {
			if i < len(se.Outside) && se.Outside[i] != tt.outside[i] {
				t.Errorf("%s: outside %v, want %v", tt.name, se.Outside, tt.outside)
			}
		}
	}
}

// The btrfs Dest takes parents and clone sources below its directory
// only, opens a clone source's path beneath that subvolume's root and
// only as a regular file of it, and marks the subvolume received and
// read-only at End only.
func TestBtrfsDestConfined(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a loop btrfs")
	}
	fs := harness.Btrfs(t, 200)
	harness.MustSh(t, `
		cd "$FS" && mkdir dst
		btrfs -q subvolume create outside
		head -c 100000 /dev/urandom > outside/secret
		ln -s secret outside/link && ln -s .. outside/up && mkfifo outside/fifo
		btrfs -q subvolume snapshot -r outside outside-ro
		btrfs -q subvolume snapshot -r outside dst/inside-ro
		btrfs filesystem sync .`, "FS="+fs)
	info := func(p string) ID {
		s, err := btrfs.Info(fs + "/" + p)
		if err != nil {
			t.Fatal(err)
		}
		return ID{UUID: s.UUID, CTransID: s.CTransID}
	}
	outside, inside := info("outside-ro"), info("dst/inside-ro")
	dfd, err := unix.Open(fs+"/dst", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	scope, err := LoadScope(dfd)
	if err != nil {
		t.Fatal(err)
	}
	dest := NewBtrfsDest(dfd, scope)
	self := ID{UUID: uuid.UUID{9, 9, 9}, CTransID: 5}

	var se *SourceError
	if _, err := dest.Begin("evil", self, &outside); !errors.As(err, &se) || len(se.Outside) == 0 {
		t.Errorf("a parent outside: %v", err)
	}
	tree, err := dest.Begin("new", self, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if err := tree.Mkfile("f"); err != nil {
		t.Fatal(err)
	}
	if err := tree.Clone("f", 0, outside, "secret", 0, 0); !errors.As(err, &se) {
		t.Errorf("a clone from outside: %v", err)
	}
	for _, p := range []string{"link", "up/outside/secret", "fifo", "up", "", "../outside/secret"} {
		if err := tree.Clone("f", 0, inside, p, 0, 0); err == nil {
			t.Errorf("a clone from %q of the source: allowed", p)
		}
	}
	if err := tree.Clone("f", 0, inside, "secret", 0, 0); err != nil {
		t.Fatal(err)
	}
	// Within the subvolume received, by its UUID.
	if err := tree.Mkfile("g"); err != nil {
		t.Fatal(err)
	}
	if err := tree.Clone("g", 0, self, "f", 0, 0); err != nil {
		t.Fatal(err)
	}
	if s, err := btrfs.Info(fs + "/dst/new"); err != nil || s.ReadOnly || !s.ReceivedUUID.IsZero() {
		t.Fatalf("before End: %+v %v", s, err)
	}
	if err := tree.End(); err != nil {
		t.Fatal(err)
	}
	s, err := btrfs.Info(fs + "/dst/new")
	if err != nil || !s.ReadOnly || s.ReceivedUUID != self.UUID || s.STransID != self.CTransID {
		t.Fatalf("after End: %+v %v", s, err)
	}
	harness.MustSh(t, `cmp "$FS/dst/new/g" "$FS/outside/secret"`, "FS="+fs)
}

// A compressed extent the kernel refuses as it is (here: at an offset
// that is not sector-aligned) is decompressed and written instead.
func TestBtrfsEncodedWriteFallback(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a loop btrfs")
	}
	fs := harness.Btrfs(t, 200)
	dfd, err := unix.Open(fs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	scope, err := LoadScope(dfd)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := NewBtrfsDest(dfd, scope).Begin("s", ID{UUID: uuid.UUID{1}, CTransID: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	plain := bytes.Repeat([]byte("compressible "), 8192/13+1)[:8192]
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	if err := tree.Mkfile("f"); err != nil {
		t.Fatal(err)
	}
	for _, off := range []uint64{0, 8192 + 1} {
		e := &Encoded{Offset: off, UnencodedFileLen: 8192, UnencodedLen: 8192, Compression: 1, Data: z.Bytes()}
		if err := tree.EncodedWrite("f", e); err != nil {
			t.Fatalf("at %d: %v", off, err)
		}
	}
	if err := tree.End(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(fs + "/s/f")
	want := append(append(append([]byte{}, plain...), 0), plain...)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("read %d bytes (%v), want %d", len(got), err, len(want))
	}
}
