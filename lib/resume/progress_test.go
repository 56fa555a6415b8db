package resume

import (
	"os"
	"path/filepath"
	"testing"

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
	if _, ok := ReadProgress(f); ok {
		t.Fatal("progress in an empty marker")
	}
	sub := uuid.UUID{7}
	p, err := MapProgress(f, sub)
	if err != nil {
		t.Fatal(err)
	}
	d := Start(2)
	hdr := make([]byte, sendstream.CmdHeaderLen)
	var offs []int64
	for i := 0; i < 3; i++ {
		hdr[0] = byte(10 * (i + 1))
		d.Command(hdr)
		p.Set(d)
		offs = append(offs, d.Point().Offset)
	}
	got, ok := ReadProgress(f)
	boot, _ := BootID()
	if !ok || got.Offset != offs[2] || got.Subvol != sub || got.Boot != boot {
		t.Fatalf("read %+v %v, want offset %d", got, ok, offs[2])
	}
	if r, err := Restore(got.State, got.Offset); err != nil || r.Point() != d.Point() {
		t.Fatalf("state: %v", err)
	}
	// Slot 3%2 torn: slot 0 (offset of the 2nd command) is taken.
	p.mem[1*progressSlot+70] ^= 1
	if got, ok := ReadProgress(f); !ok || got.Offset != offs[1] {
		t.Fatalf("torn: %+v %v, want %d", got.Offset, ok, offs[1])
	}
	p.Close()
	// A new mapping goes on numbering.
	p2, err := MapProgress(f, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if p2.seq != 3 {
		t.Errorf("seq %d", p2.seq)
	}
}

// FuzzReadProgress: whatever a marker's progress page holds, reading it
// never panics and what it accepts is whole.
func FuzzReadProgress(f *testing.F) {
	dir := f.TempDir()
	m, _ := os.OpenFile(filepath.Join(dir, "seed"), os.O_RDWR|os.O_CREATE, 0o600)
	p, err := MapProgress(m, uuid.UUID{1})
	if err != nil {
		f.Fatal(err)
	}
	d := Start(1)
	d.Command(make([]byte, sendstream.CmdHeaderLen))
	p.Set(d)
	p.Set(d)
	seed, _ := os.ReadFile(m.Name())
	p.Close()
	m.Close()
	f.Add(seed[ProgressOff:])
	f.Add(make([]byte, ProgressLen))
	f.Fuzz(func(t *testing.T, page []byte) {
		path := filepath.Join(t.TempDir(), "m")
		if err := os.WriteFile(path, append(make([]byte, ProgressOff), page...), 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		got, ok := ReadProgress(g)
		if ok && (len(page) < ProgressLen || len(got.State) > progressSlot-4-progressHead) {
			t.Fatalf("accepted %+v from %d bytes", got, len(page))
		}
	})
}

// TestExact: a record's point moves to the progress page's only for a
// page of this boot, of the record's subvolume, not behind the record.
func TestExact(t *testing.T) {
	d := Start(2)
	hdr := make([]byte, sendstream.CmdHeaderLen)
	d.Command(hdr)
	sub := uuid.UUID{3}
	rec := Record{Subvol: sub, Point: d.Point(), State: d.State()}
	hdr[0] = 9
	d.Command(hdr)
	page := Progress{Boot: [16]byte{1}, Subvol: sub, Offset: d.Offset(), State: d.State()}
	got, ok := Exact(rec, page, [16]byte{1})
	if !ok || got.Point != d.Point() || got.Subvol != sub {
		t.Fatalf("exact: %+v %v", got.Point, ok)
	}
	if r, err := got.Digester(); err != nil || r.Point() != d.Point() {
		t.Fatalf("digester at the exact point: %v", err)
	}
	for name, tc := range map[string]struct {
		p    Progress
		boot [16]byte
	}{
		"other boot":    {page, [16]byte{2}},
		"other subvol":  {Progress{Boot: page.Boot, Subvol: uuid.UUID{4}, Offset: page.Offset, State: page.State}, page.Boot},
		"behind record": {Progress{Boot: page.Boot, Subvol: sub, Offset: rec.Point.Offset - 1, State: page.State}, page.Boot},
		"bad state":     {Progress{Boot: page.Boot, Subvol: sub, Offset: page.Offset, State: []byte("x")}, page.Boot},
	} {
		if _, ok := Exact(rec, tc.p, tc.boot); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
