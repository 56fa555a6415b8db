package snapshot

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buttersink/buttersink/lib/uuid"
)

// Paths that are not UTF-8. A Linux file name is any bytes but NUL and
// '/', and JSON strings are Unicode: encoding/json writes each byte that
// is not UTF-8 as U+FFFD, so "b\xff\xfe" would come back as "b\ufffd\ufffd",
// a name that does not exist. A record whose path is not valid UTF-8
// therefore also carries "path_b64", the path's exact bytes in base64
// (RFC 4648, standard alphabet, padded), after every other field; "path"
// keeps the lossy form for people reading it. Decoding takes the path
// from path_b64, and refuses one that is not base64, that decodes to
// valid UTF-8 (the encoder never writes one), or that does not match
// "path" (so a record cannot show one name and act on another).

// plain is Snapshot without its JSON methods: what encoding/json makes of
// the fields.
type plain Snapshot

// wire is the record on the wire: the fields, then path_b64.
type wire struct {
	*plain
	PathB64 string `json:"path_b64,omitempty"`
}

// MarshalJSON writes the record as AppendJSON does.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(make([]byte, 0, 512))
}

// UnmarshalJSON reads a record, its path from path_b64 when present.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	w := wire{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.PathB64 == "" {
		return nil
	}
	p, err := base64.StdEncoding.Strict().DecodeString(w.PathB64)
	switch {
	case err != nil || base64.StdEncoding.EncodeToString(p) != w.PathB64:
		return fmt.Errorf("path_b64 %q: not base64", w.PathB64)
	case utf8.Valid(p):
		return fmt.Errorf("path_b64 %q: a UTF-8 path, which belongs in path", w.PathB64)
	case LossyPath(string(p)) != s.Path:
		return fmt.Errorf("path_b64 %q does not match path %q", w.PathB64, s.Path)
	}
	s.Path = string(p)
	return nil
}

// LossyPath is what "path" holds for p once decoded: each byte that is
// not part of valid UTF-8 replaced by U+FFFD.
func LossyPath(p string) string {
	if utf8.ValidString(p) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(p[i : i+size])
		}
		i += size
	}
	return b.String()
}

// AppendJSON appends s as one JSON object, without a newline, and returns
// the extended buffer. The bytes are exactly those of encoding/json with
// HTML escaping off (what lib/jsonl writes) for the wire struct, field
// for field, but without reflection or allocations: bsls prints
// thousands of records per run. A time that encoding/json refuses (a
// year outside 0-9999, a zone offset of a day or more) gives
// encoding/json's own error.
func (s *Snapshot) AppendJSON(b []byte) ([]byte, error) {
	if !jsonTime(s.CTime) || !jsonTime(s.OTime) || !jsonTime(s.Stored) {
		if _, err := json.Marshal((*plain)(s)); err != nil {
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
	if r := s.Resume; r != nil {
		b = append(b, `,"resume":{"offset":`...)
		b = strconv.AppendInt(b, r.Offset, 10)
		b = append(b, `,"digest":"`...)
		b = hex.AppendEncode(b, r.Digest[:])
		b = append(b, `","uuid":`...)
		b = appendUUID(b, r.UUID)
		b = append(b, `,"ctransid":`...)
		b = strconv.AppendUint(b, r.CTransID, 10)
		if !r.ParentUUID.IsZero() {
			b = append(b, `,"parent_uuid":`...)
			b = appendUUID(b, r.ParentUUID)
		}
		if r.ParentCTransID != 0 {
			b = append(b, `,"parent_ctransid":`...)
			b = strconv.AppendUint(b, r.ParentCTransID, 10)
		}
		b = append(b, '}')
	}
	b = appendOmitString(b, `,"key":`, s.Key)
	if !s.SendParentUUID.IsZero() {
		b = append(b, `,"send_parent_uuid":`...)
		b = appendUUID(b, s.SendParentUUID)
	}
	b = appendOmitInt(b, `,"size":`, s.Size)
	b = appendOmitString(b, `,"encoding":`, s.Encoding)
	b = appendOmitInt(b, `,"stream_size":`, s.StreamSize)
	if !s.Stored.IsZero() {
		b = append(b, `,"stored":"`...)
		b = s.Stored.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = appendOmitString(b, `,"format":`, s.Format)
	if s.Filter != nil {
		f, err := json.Marshal(s.Filter)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"filter":`...)
		b = append(b, f...)
	}
	if !utf8.ValidString(s.Path) {
		b = append(b, `,"path_b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, []byte(s.Path))
		b = append(b, '"')
	}
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
