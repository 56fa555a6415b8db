package bsrecv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

// The progress page takes the latest whole slot: a slot cut while being
// written (the process died) leaves the one before.
func TestProgressPage(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "m"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := readProgress(f); ok {
		t.Fatal("progress in an empty marker")
	}
	sub := uuid.UUID{7}
	p, err := mapProgress(f, sub)
	if err != nil {
		t.Fatal(err)
	}
	d := resume.Start(2)
	hdr := make([]byte, sendstream.CmdHeaderLen)
	var offs []int64
	for i := 0; i < 3; i++ {
		hdr[0] = byte(10 * (i + 1))
		d.Command(hdr)
		p.set(d)
		offs = append(offs, d.Point().Offset)
	}
	got, ok := readProgress(f)
	boot, _ := bootID()
	if !ok || got.offset != offs[2] || got.subvol != sub || got.boot != boot {
		t.Fatalf("read %+v %v, want offset %d", got, ok, offs[2])
	}
	if r, err := resume.Restore(got.state, got.offset); err != nil || r.Point() != d.Point() {
		t.Fatalf("state: %v", err)
	}
	// Slot 3%2 torn: slot 0 (offset of the 2nd command) is taken.
	p.mem[1*progressSlot+70] ^= 1
	if got, ok := readProgress(f); !ok || got.offset != offs[1] {
		t.Fatalf("torn: %+v %v, want %d", got.offset, ok, offs[1])
	}
	p.close()
	// A new mapping goes on numbering.
	p2, err := mapProgress(f, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.close()
	if p2.seq != 3 {
		t.Errorf("seq %d", p2.seq)
	}
}

// FuzzReadProgress: whatever a marker's progress page holds, reading it
// never panics and what it accepts is whole.
func FuzzReadProgress(f *testing.F) {
	dir := f.TempDir()
	m, _ := os.OpenFile(filepath.Join(dir, "seed"), os.O_RDWR|os.O_CREATE, 0o600)
	p, err := mapProgress(m, uuid.UUID{1})
	if err != nil {
		f.Fatal(err)
	}
	d := resume.Start(1)
	d.Command(make([]byte, sendstream.CmdHeaderLen))
	p.set(d)
	p.set(d)
	seed, _ := os.ReadFile(m.Name())
	p.close()
	m.Close()
	f.Add(seed[progressOff:])
	f.Add(make([]byte, progressLen))
	f.Fuzz(func(t *testing.T, page []byte) {
		path := filepath.Join(t.TempDir(), "m")
		if err := os.WriteFile(path, append(make([]byte, progressOff), page...), 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		got, ok := readProgress(g)
		if ok && (len(page) < progressLen || len(got.state) > progressSlot-4-progressHead) {
			t.Fatalf("accepted %+v from %d bytes", got, len(page))
		}
	})
}
