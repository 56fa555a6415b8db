package resume

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

func realStream(t testing.TB) []byte {
	b, err := os.ReadFile("../sendstream/testdata/incremental-v1.stream")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bounds returns the offsets (after the first command) of every command
// boundary, and where the first command ends.
func bounds(b []byte) (offs []int64, first int) {
	first = sendstream.HeaderLen + sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(b[sendstream.HeaderLen:]))
	for p := first; p <= len(b); {
		offs = append(offs, int64(p-first))
		if p == len(b) {
			break
		}
		p += sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(b[p:]))
	}
	return offs, first
}

// Write, in any pieces, and Command agree; Restore goes on from a state.
func TestDigester(t *testing.T) {
	b := realStream(t)
	offs, first := bounds(b)
	ref, _ := NewDigester(b[:sendstream.HeaderLen])
	want := map[int64]Point{0: ref.Point()}
	states := map[int64][]byte{0: ref.State()}
	for i := 0; i+1 < len(offs); i++ {
		ref.Command(b[first+int(offs[i]):])
		p := ref.Point()
		if p.Offset != offs[i+1] {
			t.Fatalf("offset %d, want %d", p.Offset, offs[i+1])
		}
		want[p.Offset], states[p.Offset] = p, ref.State()
	}
	rng := rand.New(rand.NewSource(1))
	for try := 0; try < 20; try++ {
		d, _ := NewDigester(b[:sendstream.HeaderLen])
		rest := b[first:]
		done := int64(0)
		for len(rest) > 0 {
			n := min(len(rest), 1+rng.Intn(300))
			d.Write(rest[:n])
			rest, done = rest[n:], done+int64(n)
			if w, ok := want[done]; ok != d.AtBoundary() || ok && d.Point() != w {
				t.Fatalf("at %d: boundary %v point %v, want %v %v", done, d.AtBoundary(), d.Point(), ok, w)
			}
		}
	}
	e, _ := NewDigester(b[:sendstream.HeaderLen])
	if e.Write(b[first : len(b)-sendstream.CmdHeaderLen]); e.Ended() {
		t.Error("ended before END")
	}
	if e.Write(b[len(b)-sendstream.CmdHeaderLen:]); !e.Ended() {
		t.Error("END not seen")
	}
	// From any boundary's state, the rest gives the same end point.
	end := want[offs[len(offs)-1]]
	for _, o := range offs {
		d, err := Restore(states[o], o)
		if err != nil {
			t.Fatal(err)
		}
		d.Write(b[first+int(o):])
		if d.Point() != end {
			t.Fatalf("restored at %d: %v, want %v", o, d.Point(), end)
		}
	}
	// The resume flag in the header does not count; the version does.
	h := append([]byte{}, b[:sendstream.HeaderLen]...)
	h[len(sendstream.Magic)+1] |= 1 // ResumeFlag
	d, _ := NewDigester(h)
	if d.Point() != want[0] {
		t.Error("resume flag changed the digest")
	}
	h[len(sendstream.Magic)] ^= 3
	d, _ = NewDigester(h)
	if d.Point() == want[0] {
		t.Error("version left out of the digest")
	}
}

func testRecord(t testing.TB, off int64) Record {
	b := realStream(t)
	d, _ := NewDigester(b[:sendstream.HeaderLen])
	offs, first := bounds(b)
	for _, o := range offs[:len(offs)-1] {
		if o >= off {
			break
		}
		d.Command(b[first+int(o):])
	}
	return Record{Subvol: uuid.UUID{1}, UUID: uuid.UUID{2}, CTransID: 7, CloneUUID: uuid.UUID{3}, CloneCTransID: 5,
		Point: d.Point(), State: d.State(), Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func TestSlots(t *testing.T) {
	r1, r2 := testRecord(t, 100), testRecord(t, 1000)
	if r1.Point == r2.Point {
		t.Fatal("same points")
	}
	s1, err := EncodeSlot(r1, 1)
	if err != nil || len(s1) != SlotLen {
		t.Fatalf("%d bytes, %v", len(s1), err)
	}
	s2, _ := EncodeSlot(r2, 2)
	marker := append(append(OwnerLine(42), s1...), s2...)
	got, seq, ok := Decode(marker)
	if !ok || seq != 2 || got.Point != r2.Point || !got.Time.Equal(r2.Time) || got.Subvol != r2.Subvol || got.CloneCTransID != 5 {
		t.Fatalf("decoded %+v seq %d ok %v", got, seq, ok)
	}
	if Owner(marker) != "bsrecv pid 42" {
		t.Errorf("owner %q", Owner(marker))
	}
	// A torn write of slot 2 (any byte of its line changed or cut) leaves slot 1.
	for i := 0; i < SlotLen; i += 7 {
		m := append([]byte{}, marker...)
		m[OwnerLen+SlotLen+i] ^= 0x20
		got, seq, ok := Decode(m)
		if !ok {
			t.Fatalf("byte %d: nothing decoded", i)
		}
		if seq == 1 && got.Point != r1.Point || seq == 2 && got.Point != r2.Point {
			t.Fatalf("byte %d: seq %d with the wrong record", i, seq)
		}
	}
	for n := 0; n < len(marker); n += 13 {
		// Slot 2 counts once its line is whole.
		whole := n > OwnerLen+SlotLen+bytes.IndexByte(s2, '\n')
		if _, seq, ok := Decode(marker[:n]); ok && seq != 1 && !(seq == 2 && whole) {
			t.Fatalf("cut at %d: seq %d", n, seq)
		}
	}
	// The higher sequence wins, whichever slot.
	s3, _ := EncodeSlot(r1, 3)
	if got, seq, _ := Decode(append(append(OwnerLine(1), s3...), s2...)); seq != 3 || got.Point != r1.Point {
		t.Errorf("seq %d", seq)
	}
}

func TestRecordChecks(t *testing.T) {
	r := testRecord(t, 500)
	for name, mod := range map[string]func(*Record){
		"no subvol":       func(r *Record) { r.Subvol = uuid.Zero },
		"no uuid":         func(r *Record) { r.UUID = uuid.Zero },
		"half parent":     func(r *Record) { r.CloneCTransID = 0 },
		"digest vs state": func(r *Record) { r.Point.Digest[0] ^= 1 },
		"bad state":       func(r *Record) { r.State = r.State[:10] },
		"negative offset": func(r *Record) { r.Point.Offset = -1 },
	} {
		bad := r
		mod(&bad)
		s, err := EncodeSlot(bad, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := DecodeSlot(s); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriterAndLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, MarkerName("snap"))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	Stamp(f, 99)
	if _, _, ok, err := Load(dir, "snap"); ok || err != nil {
		t.Fatalf("record in a fresh marker: %v %v", ok, err)
	}
	w, _ := NewWriter(f)
	for _, off := range []int64{100, 1000, 500} {
		rec := testRecord(t, off)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		// A record without a progress page of this boot has no point.
		if got, exact, ok, err := Load(dir, "snap"); !ok || exact || err != nil || got.Point != rec.Point {
			t.Fatalf("after writing %d, no page: %v %v %v", off, exact, ok, err)
		}
		page, err := MapProgress(f, rec.Subvol)
		if err != nil {
			t.Fatal(err)
		}
		d, err := rec.Digester()
		if err != nil {
			t.Fatal(err)
		}
		page.Set(d)
		got, exact, ok, err := Load(dir, "snap")
		if !ok || !exact || err != nil || got.Point != rec.Point {
			t.Fatalf("after writing %d: %v %v %v %+v", off, exact, ok, err, got.Point)
		}
		// The page ahead of the record: its point is the one.
		d.Command(make([]byte, sendstream.CmdHeaderLen))
		page.Set(d)
		page.Close()
		got, exact, ok, err = Load(dir, "snap")
		if !ok || !exact || err != nil || got.Point != d.Point() || got.UUID != rec.UUID {
			t.Fatalf("page ahead of %d: %v %v %v %+v", off, exact, ok, err, got.Point)
		}
		f.Truncate(OwnerLen + 2*SlotLen)
	}
	// Stamping again keeps the record; a new writer goes on numbering.
	Stamp(f, 100)
	w2, _ := NewWriter(f)
	w2.Write(testRecord(t, 100))
	b, _ := os.ReadFile(p)
	if _, seq, _ := Decode(b); seq != 4 || Owner(b) != "bsrecv pid 100" {
		t.Fatalf("seq %d owner %q", seq, Owner(b))
	}
	if err := w2.Clear(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := Load(dir, "snap"); ok {
		t.Fatal("record after Clear")
	}
}

// A marker that is a symbolic link or a FIFO is not read (a FIFO would
// block the reader).
func TestLoadHostile(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(t.TempDir(), "elsewhere")
	s, _ := EncodeSlot(testRecord(t, 100), 1)
	os.WriteFile(real, append(OwnerLine(1), s...), 0o600)
	os.Symlink(real, filepath.Join(dir, MarkerName("a")))
	if _, _, ok, err := Load(dir, "a"); ok || err != nil {
		t.Errorf("symlinked marker: %v %v", ok, err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, MarkerName("b")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := Load(dir, "b"); ok || err != nil {
		t.Errorf("FIFO marker: %v %v", ok, err)
	}
	if n := MarkerName(strings.Repeat("x", 250)); len(n) > 255 || !strings.HasPrefix(n, ".bsrecv-") {
		t.Errorf("long name %q", n)
	}
}

// FuzzDecode: hostile marker content never panics, and what is accepted
// is self-consistent.
func FuzzDecode(f *testing.F) {
	s1, _ := EncodeSlot(testRecord(f, 100), 1)
	s2, _ := EncodeSlot(testRecord(f, 1000), 2)
	f.Add(append(append(OwnerLine(1), s1...), s2...))
	f.Add(append(OwnerLine(1), s1...))
	f.Add([]byte("bsrecv pid 1\n"))
	f.Add(append(OwnerLine(1), []byte(slotTag+"0000000000000001 "+strings.Repeat("0", 64)+" {}\n")...))
	f.Fuzz(func(t *testing.T, b []byte) {
		Owner(b)
		rec, seq, ok := Decode(b)
		if !ok {
			return
		}
		if rec.Subvol.IsZero() || rec.UUID.IsZero() || rec.Point.Offset < 0 || rec.Point.Offset > MaxOffset {
			t.Fatalf("accepted %+v", rec)
		}
		d, err := rec.Digester()
		if err != nil || d.Point() != rec.Point {
			t.Fatalf("accepted a record whose state is not its point: %v", err)
		}
		again, err := EncodeSlot(rec, seq)
		if err != nil {
			return
		}
		if r2, s2, ok := DecodeSlot(again); !ok || s2 != seq || r2.Point != rec.Point {
			t.Fatal("re-encoded record does not decode the same")
		}
	})
}

// A receiver's whole flow: digest a whole stream as it applies it, record
// a point, and take a resumed stream from there only when it matches.
func TestReceiverFlow(t *testing.T) {
	b := realStream(t)
	offs, first := bounds(b)
	r := sendstream.NewReader(bytes.NewReader(b))
	s, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	d := Start(s.Version)
	var rec Record
	at := offs[len(offs)/2]
	sub := uuid.UUID{9}
	sendstream.Walk(bytes.NewReader(b), func(_ *sendstream.Stream, c *sendstream.Command) error {
		if c.Offset == sendstream.HeaderLen {
			return nil // the first command
		}
		h := c.Header()
		d.Command(h[:])
		if d.Point().Offset == at {
			rec = NewRecord(sub, s.Subvol, d, time.Now())
		}
		return nil
	})
	if rec.Point.Offset != at {
		t.Fatal("no record")
	}
	rf := sendstream.ResumeFrom{Offset: rec.Point.Offset, Digest: rec.Point.Digest}
	// What bssend would send from there reads back as matching.
	res, err := sendstream.AppendResumed(nil, b[:first], rf)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := sendstream.NewReader(bytes.NewReader(append(res, b[first+int(at):]...))).Next()
	if err != nil || rs.Resume == nil {
		t.Fatal(err)
	}
	if !rec.Resumes(rs.Subvol, *rs.Resume) {
		t.Fatal("record does not take its own stream")
	}
	// Continued from the record, the digest ends where the whole one does.
	d2, err := rec.Digester()
	if err != nil {
		t.Fatal(err)
	}
	d2.Write(b[first+int(at):])
	if d2.Point() != d.Point() {
		t.Fatal("continued digest differs")
	}
	for name, mod := range map[string]func(*sendstream.Head, *sendstream.ResumeFrom){
		"other uuid":     func(h *sendstream.Head, _ *sendstream.ResumeFrom) { h.UUID[0] ^= 1 },
		"other ctransid": func(h *sendstream.Head, _ *sendstream.ResumeFrom) { h.CTransID++ },
		"other parent":   func(h *sendstream.Head, _ *sendstream.ResumeFrom) { h.CloneUUID[0] ^= 1 },
		"full":           func(h *sendstream.Head, _ *sendstream.ResumeFrom) { h.Snapshot = false },
		"other offset":   func(_ *sendstream.Head, rf *sendstream.ResumeFrom) { rf.Offset += 10 },
		"other digest":   func(_ *sendstream.Head, rf *sendstream.ResumeFrom) { rf.Digest[3] ^= 1 },
	} {
		h, f := rs.Subvol, *rs.Resume
		mod(&h, &f)
		if rec.Resumes(h, f) {
			t.Errorf("%s: taken", name)
		}
	}
}
