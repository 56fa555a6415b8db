package sendstream

import (
	"encoding/binary"
	"fmt"
)

// Verifier checks one whole send stream handed to it in pieces of any
// size, where they lie: it keeps no copy of the stream's bytes but the
// headers being assembled and the first command, whatever the command
// sizes. It applies the checks Reader does (magic, version, every
// command's CRC, SUBVOL or SNAPSHOT first and only first, END last) and
// refuses resumed streams and any byte after END.
//
// It lets a consumer verify the stream in one goroutine while others hash
// and write the same buffers: Verified says how far the bytes may pass.
type Verifier struct {
	off   int64 // bytes taken
	state state
	hdr   [HeaderLen]byte
	nhdr  int
	// The command being checked: where it starts, its type, its payload
	// bytes still to come, the CRC so far and the stored one.
	cmdOff int64
	typ    uint16
	left   int
	crc    uint32
	stored uint32
	// first collects the first command (header and payload) to decode.
	first   []byte
	version uint32

	verified int64
	head     *Head
	err      error
}

// NewVerifier starts verifying a stream from its first byte.
func NewVerifier() *Verifier { return &Verifier{state: stateHeader} }

// Write verifies p, the stream's next bytes. The first fault sticks.
func (v *Verifier) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && v.err == nil {
		p = v.take(p)
	}
	if v.err != nil {
		return 0, v.err
	}
	return n, nil
}

// fill gathers the n bytes of a header from p into v.hdr, which may take
// more than one Write, and once they are all there runs parse on them.
// It returns the rest of p.
func (v *Verifier) fill(p []byte, n int, parse func() error) []byte {
	k := copy(v.hdr[v.nhdr:n], p)
	v.nhdr += k
	v.off += int64(k)
	if v.nhdr < n {
		return nil
	}
	v.nhdr = 0
	v.err = parse()
	return p[k:]
}

// take consumes what it can of p and returns the rest.
func (v *Verifier) take(p []byte) []byte {
	switch v.state {
	case stateEnded:
		v.err = &Error{Offset: v.off, Reason: "data after the stream's END command"}
		return nil
	case stateHeader:
		return v.fill(p, HeaderLen, v.header)
	}
	if v.left < 0 {
		return v.fill(p, CmdHeaderLen, v.command)
	}
	k := min(v.left, len(p))
	v.crc = crc32c(v.crc, p[:k])
	if v.first != nil {
		v.first = append(v.first, p[:k]...)
	}
	v.left -= k
	v.off += int64(k)
	if v.left == 0 {
		v.err = v.finish()
	}
	return p[k:]
}

func (v *Verifier) header() error {
	h := v.hdr[:HeaderLen]
	if string(h[:len(Magic)]) != Magic {
		return &Error{Offset: 0, Reason: "bad magic, not a btrfs send stream"}
	}
	ver := binary.LittleEndian.Uint32(h[len(Magic):])
	if ver&ResumeFlag != 0 {
		return &Error{Offset: 0, Reason: "a resumed stream, where a whole one belongs"}
	}
	if ver < 1 || ver > MaxVersion {
		return &Error{Offset: 0, Reason: fmt.Sprintf("unsupported send stream version %d (this reads 1 to %d)", ver, MaxVersion)}
	}
	v.version = ver
	v.state = stateFirst
	v.left = -1
	return nil
}

// command starts the command whose header is in v.hdr.
func (v *Verifier) command() error {
	h := v.hdr[:CmdHeaderLen]
	n := binary.LittleEndian.Uint32(h)
	v.cmdOff = v.off - CmdHeaderLen
	v.typ = binary.LittleEndian.Uint16(h[4:])
	if n > MaxCommand {
		return &Error{Offset: v.cmdOff, Reason: fmt.Sprintf("%s command length %d over the limit of %d bytes", CmdName(v.typ), n, MaxCommand)}
	}
	v.stored = binary.LittleEndian.Uint32(h[6:])
	v.crc = crc32c(crc32c(0, h[:6]), zeroCRC[:])
	v.left = int(n)
	if v.state == stateFirst {
		v.first = append(make([]byte, 0, CmdHeaderLen+n), h...)
	}
	if n == 0 {
		return v.finish()
	}
	return nil
}

// finish checks the command whose last byte was just taken.
func (v *Verifier) finish() error {
	v.left = -1
	off, typ := v.cmdOff, v.typ
	if v.crc != v.stored {
		return &Error{Offset: off, Reason: fmt.Sprintf("crc mismatch in %s command (stored %08x, computed %08x)", CmdName(typ), v.stored, v.crc)}
	}
	isHead := typ == CmdSubvol || typ == CmdSnapshot
	switch {
	case v.state == stateFirst && !isHead:
		return &Error{Offset: off, Reason: fmt.Sprintf("stream starts with %s, want SUBVOL or SNAPSHOT", CmdName(typ))}
	case v.state == stateCommands && isHead:
		return &Error{Offset: off, Reason: fmt.Sprintf("second %s in one stream (streams made with btrfs send -e are not supported)", CmdName(typ))}
	case typ == CmdResume:
		return &Error{Offset: off, Reason: "RESUME command where none belongs (only right after a resumed stream's first command)"}
	case typ == CmdEnd:
		v.state = stateEnded
		return nil
	}
	if v.state == stateFirst {
		c := Command{Type: typ, Offset: off, Version: v.version, CRC: v.stored, Payload: v.first[CmdHeaderLen:]}
		h, err := parseHead(&c)
		if err != nil {
			return &Error{Offset: off, Reason: err.Error()}
		}
		v.head, v.first = &h, nil
		v.state = stateCommands
	}
	v.verified = v.off
	return nil
}

// Verified is the offset up to which the bytes are whole commands whose
// CRCs matched (the stream header with them). It never includes END: the
// consumer decides when to pass that on.
func (v *Verifier) Verified() int64 { return v.verified }

// Head is what the first command says, once it was verified; nil before.
func (v *Verifier) Head() *Head { return v.head }

// Close ends the input: it returns the first fault, or an error unless
// the stream ended with its END command. Size is then the stream's size.
func (v *Verifier) Close() error {
	if v.err != nil || v.state == stateEnded {
		return v.err
	}
	switch {
	case v.off == 0:
		v.err = &Error{Reason: ErrEmpty.Error(), Err: ErrEmpty}
	case v.state == stateHeader:
		v.err = &Error{Offset: 0, Reason: fmt.Sprintf("truncated stream header (%d of %d bytes)", v.nhdr, HeaderLen), Cut: true}
	case v.left < 0 && v.nhdr == 0:
		v.err = &Error{Offset: v.off, Reason: "stream ends without END command", Cut: true}
	case v.left < 0:
		v.err = &Error{Offset: v.off - int64(v.nhdr), Reason: fmt.Sprintf("truncated command header (%d of %d bytes)", v.nhdr, CmdHeaderLen), Cut: true}
	default:
		v.err = &Error{Offset: v.cmdOff, Reason: fmt.Sprintf("truncated %s command (%d of %d bytes)", CmdName(v.typ), v.off-v.cmdOff, v.off-v.cmdOff+int64(v.left)), Cut: true}
	}
	return v.err
}

// Size is the number of bytes taken: the stream's size after a Close
// that returned nil.
func (v *Verifier) Size() int64 { return v.off }
