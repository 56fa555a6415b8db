package extent

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// unlzo decodes btrfs's LZO framing: a le32 total length (itself
// included), then segments of a le32 length and LZO1X data that decodes
// to at most one sector. A segment header never straddles a sector of
// the compressed input: with fewer than 4 bytes left before the boundary,
// the next header starts at it.
func unlzo(dst, src []byte, sector int) error {
	if len(src) < 4 {
		return errors.New("extent: lzo: truncated header")
	}
	total := binary.LittleEndian.Uint32(src)
	if total < 4 || uint64(total) > uint64(len(src)) {
		return fmt.Errorf("extent: lzo: total length %d outside the %d bytes of data", total, len(src))
	}
	src = src[:total]
	pos, out := 4, 0
	for pos < len(src) {
		if left := sector - pos%sector; left < 4 {
			pos += left
			continue
		}
		if len(src)-pos < 4 {
			return errors.New("extent: lzo: truncated segment header")
		}
		n := binary.LittleEndian.Uint32(src[pos:])
		pos += 4
		if uint64(n) > uint64(len(src)-pos) {
			return fmt.Errorf("extent: lzo: segment length %d beyond the data", n)
		}
		end := min(out+sector, len(dst))
		m, err := lzo1x(dst[out:end], src[pos:pos+int(n)])
		if err != nil {
			return fmt.Errorf("extent: lzo: segment at %d: %w", pos-4, err)
		}
		pos += int(n)
		out += m
	}
	return nil
}

var (
	errTruncated = errors.New("truncated input")
	errOverrun   = errors.New("output longer than its sector or the unencoded length")
	errTrailing  = errors.New("data after the end marker")
)

// lzo1x decodes one LZO1X block into out and returns its length. Every
// instruction consumes input and (but the end marker) produces output, so
// time is linear in len(in)+len(out).
//
// The format: the first byte, if above 17, is a run of byte-17 literals.
// Then each instruction is a match of earlier output, optionally followed
// by 0..3 literals (its low two bits, the "state"), or, when the previous
// instruction copied no literals, a literal run. An opcode below 16 means
// a run (state 0), a 2-byte match within 1 KiB (state 1..3) or a 3-byte
// match 2..3 KiB back (after a run, state 4); 16..31 a match 16..48 KiB
// back (distance exactly 16 KiB: the end); 32..63 within 16 KiB; 64..255
// a 3..8-byte match within 2 KiB.
func lzo1x(out, in []byte) (int, error) {
	ip, op := 0, 0
	state := 0
	if len(in) > 0 && in[0] > 17 {
		t := int(in[0]) - 17
		ip = 1
		if t > len(in)-ip {
			return 0, errTruncated
		}
		if t > len(out) {
			return 0, errOverrun
		}
		copy(out, in[ip:ip+t])
		ip += t
		op = t
		state = min(t, 4)
	}
	for {
		if ip >= len(in) {
			return 0, errTruncated
		}
		inst := int(in[ip])
		ip++
		var length, dist int
		switch {
		case inst >= 64:
			// 010LDDSS or 1LLDDDSS, then HHHHHHHH.
			if ip >= len(in) {
				return 0, errTruncated
			}
			length = inst>>5 + 1
			dist = int(in[ip])<<3 + inst>>2&7 + 1
			ip++
		case inst >= 32:
			// 001LLLLL, [length bytes], then le16 DDDDDDDD DDDDDDSS.
			length = inst & 31
			if length == 0 {
				n, next, err := runLength(in, ip)
				if err != nil {
					return 0, err
				}
				length, ip = 31+n, next
			}
			length += 2
			if len(in)-ip < 2 {
				return 0, errTruncated
			}
			v := int(in[ip]) | int(in[ip+1])<<8
			ip += 2
			dist = v>>2 + 1
			inst = v
		case inst >= 16:
			// 0001HLLL, [length bytes], then le16 as above.
			length = inst & 7
			if length == 0 {
				n, next, err := runLength(in, ip)
				if err != nil {
					return 0, err
				}
				length, ip = 7+n, next
			}
			length += 2
			if len(in)-ip < 2 {
				return 0, errTruncated
			}
			v := int(in[ip]) | int(in[ip+1])<<8
			ip += 2
			dist = 16384 + (inst&8)<<11 + v>>2
			if dist == 16384 {
				if ip != len(in) {
					return 0, errTrailing
				}
				// The word-sized copies below may have written up to
				// 7 bytes past the output.
				clear(out[op:min(op+8, len(out))])
				return op, nil
			}
			inst = v
		case state == 0:
			// 0000LLLL, [length bytes]: a run of literals.
			length = inst
			if length == 0 {
				n, next, err := runLength(in, ip)
				if err != nil {
					return 0, err
				}
				length, ip = 15+n, next
			}
			length += 3
			if length > len(in)-ip {
				return 0, errTruncated
			}
			if length > len(out)-op {
				return 0, errOverrun
			}
			copy(out[op:], in[ip:ip+length])
			ip += length
			op += length
			state = 4
			continue
		default:
			// 0000DDSS then HHHHHHHH.
			if ip >= len(in) {
				return 0, errTruncated
			}
			dist = int(in[ip])<<2 + inst>>2 + 1
			ip++
			length = 2
			if state == 4 {
				dist += 2048
				length = 3
			}
		}
		if dist > op {
			return 0, fmt.Errorf("match distance %d before the start at %d", dist, op)
		}
		if length > len(out)-op {
			return 0, errOverrun
		}
		from := op - dist
		switch {
		case dist >= 8 && length <= 8 && len(out)-op >= 8:
			// Most matches are short: one word, whatever their length.
			binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[from:]))
			op += length
		case dist >= length:
			copy(out[op:op+length], out[from:op])
			op += length
		default:
			// An overlapping match repeats the dist bytes before op;
			// copying what is already repeated doubles each step.
			end := op + length
			for op < end {
				op += copy(out[op:end], out[from:op])
			}
		}
		state = inst & 3
		if state > 0 {
			if state > len(in)-ip {
				return 0, errTruncated
			}
			if state > len(out)-op {
				return 0, errOverrun
			}
			if len(in)-ip >= 4 && len(out)-op >= 4 {
				binary.LittleEndian.PutUint32(out[op:], binary.LittleEndian.Uint32(in[ip:]))
			} else {
				copy(out[op:], in[ip:ip+state])
			}
			ip += state
			op += state
		}
	}
}

// runLength reads the extension of a length field that was zero: each
// zero byte adds 255, the first non-zero byte ends it. It returns the sum
// and the position after it.
func runLength(in []byte, ip int) (int, int, error) {
	n := 0
	for ip < len(in) && in[ip] == 0 {
		n += 255
		ip++
	}
	if ip >= len(in) {
		return 0, 0, errTruncated
	}
	return n + int(in[ip]), ip + 1, nil
}
