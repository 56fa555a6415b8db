package progress

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/units"
)

// Role is a stage's place in a pipeline; the merged line takes the plan's
// size and count from a source and how far the data got from a sink.
type Role uint8

// The roles.
const (
	RolePlan   Role = 1 // bsplan, measuring
	RoleSource Role = 2 // bssend, bss3get: knows the plan's count and sizes
	RoleSink   Role = 3 // bsrecv, bss3put: where the bytes land
)

// State is what one stage publishes: its counters at one moment.
type State struct {
	Role   Role
	Ended  bool   // the stage has closed its meter
	Name   string // the command
	Label  string // the current stream
	N, Of  int    // stream N of Of (0: none yet, unknown)
	Cur    int64  // bytes of the current stream
	Size   int64  // expected size of the current stream (0: unknown)
	Done   int64  // bytes of the run so far, the current stream included
	Total  int64  // expected bytes of the run (0: unknown)
	Start  int64  // the run's first byte, Unix nanoseconds
	Stream int64  // the current stream's start, Unix nanoseconds
}

// A slot is one stage's State in the shared file: fixed size, so that a
// stage rewrites its own in one pwrite; the checksum makes a torn or
// forged slot unreadable rather than wrong.
const (
	slotSize  = 256
	slotMagic = "BSP1"
	nameCap   = 16
	labelCap  = slotSize - 84 - 4
)

// encode writes s into b (slotSize bytes).
func (s *State) encode(b []byte) {
	clear(b[:slotSize])
	copy(b, slotMagic)
	b[4] = byte(s.Role)
	if s.Ended {
		b[5] = 1
	}
	name, label := clip(s.Name, nameCap), clip(s.Label, labelCap)
	b[6], b[7] = byte(len(name)), byte(len(label))
	le := binary.LittleEndian
	le.PutUint32(b[8:], uint32(s.N))
	le.PutUint32(b[12:], uint32(s.Of))
	for i, v := range []int64{s.Cur, s.Size, s.Done, s.Total, s.Start, s.Stream} {
		le.PutUint64(b[16+8*i:], uint64(v))
	}
	copy(b[64:64+nameCap], name)
	copy(b[84:84+labelCap], label)
	le.PutUint32(b[slotSize-4:], crc32.ChecksumIEEE(b[:slotSize-4]))
}

// decodeState reads a slot written by encode; ok is false for an empty,
// torn or malformed one. Another stage of the same user wrote it, yet a
// slot is read as untrusted bytes: every field is checked and the text is
// escaped where it is drawn.
func decodeState(b []byte) (s State, ok bool) {
	if len(b) < slotSize || string(b[:4]) != slotMagic {
		return State{}, false
	}
	le := binary.LittleEndian
	if crc32.ChecksumIEEE(b[:slotSize-4]) != le.Uint32(b[slotSize-4:]) {
		return State{}, false
	}
	s.Role = Role(b[4])
	if s.Role < RolePlan || s.Role > RoleSink || b[5] > 1 || int(b[6]) > nameCap || int(b[7]) > labelCap {
		return State{}, false
	}
	s.Ended = b[5] == 1
	n, of := le.Uint32(b[8:]), le.Uint32(b[12:])
	if n > 1<<30 || of > 1<<30 {
		return State{}, false
	}
	s.N, s.Of = int(n), int(of)
	v := make([]int64, 6)
	for i := range v {
		v[i] = int64(le.Uint64(b[16+8*i:]))
		if v[i] < 0 {
			return State{}, false
		}
	}
	s.Cur, s.Size, s.Done, s.Total, s.Start, s.Stream = v[0], v[1], v[2], v[3], v[4], v[5]
	s.Name = string(b[64 : 64+int(b[6])])
	s.Label = string(b[84 : 84+int(b[7])])
	return s, true
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Merge makes the one view of a pipeline from its stages' states (live or
// ended; ok false: nothing to show). The newest source gives the count
// and sizes; the slowest of it and the newest sink says how far the run
// got, since the bytes between them sit in a pipe or an upload buffer.
// A plan still measuring, with no stream begun, is shown as such.
func Merge(states []State) (v State, ok bool) {
	var plan, src, sink *State
	newest := func(p **State, s *State) {
		if *p == nil || s.Start > (*p).Start || s.Start == (*p).Start && !s.Ended {
			*p = s
		}
	}
	for i := range states {
		s := &states[i]
		switch s.Role {
		case RolePlan:
			if !s.Ended {
				plan = s
			}
		case RoleSource:
			newest(&src, s)
		case RoleSink:
			if !s.Ended || src == nil {
				newest(&sink, s)
			}
		}
	}
	switch {
	case src != nil && src.N > 0:
		v = *src
		if sink != nil && sink.N > 0 && sink.Done < v.Done {
			// The sink lags: the current stream is where it is.
			v.Cur = max(v.Cur-(v.Done-sink.Done), 0)
			v.Done = sink.Done
		}
		return v, true
	case sink != nil && sink.N > 0:
		return *sink, true
	case plan != nil:
		return *plan, true
	}
	return State{}, false
}

// Render formats a view in at most width columns (0: no limit): what
// matters most survives a narrow terminal, in this order: the stream
// number and bytes, then the stream's size and share, the run's total,
// the time left and the rate; the label is shortened from its start
// (the snapshot's name is at its end).
func Render(name string, v State, now time.Time, width int) string {
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	if v.Role == RolePlan {
		return fit(prefix+fmt.Sprintf("measuring %d/%d snapshots", v.N, v.Of), width)
	}
	elapsed := time.Duration(0)
	if v.Start > 0 {
		elapsed = now.Sub(time.Unix(0, v.Start))
	}
	rate := Rate(v.Done, elapsed)
	eta := func(left int64) string {
		if rate <= 0 || left <= 0 {
			return ""
		}
		return "ETA " + Duration(time.Duration(float64(left)/rate*float64(time.Second)))
	}
	count := ""
	switch {
	case v.Of > 0:
		count = fmt.Sprintf("%d/%d", v.N, v.Of)
	case v.N > 0:
		count = fmt.Sprintf("#%d", v.N)
	}
	size := ""
	if v.Size > 0 {
		size = fmt.Sprintf("of %s (%d%%)", units.Bytes(v.Size), min(100*v.Cur/v.Size, 100))
	}
	streamETA := ""
	if v.Size > 0 {
		streamETA = eta(v.Size - v.Cur)
	}
	total := ""
	if v.Total > 0 && v.Of > 1 {
		total = fmt.Sprintf("total %s of %s (%d%%)", units.Bytes(v.Done), units.Bytes(v.Total), min(100*v.Done/v.Total, 100))
		if e := eta(v.Total - v.Done); e != "" {
			total += " " + e
		}
	}
	rateS := ""
	if rate > 0 {
		rateS = units.Bytes(int64(rate)) + "/s"
	}
	// Fields in display order, each with the rank at which it is dropped
	// (higher goes first).
	type field struct {
		s    string
		drop int
	}
	fields := []field{{count, 0}, {"", 0}, {units.Bytes(v.Cur), 0}, {size, 2}, {rateS, 5}, {streamETA, 4}}
	if total != "" {
		fields = append(fields, field{"·", 3}, field{total, 3})
	}
	label := hint.OneLine(v.Label)
	join := func(label string, drop int) string {
		var parts []string
		for i, f := range fields {
			s := f.s
			if i == 1 {
				s = label
			}
			if s != "" && f.drop < drop {
				parts = append(parts, s)
			}
		}
		return prefix + strings.Join(parts, " ")
	}
	if width <= 0 {
		return join(label, 99)
	}
	limit := width - 1 // the last column would wrap on some terminals
	for drop := 6; drop > 0; drop-- {
		if line := join(label, drop); utf8.RuneCountInString(line) <= limit {
			return line
		}
	}
	// Even the essentials are too wide: shorten the label.
	over := utf8.RuneCountInString(join(label, 1)) - limit
	if r := []rune(label); over+1 < len(r) {
		return join("…"+string(r[over+1:]), 1)
	}
	return fit(join("", 1), width)
}

// fit cuts a line to width-1 runes.
func fit(s string, width int) string {
	if width <= 0 {
		return s
	}
	r := []rune(s)
	if len(r) > width-1 {
		r = r[:max(width-1, 0)]
	}
	return string(r)
}
