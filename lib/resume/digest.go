// Package resume is the resume point of a receive cut short: the digest
// that proves a sender's stream is the one a receiver holds in part, and
// the record of it in the receive marker (buttersink-formats(5), RESUME).
//
// The resume digest of a stream at offset N is SHA-256 over its stream
// header (17 bytes, the version without sendstream.ResumeFlag) followed by
// the 10-byte header (le32 length, le16 type, le32 crc) of every command
// after the first that ends at or before N, where N counts the stream's
// bytes after its first command and always falls on a command boundary.
// Each header's CRC32C covers its command's bytes, so the digest covers
// them too at the cost of hashing ten bytes a command. The first command
// is left out, so that a stream whose path was rewritten (a nested
// snapshot) has the same offsets and digests; its UUIDs and transids are
// in the record instead.
package resume

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/buttersink/buttersink/lib/sendstream"
)

// Point is a place in a stream: Offset bytes after its first command,
// and the resume digest there.
type Point struct {
	Offset int64
	Digest [32]byte
}

// MaxOffset bounds offsets, far beyond any stream, so that sums of them
// never overflow.
const MaxOffset = 1 << 62

// Digester computes the resume digest. Either Write is given every byte
// of the stream after its first command, or Command every command header
// after the first; not both.
type Digester struct {
	h   hash.Hash
	off int64
	// Write's state: a command header being assembled, and the bytes of
	// the current command's payload still to skip.
	hdr  [sendstream.CmdHeaderLen]byte
	nhdr int
	skip int64
	// ended: an END command was among the commands.
	ended bool
}

// NewDigester starts the digest of a stream whose header is header.
func NewDigester(header []byte) (*Digester, error) {
	if len(header) != sendstream.HeaderLen || string(header[:len(sendstream.Magic)]) != sendstream.Magic {
		return nil, errors.New("resume digest: not a stream header")
	}
	var h [sendstream.HeaderLen]byte
	copy(h[:], header)
	v := binary.LittleEndian.Uint32(h[len(sendstream.Magic):]) &^ sendstream.ResumeFlag
	binary.LittleEndian.PutUint32(h[len(sendstream.Magic):], v)
	d := &Digester{h: sha256.New()}
	d.h.Write(h[:])
	return d, nil
}

// Command adds the header of the next command (10 bytes); the offset
// moves past the whole command.
func (d *Digester) Command(hdr []byte) {
	d.h.Write(hdr[:sendstream.CmdHeaderLen])
	d.ended = d.ended || binary.LittleEndian.Uint16(hdr[4:]) == sendstream.CmdEnd
	d.off += sendstream.CmdHeaderLen + int64(binary.LittleEndian.Uint32(hdr))
}

// Write takes the stream's bytes after its first command, in any pieces,
// finding the command boundaries itself. It verifies nothing else.
func (d *Digester) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.skip > 0 {
			k := min(int64(len(p)), d.skip)
			d.skip -= k
			p = p[k:]
			continue
		}
		k := copy(d.hdr[d.nhdr:], p)
		d.nhdr += k
		p = p[k:]
		if d.nhdr == sendstream.CmdHeaderLen {
			d.Command(d.hdr[:])
			d.nhdr = 0
			d.skip = int64(binary.LittleEndian.Uint32(d.hdr[:]))
		}
	}
	return n, nil
}

// Ended reports whether the stream's END was among the commands: no
// resume point lies beyond it (a receive that applied END is complete).
func (d *Digester) Ended() bool { return d.ended }

// AtBoundary reports whether the bytes given to Write end a command.
func (d *Digester) AtBoundary() bool { return d.nhdr == 0 && d.skip == 0 }

// Offset is the point's offset, without computing its digest.
func (d *Digester) Offset() int64 { return d.off }

// Point is the resume point after what was given so far (with Write: at
// the end of the last whole command begun).
func (d *Digester) Point() Point {
	p := Point{Offset: d.off}
	d.h.Sum(p.Digest[:0])
	return p
}

// State is the digester's state, from which Restore continues it: a
// receive resumed once may be resumed again.
func (d *Digester) State() []byte {
	b, err := d.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // SHA-256's state always marshals
	}
	return b
}

// AppendState appends State to b, allocating nothing when b has room
// (a receiver notes it after every command).
func (d *Digester) AppendState(b []byte) []byte {
	b, err := d.h.(encoding.BinaryAppender).AppendBinary(b)
	if err != nil {
		panic(err) // SHA-256's state always marshals
	}
	return b
}

// Restore continues a digest from its State at offset.
func Restore(state []byte, offset int64) (*Digester, error) {
	if offset < 0 || offset > MaxOffset {
		return nil, fmt.Errorf("resume digest: offset %d out of range", offset)
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("resume digest: bad state: %v", err)
	}
	return &Digester{h: h, off: offset}, nil
}
