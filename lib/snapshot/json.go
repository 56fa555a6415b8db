package snapshot

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/buttersink/buttersink/lib/uuid"
)

// AppendJSON appends s as one JSON object, without a newline, and returns
// the extended buffer. The bytes are exactly those of encoding/json with
// HTML escaping off (what lib/jsonl writes), field for field, but without
// reflection or allocations: bsls prints thousands of records per run.
// A time that encoding/json refuses (a year outside 0-9999, a zone offset
// of a day or more) gives encoding/json's own error.
func (s *Snapshot) AppendJSON(b []byte) ([]byte, error) {
	if !jsonTime(s.CTime) || !jsonTime(s.OTime) {
		if _, err := json.Marshal(s); err != nil {
			return b, err
		}
	}
	b = append(b, `{"kind":`...)
	b = appendString(b, s.Kind)
	b = append(b, `,"path":`...)
	b = appendString(b, s.Path)
	if s.ID != 0 {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, s.ID, 10)
	}
	b = append(b, `,"uuid":`...)
	b = appendUUID(b, s.UUID)
	b = append(b, `,"parent_uuid":`...)
	b = appendUUID(b, s.ParentUUID)
	b = append(b, `,"received_uuid":`...)
	b = appendUUID(b, s.ReceivedUUID)
	b = append(b, `,"ctransid":`...)
	b = strconv.AppendUint(b, s.CTransID, 10)
	b = append(b, `,"otransid":`...)
	b = strconv.AppendUint(b, s.OTransID, 10)
	b = append(b, `,"stransid":`...)
	b = strconv.AppendUint(b, s.STransID, 10)
	b = append(b, `,"rtransid":`...)
	b = strconv.AppendUint(b, s.RTransID, 10)
	if !s.CTime.IsZero() {
		b = append(b, `,"ctime":"`...)
		b = s.CTime.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if !s.OTime.IsZero() {
		b = append(b, `,"otime":"`...)
		b = s.OTime.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"readonly":`...)
	b = strconv.AppendBool(b, s.ReadOnly)
	b = append(b, `,"referenced":`...)
	b = appendUintPtr(b, s.Referenced)
	b = append(b, `,"exclusive":`...)
	b = appendUintPtr(b, s.Exclusive)
	if s.Partial {
		b = append(b, `,"partial":true`...)
	}
	b = appendOmitString(b, `,"key":`, s.Key)
	if !s.SendParentUUID.IsZero() {
		b = append(b, `,"send_parent_uuid":`...)
		b = appendUUID(b, s.SendParentUUID)
	}
	b = appendOmitInt(b, `,"size":`, s.Size)
	b = appendOmitString(b, `,"encoding":`, s.Encoding)
	b = appendOmitInt(b, `,"stream_size":`, s.StreamSize)
	b = appendOmitString(b, `,"format":`, s.Format)
	return append(b, '}'), nil
}

// appendOmitString appends a string field (name holds its comma, key and
// colon) unless it is empty: omitempty.
func appendOmitString(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, name...), s)
}

// appendOmitInt appends a number field unless n is nil: omitempty.
func appendOmitInt(b []byte, name string, n *int64) []byte {
	if n == nil {
		return b
	}
	return strconv.AppendInt(append(b, name...), *n, 10)
}

// jsonTime reports whether time.Time.MarshalJSON accepts t: RFC 3339
// allows only four-digit years and zone offsets below 24 hours. Zero
// times are omitted, so always fine.
func jsonTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*60*60 && off < 24*60*60
}

func appendUintPtr(b []byte, n *uint64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendUint(b, *n, 10)
}

const hexDigits = "0123456789abcdef"

// appendUUID writes null for the zero UUID, else the quoted canonical
// form (uuid.UUID.MarshalJSON).
func appendUUID(b []byte, u uuid.UUID) []byte {
	if u.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	return append(u.AppendCanonical(b), '"')
}

// appendString quotes s as encoding/json does without HTML escaping:
// '"' and '\\' and control characters escaped (\b \f \n \r \t short,
// others as \u00XX), invalid UTF-8 bytes replaced by \ufffd, and U+2028
// and U+2029 escaped for JavaScript's sake.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
