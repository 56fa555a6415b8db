package resume

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/buttersink/buttersink/lib/uuid"
)

// Record is a receive's resume point, as its receiver keeps it in the
// receive marker: written only after everything up to Point is durable.
type Record struct {
	// Subvol is the partial subvolume's own UUID: the record belongs to
	// that subvolume only, never to another one at the same path.
	Subvol uuid.UUID
	// UUID and CTransID are the stream's (what the subvolume is being
	// received as); CloneUUID and CloneCTransID its parent's, zero for a
	// full stream.
	UUID          uuid.UUID
	CTransID      uint64
	CloneUUID     uuid.UUID
	CloneCTransID uint64
	Point         Point
	// State is the Digester's state at Point (Digester.State), to go on
	// from there.
	State []byte
	Time  time.Time
}

// Digester continues the record's digest from its point.
func (r *Record) Digester() (*Digester, error) { return Restore(r.State, r.Point.Offset) }

// FormatVersion is the record's "v".
const FormatVersion = 1

type wire struct {
	V             int       `json:"v"`
	Subvol        uuid.UUID `json:"subvol"`
	UUID          uuid.UUID `json:"uuid"`
	CTransID      uint64    `json:"ctransid"`
	CloneUUID     uuid.UUID `json:"clone_uuid"`
	CloneCTransID uint64    `json:"clone_ctransid"`
	Offset        int64     `json:"offset"`
	Digest        string    `json:"digest"`
	State         []byte    `json:"state"`
	Time          time.Time `json:"time"`
}

// MarshalJSON is the record's JSON, as a marker slot holds it.
func (r Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(wire{V: FormatVersion, Subvol: r.Subvol, UUID: r.UUID, CTransID: r.CTransID,
		CloneUUID: r.CloneUUID, CloneCTransID: r.CloneCTransID, Offset: r.Point.Offset,
		Digest: hex.EncodeToString(r.Point.Digest[:]), State: r.State, Time: r.Time.UTC()})
}

// UnmarshalJSON reads a record and checks it: known version, the
// subvolume's and the stream's UUIDs set, an offset in range, and a
// digest that is its state's.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wire
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&w); err != nil {
		return err
	}
	switch {
	case w.V != FormatVersion:
		return fmt.Errorf("resume record version %d, want %d", w.V, FormatVersion)
	case w.Subvol.IsZero() || w.UUID.IsZero():
		return errors.New("resume record without subvol or uuid")
	case w.CloneUUID.IsZero() != (w.CloneCTransID == 0):
		return errors.New("resume record with half a parent")
	case w.Offset < 0 || w.Offset > MaxOffset:
		return fmt.Errorf("resume record offset %d out of range", w.Offset)
	}
	var dig [32]byte
	if n, err := hex.Decode(dig[:], []byte(w.Digest)); err != nil || n != 32 || len(w.Digest) != 64 {
		return errors.New("resume record digest is not 64 hex digits")
	}
	dg, err := Restore(w.State, w.Offset)
	if err != nil {
		return err
	}
	if dg.Point().Digest != dig {
		return errors.New("resume record digest does not match its state")
	}
	*r = Record{Subvol: w.Subvol, UUID: w.UUID, CTransID: w.CTransID, CloneUUID: w.CloneUUID,
		CloneCTransID: w.CloneCTransID, Point: Point{Offset: w.Offset, Digest: dig}, State: w.State, Time: w.Time}
	return nil
}

// The receive marker (.NAME.bsrecv) holds, at fixed places, an owner line
// and two record slots. The owner line (OwnerLen bytes: "bsrecv pid N",
// spaces, a newline) names the receiving process. A slot (SlotLen bytes
// at OwnerLen and OwnerLen+SlotLen) is one line of text:
//
//	bsrecv-resume SEQ SUM JSON
//
// SEQ 16 hex digits, SUM the SHA-256 in hex of "SEQ JSON", then the
// record, a newline, spaces up to the slot's last byte and a newline.
// Records are written to the slots in turns, each with the next SEQ, in
// place (pwrite, then fdatasync): a write cut by a crash spoils at most
// the slot it was writing, whose SUM then fails, and the other slot still
// holds the previous record. The valid slot with the higher SEQ is the
// record.
const (
	OwnerLen = 128
	SlotLen  = 1024
	// Size is a marker's whole length with both slots.
	Size = OwnerLen + 2*SlotLen
)

const slotTag = "bsrecv-resume "

// EncodeSlot is the slot holding rec as record number seq.
func EncodeSlot(rec Record, seq uint64) ([]byte, error) {
	js, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, SlotLen)
	b = append(b, slotTag...)
	body := append(fmt.Appendf(nil, "%016x ", seq), js...)
	sum := sha256.Sum256(body)
	b = append(b, body[:17]...)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, ' ')
	b = append(b, js...)
	b = append(b, '\n')
	if len(b) > SlotLen-1 {
		return nil, fmt.Errorf("resume record of %d bytes: over a slot's %d", len(b), SlotLen-1)
	}
	for len(b) < SlotLen-1 {
		b = append(b, ' ')
	}
	return append(b, '\n'), nil
}

// DecodeSlot reads one slot; ok is false for anything but a whole,
// valid record.
func DecodeSlot(b []byte) (rec Record, seq uint64, ok bool) {
	line, _, found := bytes.Cut(b, []byte{'\n'})
	if !found || !bytes.HasPrefix(line, []byte(slotTag)) {
		return Record{}, 0, false
	}
	line = line[len(slotTag):]
	if len(line) < 17+65 || line[16] != ' ' || line[17+64] != ' ' {
		return Record{}, 0, false
	}
	seq, err := strconv.ParseUint(string(line[:16]), 16, 64)
	if err != nil {
		return Record{}, 0, false
	}
	var want [32]byte
	if n, err := hex.Decode(want[:], line[17:17+64]); err != nil || n != 32 {
		return Record{}, 0, false
	}
	js := line[17+65:]
	h := sha256.New()
	h.Write(line[:17])
	h.Write(js)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return Record{}, 0, false
	}
	if err := json.Unmarshal(js, &rec); err != nil {
		return Record{}, 0, false
	}
	return rec, seq, true
}

// Decode is the record in a marker's content, if any: the valid slot with
// the higher sequence number. seq is that number.
func Decode(marker []byte) (rec Record, seq uint64, ok bool) {
	for i := 0; i < 2; i++ {
		at := OwnerLen + i*SlotLen
		if len(marker) <= at {
			break
		}
		r, s, good := DecodeSlot(marker[at:min(len(marker), at+SlotLen)])
		if good && (!ok || s > seq) {
			rec, seq, ok = r, s, true
		}
	}
	return rec, seq, ok
}

// OwnerLine is the owner line for process pid, OwnerLen bytes.
func OwnerLine(pid int) []byte {
	b := []byte("bsrecv pid " + strconv.Itoa(pid))
	for len(b) < OwnerLen-1 {
		b = append(b, ' ')
	}
	return append(b, '\n')
}

// Owner is what a marker's content says of its owner, for a message: its
// first line, trimmed, when it is short printable ASCII; "" otherwise.
func Owner(marker []byte) string {
	line, _, _ := bytes.Cut(marker[:min(len(marker), OwnerLen)], []byte{'\n'})
	line = bytes.TrimSpace(line)
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	if len(line) > 100 {
		return ""
	}
	return string(line)
}
