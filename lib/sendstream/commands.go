package sendstream

import (
	"encoding/binary"
	"errors"
	"io"
)

// Commands hands out the rest of the stream, after its first command, as
// commands instead of bytes: fn gets each command once verified, in
// order, through END, straight from the reader's buffer (its Payload is
// valid during the call only). A receiver applies them there: the
// OnCommand hook cannot, since it also sees the commands the reader
// verifies ahead, before the caller was ready for them. An error from fn
// stops Commands and is returned; a fault of the input is returned after
// fn had every command verified before it. Call it before reading.
//
// A resumed stream is refused: its commands belong after those its
// receiver already holds, never into a new subvolume. A receiver that
// resumes (the stream matches its resume record, lib/resume) takes them
// with ResumeCommands.
func (s *Stream) Commands(fn func(c *Command) error) error {
	if s.Resume != nil {
		return &Error{Offset: s.Offset, Reason: "a resumed stream (the rest of one received in part), where a whole one belongs"}
	}
	return s.commands(fn)
}

// ResumeCommands is Commands for a resumed stream: fn gets the commands
// after its RESUME command, which belong at s.Resume.Offset of the
// original stream.
func (s *Stream) ResumeCommands(fn func(c *Command) error) error {
	if s.Resume == nil {
		return errors.New("commands: not a resumed stream")
	}
	return s.commands(fn)
}

func (s *Stream) commands(fn func(c *Command) error) error {
	if s.n > 0 {
		return errors.New("commands: stream already read")
	}
	s.n += int64(len(s.head))
	s.head = nil
	r := s.r
	for {
		if err := s.fill(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		for r.start < r.rel {
			b := r.buf[r.start:r.rel]
			n := CmdHeaderLen + int(binary.LittleEndian.Uint32(b))
			c := Command{Type: binary.LittleEndian.Uint16(b[4:]), Offset: r.base + int64(r.start),
				Version: s.Version, CRC: binary.LittleEndian.Uint32(b[6:]), Payload: b[CmdHeaderLen:n]}
			if err := fn(&c); err != nil {
				return err
			}
			r.spareBusy = false
			r.start += n
			s.n += int64(n)
		}
	}
}
