package sendstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/buttersink/buttersink/lib/uuid"
)

// Error is a fault in the input: malformed or truncated stream data, or a
// failed read of the underlying reader (then Err holds the cause).
type Error struct {
	// Offset is the absolute byte offset in the input where the faulty
	// header or command starts.
	Offset int64
	Reason string
	Err    error
	// Cut says the input ended or failed before the stream's END (what
	// a killed sender or a lost connection leaves), not that its bytes
	// are wrong.
	Cut bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("send stream byte %d: %s", e.Offset, e.Reason)
}
func (e *Error) Unwrap() error { return e.Err }

// ErrEmpty is the fault of an input that ends before its first byte. A
// pipeline with nothing to do carries no stream, so commands reading
// plans' output may take it as success; a stored object must never be
// empty.
var ErrEmpty = errors.New("empty input, no send stream")

// Head is what a stream's first command (SUBVOL or SNAPSHOT) says.
type Head struct {
	// Snapshot is true for an incremental stream (SNAPSHOT command).
	Snapshot bool
	// Path is the subvolume's name, as the receiver creates it.
	Path string
	// UUID and CTransID identify the sent subvolume (its received UUID
	// when it has one); the receiver stores them as received_uuid and
	// stransid.
	UUID     uuid.UUID
	CTransID uint64
	// CloneUUID and CloneCTransID identify the parent of an incremental
	// stream; zero for a full stream.
	CloneUUID     uuid.UUID
	CloneCTransID uint64
}

const (
	bufSize = 512 << 10
	// minRead is the least free space a read is offered; a pipe hands
	// out at most 64 KiB per read.
	minRead = 64 << 10
)

type state int

const (
	stateIdle     state = iota // before the first stream, or after an END handed out
	stateHeader                // expecting a stream header
	stateFirst                 // expecting SUBVOL or SNAPSHOT
	stateResume                // expecting a resumed stream's RESUME command
	stateCommands              // inside a stream
	stateEnded                 // END verified
)

// Reader splits concatenated send streams and verifies them. Memory is
// bounded by a buffer of 512 KiB (NewReaderSize: two of its size), or of
// twice the largest command (at most MaxCommand) when that is more,
// whatever the stream size.
//
// Its buffer holds, in order: verified bytes not yet handed out
// (buf[start:rel]) and read bytes of the command being assembled
// (buf[rel:end]). A command's bytes are handed out only after its CRC
// matched, so a consumer (btrfs receive) never sees a corrupt command, in
// particular never a corrupt END that would make it finalise a subvolume.
type Reader struct {
	src io.Reader
	buf []byte
	// double: two buffers in turns, spare the other one (see read).
	double bool
	spare  []byte
	// spareBusy: the spare holds the bytes of WriteTo's latest Write,
	// which its writer may still be using.
	spareBusy bool
	base      int64 // input offset of buf[0]

	start, rel, end int

	state    state
	version  uint32
	resumed  bool // the current stream's header has ResumeFlag
	need     int  // bytes from rel that the next header or command needs
	firstLen int  // length of the first command of the current stream
	// resumeLen and resume are a resumed stream's RESUME command.
	resumeLen int
	resume    ResumeFrom
	nstreams  int

	cur    *Stream
	srcErr error // the source's error (io.EOF at its end), sticky
	err    error // sticky fault

	onCommand func(s *Stream, c *Command) error
}

// NewReader reads streams from src. The bytes WriteTo passes to its
// writer are valid during the Write only.
func NewReader(src io.Reader) *Reader {
	return &Reader{src: src, buf: make([]byte, bufSize)}
}

// NewReaderSize reads streams from src into two buffers of size bytes (at
// least 512 KiB), in turns, so that the bytes WriteTo passes to its writer
// stay unchanged until its next Write: the writer may go on using them in
// the background meanwhile.
func NewReaderSize(src io.Reader, size int) *Reader {
	return &Reader{src: src, buf: make([]byte, max(size, bufSize)), double: true}
}

// Stream is one send stream inside the input, from its header through its
// END command.
type Stream struct {
	// Version is the protocol version, without ResumeFlag.
	Version uint32
	Subvol  Head
	// Resume is set for a resumed stream: its bytes after the RESUME
	// command are the original stream's from Resume.Offset on.
	Resume *ResumeFrom
	// Offset is the input offset of the stream header.
	Offset int64

	r    *Reader
	head []byte // header and first command, handed out before the rest
	n    int64
	done bool
}

// Next advances to the next stream, skipping (but still verifying) what
// is left of the current one. It reads the stream header and the first
// command before returning. At a clean end of input after at least one
// stream it returns io.EOF; empty input is an error matching ErrEmpty.
func (r *Reader) Next() (*Stream, error) {
	if r.err != nil {
		return nil, r.err
	}
	if s := r.cur; s != nil {
		if !s.done {
			if _, err := io.Copy(io.Discard, s); err != nil {
				return nil, err
			}
		}
		s.done = true
		r.cur = nil
	}
	// Look for another header; end of input here is the clean end.
	for r.end == r.rel {
		if r.srcErr != nil {
			if r.srcErr != io.EOF {
				return nil, r.fail(r.readError())
			}
			if r.nstreams == 0 {
				return nil, r.fail(&Error{Offset: r.base + int64(r.rel), Reason: ErrEmpty.Error(), Err: ErrEmpty})
			}
			return nil, io.EOF
		}
		r.read()
	}
	s := &Stream{r: r, Offset: r.base + int64(r.rel)}
	r.cur = s
	r.state = stateHeader
	r.need = HeaderLen
	if err := r.advance(); err != nil {
		return nil, r.fail(err)
	}
	for r.state == stateHeader || r.state == stateFirst || r.state == stateResume {
		if err := r.more(); err != nil {
			return nil, r.fail(err)
		}
	}
	s.Version = r.version
	n := HeaderLen + r.firstLen
	if r.resumed {
		rf := r.resume
		s.Resume = &rf
		n += r.resumeLen
	}
	s.head = append([]byte(nil), r.buf[r.start:r.start+n]...)
	r.start += n
	first := Command{Type: binary.LittleEndian.Uint16(s.head[HeaderLen+4:]), Offset: s.Offset + HeaderLen,
		Version: s.Version, Payload: s.head[HeaderLen+CmdHeaderLen : HeaderLen+r.firstLen]}
	h, err := parseHead(&first)
	if err != nil {
		return nil, r.fail(&Error{Offset: first.Offset, Reason: err.Error()})
	}
	s.Subvol = h
	r.nstreams++
	return s, nil
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

// read reads once from the source into the buffer, making room first.
//
// A double reader makes room in the other of its two buffers, never by
// moving bytes within the one that was handed out from: a slice WriteTo
// passed to its writer stays as it is while the reader fills the other
// buffer, that is until WriteTo's next Write (or until the stream's end).
func (r *Reader) read() int {
	if r.start == r.end {
		// Nothing pending: start over at the front, without copying.
		r.base += int64(r.end)
		r.start, r.rel, r.end = 0, 0, 0
		if r.double {
			r.swap(len(r.buf))
		}
	}
	if len(r.buf)-r.end < minRead || r.rel+r.need > len(r.buf) {
		// Only the command being assembled (and verified bytes not yet
		// handed out, rarely) move.
		rel, end := r.rel-r.start, r.end-r.start
		size := len(r.buf)
		if want := max(rel+r.need, end+minRead); want > size {
			size = max(want, 2*len(r.buf))
		}
		if r.start > 0 || size > len(r.buf) {
			pending := r.buf[r.start:r.end]
			switch {
			case r.double:
				r.swap(size)
			case size > len(r.buf):
				r.buf = make([]byte, size)
			}
			copy(r.buf, pending)
			r.base += int64(r.start)
			r.start, r.rel, r.end = 0, rel, end
		}
	}
	n, err := r.src.Read(r.buf[r.end:])
	if n < 0 || n > len(r.buf)-r.end {
		n, err = 0, errors.New("invalid read count")
	}
	r.end += n
	if err != nil {
		r.srcErr = err
	}
	return n
}

// swap makes the other buffer, of at least size bytes, the current one.
// The one left may hold the bytes of WriteTo's latest Write: it is not
// reused before the next Write (a second swap meanwhile, to grow for a big
// command, takes a new buffer).
func (r *Reader) swap(size int) {
	b := r.spare
	if len(b) < size || r.spareBusy {
		b = make([]byte, size)
	}
	r.spare, r.buf = r.buf, b
	r.spareBusy = true
}

// more reads and verifies what it can. An end of input inside a stream is
// an error.
func (r *Reader) more() error {
	if r.srcErr == nil {
		if n := r.read(); n > 0 {
			return r.advance()
		}
		if r.srcErr == nil {
			return nil
		}
	}
	if r.srcErr != io.EOF {
		return r.readError()
	}
	off := r.base + int64(r.rel)
	pending := r.end - r.rel
	switch {
	case r.state == stateHeader && !strings.HasPrefix(Magic, string(r.buf[r.rel:r.rel+min(pending, len(Magic))])):
		return &Error{Offset: off, Reason: "bad magic, not a btrfs send stream"}
	case r.state == stateHeader:
		return &Error{Offset: off, Reason: fmt.Sprintf("truncated stream header (%d of %d bytes)", pending, HeaderLen)}
	case pending == 0:
		return &Error{Offset: off, Reason: "stream ends without END command", Cut: true}
	case pending < CmdHeaderLen:
		return &Error{Offset: off, Reason: fmt.Sprintf("truncated command header (%d of %d bytes)", pending, CmdHeaderLen), Cut: true}
	default:
		typ := binary.LittleEndian.Uint16(r.buf[r.rel+4:])
		return &Error{Offset: off, Reason: fmt.Sprintf("truncated %s command (%d of %d bytes)", CmdName(typ), pending, r.need), Cut: true}
	}
}

func (r *Reader) readError() error {
	return &Error{Offset: r.base + int64(r.end), Reason: "read: " + r.srcErr.Error(), Err: r.srcErr, Cut: true}
}

// advance verifies every complete header and command in buf[rel:end],
// up to the END of the current stream.
func (r *Reader) advance() error {
	for {
		off := r.base + int64(r.rel)
		avail := r.end - r.rel
		switch r.state {
		case stateHeader:
			r.need = HeaderLen
			if avail < HeaderLen {
				return nil
			}
			h := r.buf[r.rel : r.rel+HeaderLen]
			if string(h[:len(Magic)]) != Magic {
				return &Error{Offset: off, Reason: "bad magic, not a btrfs send stream"}
			}
			v := binary.LittleEndian.Uint32(h[len(Magic):])
			r.resumed = v&ResumeFlag != 0
			if c := v &^ ResumeFlag; c < 1 || c > MaxVersion {
				return &Error{Offset: off, Reason: fmt.Sprintf("unsupported send stream version %d (this reads 1 to %d)", v, MaxVersion)}
			}
			r.version = v &^ ResumeFlag
			r.rel += HeaderLen
			r.state = stateFirst
		case stateFirst, stateResume, stateCommands:
			r.need = CmdHeaderLen
			if avail < CmdHeaderLen {
				return nil
			}
			h := r.buf[r.rel:]
			n := binary.LittleEndian.Uint32(h)
			typ := binary.LittleEndian.Uint16(h[4:])
			if n > MaxCommand {
				return &Error{Offset: off, Reason: fmt.Sprintf("%s command length %d over the limit of %d bytes", CmdName(typ), n, MaxCommand)}
			}
			total := CmdHeaderLen + int(n)
			r.need = total
			if avail < total {
				return nil
			}
			cmd := r.buf[r.rel : r.rel+total]
			if stored, got := binary.LittleEndian.Uint32(cmd[6:]), commandCRC(cmd); stored != got {
				return &Error{Offset: off, Reason: fmt.Sprintf("crc mismatch in %s command (stored %08x, computed %08x)", CmdName(typ), stored, got)}
			}
			isHead := typ == CmdSubvol || typ == CmdSnapshot
			if r.state == stateFirst && !isHead {
				return &Error{Offset: off, Reason: fmt.Sprintf("stream starts with %s, want SUBVOL or SNAPSHOT", CmdName(typ))}
			}
			if r.state == stateCommands && isHead {
				return &Error{Offset: off, Reason: fmt.Sprintf("second %s in one stream (streams made with btrfs send -e are not supported)", CmdName(typ))}
			}
			switch {
			case r.state == stateResume && typ != CmdResume:
				return &Error{Offset: off, Reason: fmt.Sprintf("resumed stream with %s after its first command, want RESUME", CmdName(typ))}
			case r.state == stateCommands && typ == CmdResume:
				return &Error{Offset: off, Reason: "RESUME command where none belongs (only right after a resumed stream's first command)"}
			case typ == CmdResume:
				rf, err := parseResume(cmd[CmdHeaderLen:])
				if err != nil {
					return &Error{Offset: off, Reason: err.Error()}
				}
				r.resume, r.resumeLen = rf, total
			}
			if r.onCommand != nil {
				c := Command{Type: typ, Offset: off, Version: r.version, CRC: binary.LittleEndian.Uint32(cmd[6:]), Payload: cmd[CmdHeaderLen:]}
				if err := r.onCommand(r.cur, &c); err != nil {
					return err
				}
			}
			r.rel += total
			if r.state == stateFirst {
				r.firstLen = total
				if r.resumed {
					r.state = stateResume
					continue
				}
			}
			r.state = stateCommands
			if typ == CmdEnd {
				r.state = stateEnded
				r.need = 0
				return nil
			}
		default:
			return nil
		}
	}
}

// Read reads the stream's raw bytes exactly as they came, from its header
// through its END command, each command only after its CRC matched. It
// returns io.EOF after END.
func (s *Stream) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		s.n += int64(n)
		return n, nil
	}
	if err := s.fill(); err != nil {
		return 0, err
	}
	r := s.r
	n := copy(p, r.buf[r.start:r.rel])
	r.spareBusy = false
	r.start += n
	s.n += int64(n)
	return n, nil
}

// fill makes verified bytes available, or returns io.EOF after END.
func (s *Stream) fill() error {
	if s.done {
		return io.EOF
	}
	r := s.r
	for r.start == r.rel {
		if r.state == stateEnded {
			s.done = true
			return io.EOF
		}
		if r.err != nil {
			return r.err
		}
		if err := r.more(); err != nil {
			r.fail(err)
			if r.start < r.rel {
				break // hand out what was verified first; the error is sticky
			}
			return err
		}
	}
	return nil
}

// WriteTo writes the rest of the stream to w straight from the reader's
// buffer, without another copy. With a Reader from NewReaderSize, the
// bytes of each Write stay unchanged until the next Write begins, or until
// the Reader is used again after WriteTo returns: w may go on using them
// after Write returned, in the background, and must be done with them by
// then. With one from NewReader, they are valid during the Write only.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(s.head) > 0 {
		n, err := w.Write(s.head)
		s.head = s.head[n:]
		s.n += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	r := s.r
	for {
		if err := s.fill(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		n, err := w.Write(r.buf[r.start:r.rel])
		// Only these bytes may still be in use: the other buffer is free.
		r.spareBusy = false
		r.start += n
		s.n += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// Size is the number of bytes read so far: the stream's size once Read
// returned io.EOF.
func (s *Stream) Size() int64 { return s.n }

// RewritePath replaces the PATH of the stream's first command with p,
// recomputing that command's CRC; every other byte stays as it is. It is
// how a stream carries a nested relative path ("home/2024-01-01") that
// btrfs send cannot put there. Call it before reading.
func (s *Stream) RewritePath(p string) error {
	if s.n > 0 {
		return errors.New("rewrite path: stream already read")
	}
	head, err := RewriteHead(s.head, p)
	if err != nil {
		return err
	}
	s.head = head
	s.Subvol.Path = p
	return nil
}

// ReadHead reads exactly a stream header and the first command from src,
// reading no further, verifies them and returns their bytes and what the
// command says. It is for a caller that passes the rest of the stream on
// without looking at it (bssend splicing the kernel's output).
func ReadHead(src io.Reader) ([]byte, uint32, Head, error) {
	b := make([]byte, HeaderLen+CmdHeaderLen, HeaderLen+CmdHeaderLen+256)
	if _, err := io.ReadFull(src, b); err != nil {
		return nil, 0, Head{}, headReadError(err, 0)
	}
	n := binary.LittleEndian.Uint32(b[HeaderLen:])
	if n <= MaxCommand {
		b = append(b, make([]byte, n)...)
		if _, err := io.ReadFull(src, b[HeaderLen+CmdHeaderLen:]); err != nil {
			return nil, 0, Head{}, headReadError(err, HeaderLen)
		}
	}
	// Verify them with the reader's own logic, over b alone.
	r := &Reader{buf: b, end: len(b), state: stateHeader, srcErr: io.EOF}
	if err := r.advance(); err != nil {
		return nil, 0, Head{}, err
	}
	if r.resumed {
		return nil, 0, Head{}, &Error{Offset: 0, Reason: "a resumed stream, where a whole one belongs"}
	}
	if r.state != stateCommands && r.state != stateEnded {
		return nil, 0, Head{}, &Error{Offset: HeaderLen, Reason: "truncated first command"}
	}
	first := Command{Type: binary.LittleEndian.Uint16(b[HeaderLen+4:]), Offset: HeaderLen, Version: r.version, Payload: b[HeaderLen+CmdHeaderLen:]}
	h, err := parseHead(&first)
	if err != nil {
		return nil, 0, Head{}, &Error{Offset: HeaderLen, Reason: err.Error()}
	}
	return b, r.version, h, nil
}

func headReadError(err error, off int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &Error{Offset: off, Reason: "truncated stream header or first command", Err: err}
	}
	return &Error{Offset: off, Reason: "read: " + err.Error(), Err: err}
}

// RewriteHead returns head (a stream header and first command, as
// ReadHead returns them, or a resumed stream's header, first and RESUME
// commands) with the first command's PATH set to p and its
// CRC recomputed.
func RewriteHead(head []byte, p string) ([]byte, error) {
	if p == "" || len(p) > 0xffff {
		return nil, fmt.Errorf("rewrite path: invalid path length %d", len(p))
	}
	if len(head) < HeaderLen+CmdHeaderLen {
		return nil, errors.New("rewrite path: no first command")
	}
	version := binary.LittleEndian.Uint32(head[len(Magic):]) &^ ResumeFlag
	end := HeaderLen + CmdHeaderLen + int(binary.LittleEndian.Uint32(head[HeaderLen:]))
	if end > len(head) {
		return nil, errors.New("rewrite path: truncated first command")
	}
	// A resumed stream's RESUME command follows, unchanged.
	rest := head[end:]
	first := Command{Type: binary.LittleEndian.Uint16(head[HeaderLen+4:]), Version: version,
		Payload: head[HeaderLen+CmdHeaderLen : end]}
	var attrs []Attr
	err := first.Attrs(func(t uint16, v []byte) error {
		if t == AttrPath {
			v = []byte(p)
		}
		attrs = append(attrs, Attr{Type: t, Value: v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := append(make([]byte, 0, len(head)+len(p)), head[:HeaderLen]...)
	out = AppendCommand(out, version, first.Type, attrs...)
	return append(out, rest...), nil
}

func parseHead(c *Command) (Head, error) {
	h := Head{Snapshot: c.Type == CmdSnapshot}
	var seen [AttrCloneCTransID + 1]bool
	err := c.Attrs(func(t uint16, v []byte) error {
		want := 0
		switch t {
		case AttrPath:
			h.Path = string(v)
		case AttrUUID, AttrCloneUUID:
			want = 16
		case AttrCTransID, AttrCloneCTransID:
			want = 8
		default:
			return nil
		}
		if want != 0 && len(v) != want {
			return fmt.Errorf("%s: attribute %d has %d bytes, want %d", CmdName(c.Type), t, len(v), want)
		}
		// A receiver's hook reading the first of two (Command.Attr)
		// would see another subvolume than this head.
		if seen[t] {
			return fmt.Errorf("%s: attribute %d twice", CmdName(c.Type), t)
		}
		switch t {
		case AttrUUID:
			copy(h.UUID[:], v)
		case AttrCloneUUID:
			copy(h.CloneUUID[:], v)
		case AttrCTransID:
			h.CTransID = binary.LittleEndian.Uint64(v)
		case AttrCloneCTransID:
			h.CloneCTransID = binary.LittleEndian.Uint64(v)
		}
		seen[t] = true
		return nil
	})
	if err != nil {
		return h, err
	}
	need := []struct {
		t    uint16
		name string
	}{{AttrPath, "PATH"}, {AttrUUID, "UUID"}, {AttrCTransID, "CTRANSID"}}
	if h.Snapshot {
		need = append(need, struct {
			t    uint16
			name string
		}{AttrCloneUUID, "CLONE_UUID"}, struct {
			t    uint16
			name string
		}{AttrCloneCTransID, "CLONE_CTRANSID"})
	}
	for _, a := range need {
		if !seen[a.t] {
			return h, fmt.Errorf("%s command without %s", CmdName(c.Type), a.name)
		}
	}
	if h.Path == "" {
		return h, fmt.Errorf("%s command with an empty PATH", CmdName(c.Type))
	}
	return h, nil
}

// Walk reads the concatenated streams of src and calls fn for every
// command after its CRC matched, the first command of each stream
// included (s.Subvol is filled in only once Next returned, so use the
// command itself there). It returns nil at a clean end.
func Walk(src io.Reader, fn func(s *Stream, c *Command) error) error {
	r := NewReader(src)
	r.onCommand = fn
	for {
		s, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, s); err != nil {
			return err
		}
	}
}

// Attr is one attribute for AppendCommand.
type Attr struct {
	Type  uint16
	Value []byte
}

// AppendHeader appends a stream header of the given version to b.
func AppendHeader(b []byte, version uint32) []byte {
	b = append(b, Magic...)
	return binary.LittleEndian.AppendUint32(b, version)
}

// AppendCommand appends a command with its CRC to b. From version 2 on a
// DATA attribute is written without length and must come last.
func AppendCommand(b []byte, version uint32, typ uint16, attrs ...Attr) []byte {
	at := len(b)
	b = append(b, make([]byte, CmdHeaderLen)...)
	for _, a := range attrs {
		b = binary.LittleEndian.AppendUint16(b, a.Type)
		if !(a.Type == AttrData && version >= 2) {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(a.Value)))
		}
		b = append(b, a.Value...)
	}
	cmd := b[at:]
	binary.LittleEndian.PutUint32(cmd, uint32(len(cmd)-CmdHeaderLen))
	binary.LittleEndian.PutUint16(cmd[4:], typ)
	binary.LittleEndian.PutUint32(cmd[6:], commandCRC(cmd))
	return b
}

// ResumeFrom is what a resumed stream's RESUME command says: the bytes
// after it belong at Offset in the original stream, counted from the end
// of its first command, and Digest is the original stream's resume digest
// at that offset (lib/resume computes and checks it).
type ResumeFrom struct {
	Offset int64
	Digest [32]byte
}

func parseResume(payload []byte) (ResumeFrom, error) {
	c := Command{Type: CmdResume, Version: 1, Payload: payload}
	var rf ResumeFrom
	var haveOff, haveDigest bool
	err := c.Attrs(func(t uint16, v []byte) error {
		switch t {
		case AttrFileOffset:
			if len(v) != 8 || haveOff {
				return errors.New("RESUME: bad or repeated FILE_OFFSET")
			}
			off := binary.LittleEndian.Uint64(v)
			if off > 1<<62 {
				return fmt.Errorf("RESUME: offset %d out of range", off)
			}
			rf.Offset, haveOff = int64(off), true
		case AttrResumeDigest:
			if len(v) != 32 || haveDigest {
				return errors.New("RESUME: bad or repeated digest")
			}
			copy(rf.Digest[:], v)
			haveDigest = true
		default:
			return fmt.Errorf("RESUME: unknown attribute %d", t)
		}
		return nil
	})
	if err == nil && !(haveOff && haveDigest) {
		err = errors.New("RESUME command without FILE_OFFSET or digest")
	}
	return rf, err
}

// AppendResumed appends to b the start of a resumed stream: head (a
// stream header and first command, as ReadHead returns them) with
// ResumeFlag set in its version, then the RESUME command for rf. The
// original stream's bytes from rf.Offset on (after its first command)
// complete it.
func AppendResumed(b, head []byte, rf ResumeFrom) ([]byte, error) {
	if len(head) < HeaderLen+CmdHeaderLen || string(head[:len(Magic)]) != Magic {
		return nil, errors.New("resumed stream: no stream header and first command")
	}
	version := binary.LittleEndian.Uint32(head[len(Magic):])
	if version&ResumeFlag != 0 || HeaderLen+CmdHeaderLen+int(binary.LittleEndian.Uint32(head[HeaderLen:])) != len(head) {
		return nil, errors.New("resumed stream: head is not one header and first command")
	}
	b = AppendHeader(b, version|ResumeFlag)
	b = append(b, head[HeaderLen:]...)
	return AppendCommand(b, version, CmdResume,
		Attr{Type: AttrFileOffset, Value: binary.LittleEndian.AppendUint64(nil, uint64(rf.Offset))},
		Attr{Type: AttrResumeDigest, Value: rf.Digest[:]}), nil
}
