package resume

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/uuid"
)

// Why the progress page. Commands applied twice are not the same as
// once (a rename that swapped two names, replayed, swaps them back), so
// a receive must know exactly which commands its partial subvolume holds.
// After every command it notes that point in the progress page of its
// marker, through a shared mapping: a store into memory that the kernel
// keeps when the process dies (killed, interrupted, connection lost), at
// the cost of no system call. The page is only good within the boot that
// wrote it: after a system crash the subvolume is at whatever the
// filesystem last committed, which no point names, and the partial is
// received anew. So a receive never syncs to make a point durable: a
// point is only ever used in the boot that noted it.

// The progress page: at ProgressOff of the marker, two slots written in
// turns, each:
//
//	magic[16] seq[8] boot[16] subvol[16] offset[8] statelen[2] state[...] ... crc32c[4]
//
// little-endian, the CRC32C over the slot's bytes before it. A store cut
// by the process's death spoils only the slot being written.
const (
	ProgressOff  = 4096
	progressSlot = 512
	ProgressLen  = 2 * progressSlot
	progressHead = 16 + 8 + 16 + 16 + 8 + 2
)

var progressMagic = []byte("bsrecv-progress\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Progress is what a progress slot holds: the point up to which the
// receive into Subvol applied every command, in the boot Boot.
type Progress struct {
	Boot   [16]byte
	Subvol uuid.UUID
	Offset int64
	State  []byte
}

// Point is the progress's point, its digest computed from its state.
func (p Progress) Point() (Point, error) {
	d, err := Restore(p.State, p.Offset)
	if err != nil {
		return Point{}, err
	}
	return d.Point(), nil
}

// BootID is this boot's identity: a progress page of another boot is
// void. Read once: a listing asks for each partial receive.
var BootID = sync.OnceValues(func() ([16]byte, error) {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id, err
	}
	h, err := hex.DecodeString(string(bytes.ReplaceAll(bytes.TrimSpace(b), []byte("-"), nil)))
	if err != nil || len(h) != 16 {
		return id, errors.New("boot id: not a uuid")
	}
	copy(id[:], h)
	return id, nil
})

// ReadProgress reads the latest valid progress slot of the marker f.
func ReadProgress(f *os.File) (Progress, bool) {
	b := make([]byte, ProgressLen)
	if n, _ := f.ReadAt(b, ProgressOff); n != ProgressLen {
		return Progress{}, false
	}
	var best Progress
	var bestSeq uint64
	found := false
	for i := 0; i < 2; i++ {
		s := b[i*progressSlot : (i+1)*progressSlot]
		if !bytes.Equal(s[:16], progressMagic) || binary.LittleEndian.Uint32(s[progressSlot-4:]) != crc32.Checksum(s[:progressSlot-4], castagnoli) {
			continue
		}
		seq := binary.LittleEndian.Uint64(s[16:])
		n := int(binary.LittleEndian.Uint16(s[64:]))
		if progressHead+n > progressSlot-4 || found && seq <= bestSeq {
			continue
		}
		var p Progress
		copy(p.Boot[:], s[24:40])
		copy(p.Subvol[:], s[40:56])
		p.Offset = int64(binary.LittleEndian.Uint64(s[56:]))
		p.State = append([]byte(nil), s[progressHead:progressHead+n]...)
		best, bestSeq, found = p, seq, true
	}
	return best, found
}

// ProgressPage is the mapped progress page of a marker.
type ProgressPage struct {
	mem    []byte
	seq    uint64
	boot   [16]byte
	subvol uuid.UUID
	state  []byte // scratch
}

// MapProgress maps the progress page of the marker f for the receive
// into subvol, going on numbering from what f holds.
func MapProgress(f *os.File, subvol uuid.UUID) (*ProgressPage, error) {
	boot, err := BootID()
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(ProgressOff + ProgressLen); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), ProgressOff, ProgressLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("receive marker: %w", err)
	}
	p := &ProgressPage{mem: mem, boot: boot, subvol: subvol}
	for i := 0; i < 2; i++ {
		if s := mem[i*progressSlot:]; bytes.Equal(s[:16], progressMagic) {
			p.seq = max(p.seq, binary.LittleEndian.Uint64(s[16:]))
		}
	}
	return p, nil
}

// Set notes that every command up to d's point is applied.
func (p *ProgressPage) Set(d *Digester) {
	p.seq++
	s := p.mem[(p.seq%2)*progressSlot:][:progressSlot]
	p.state = d.AppendState(p.state[:0])
	st := p.state
	copy(s, progressMagic)
	binary.LittleEndian.PutUint64(s[16:], p.seq)
	copy(s[24:], p.boot[:])
	copy(s[40:], p.subvol[:])
	binary.LittleEndian.PutUint64(s[56:], uint64(d.Offset()))
	binary.LittleEndian.PutUint16(s[64:], uint16(len(st)))
	copy(s[progressHead:], st)
	binary.LittleEndian.PutUint32(s[progressSlot-4:], crc32.Checksum(s[:progressSlot-4], castagnoli))
}

// Close unmaps the page.
func (p *ProgressPage) Close() { unix.Munmap(p.mem) }

// Exact is the point a receive resumes from: the marker's record with its
// point moved to the progress page's, when the page is of this boot, of
// the record's subvolume and not behind the record. ok is false
// otherwise: what the partial subvolume holds is not known.
func Exact(rec Record, p Progress, boot [16]byte) (Record, bool) {
	if p.Boot != boot || p.Subvol != rec.Subvol || p.Offset < rec.Point.Offset {
		return Record{}, false
	}
	pt, err := p.Point()
	if err != nil {
		return Record{}, false
	}
	rec.Point, rec.State = pt, p.State
	return rec, true
}
