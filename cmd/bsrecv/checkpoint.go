package bsrecv

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

// Why two kinds of resume points. A record (lib/resume) is durable but
// lags: the applier goes on while the filesystem syncs, so when bsrecv
// dies the subvolume holds every command up to some point past the
// record's, and applying those again is wrong (a rename that swapped two
// names, replayed, swaps them back). So the receive also keeps, after
// every command, the exact point it applied in the progress page of the
// marker, through a shared mapping: a store into memory that the kernel
// keeps when the process dies (killed, interrupted, connection lost). A
// resumed stream starts at the record's point; bsrecv reads (and
// digests) it up to the progress page's point without applying it, then
// goes on applying. The page is only good within the boot that wrote it:
// after a system crash the subvolume is at whatever the filesystem last
// committed, which no point names, and the partial is received anew.

// The progress page: at progressOff of the marker, two slots written in
// turns, each:
//
//	magic[16] seq[8] boot[16] subvol[16] offset[8] statelen[2] state[...] ... crc32c[4]
//
// little-endian, the CRC32C over the slot's bytes before it. A store cut
// by the process's death spoils only the slot being written.
const (
	progressOff  = 4096
	progressSlot = 512
	progressLen  = 2 * progressSlot
	progressHead = 16 + 8 + 16 + 16 + 8 + 2
)

var progressMagic = []byte("bsrecv-progress\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// progressPoint is what a progress slot holds.
type progressPoint struct {
	boot   [16]byte
	subvol uuid.UUID
	offset int64
	state  []byte
}

// progressPage is the mapped progress page of a marker.
type progressPage struct {
	mem    []byte
	seq    uint64
	boot   [16]byte
	subvol uuid.UUID
	state  []byte // scratch
}

// bootID is this boot's identity: a progress page of another boot is
// void.
func bootID() ([16]byte, error) {
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
}

// readProgress reads the latest valid progress slot of the marker f.
func readProgress(f *os.File) (progressPoint, bool) {
	b := make([]byte, progressLen)
	if n, _ := f.ReadAt(b, progressOff); n != progressLen {
		return progressPoint{}, false
	}
	var best progressPoint
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
		var p progressPoint
		copy(p.boot[:], s[24:40])
		copy(p.subvol[:], s[40:56])
		p.offset = int64(binary.LittleEndian.Uint64(s[56:]))
		p.state = append([]byte(nil), s[progressHead:progressHead+n]...)
		best, bestSeq, found = p, seq, true
	}
	return best, found
}

// mapProgress maps the progress page of the marker f for the receive
// into subvol, going on numbering from what f holds.
func mapProgress(f *os.File, subvol uuid.UUID) (*progressPage, error) {
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(progressOff + progressLen); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), progressOff, progressLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("receive marker: %w", err)
	}
	p := &progressPage{mem: mem, boot: boot, subvol: subvol}
	for i := 0; i < 2; i++ {
		if s := mem[i*progressSlot:]; bytes.Equal(s[:16], progressMagic) {
			p.seq = max(p.seq, binary.LittleEndian.Uint64(s[16:]))
		}
	}
	return p, nil
}

// set records that every command up to d's point is applied.
func (p *progressPage) set(d *resume.Digester) {
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

func (p *progressPage) close() { unix.Munmap(p.mem) }

// Checkpoints: every checkpointEvery bytes of applied stream the tree is
// flushed and the point captured; a goroutine syncs the filesystem and
// then writes the record, while the applier goes on. The applier waits
// only when it is checkpointAhead past the last durable point, which
// bounds what a crash loses well under 64 MiB.
const (
	checkpointEvery = 24 << 20
	checkpointAhead = 56 << 20
)

type checkpointer struct {
	tree receive.Tree
	// flush carries out what the applier holds back.
	flush   func() error
	w       *resume.Writer
	subvol  uuid.UUID
	head    sendstream.Head
	durable int64 // offset of the last record written
	taken   int64 // offset of the last point captured
	// done is non-nil while a sync is in flight; it yields its error.
	done chan error
}

// after is called once the command that ends at d's point is applied.
func (c *checkpointer) after(d *resume.Digester) error {
	off := d.Offset()
	if c.done != nil && off-c.durable > checkpointAhead {
		if err := c.wait(); err != nil {
			return err
		}
	}
	if c.done != nil || off-c.taken < checkpointEvery {
		return nil
	}
	if err := c.flush(); err != nil {
		return err
	}
	rec := resume.NewRecord(c.subvol, c.head, d, time.Now())
	c.taken = off
	done := make(chan error, 1)
	c.done = done
	go func() {
		err := c.tree.Sync()
		if err == nil {
			err = c.w.Write(rec)
		}
		done <- err
	}()
	return nil
}

// wait waits for the sync in flight, if any.
func (c *checkpointer) wait() error {
	if c.done == nil {
		return nil
	}
	err := <-c.done
	c.done = nil
	if err != nil {
		return fmt.Errorf("resume point: %w", err)
	}
	c.durable = c.taken
	return nil
}
