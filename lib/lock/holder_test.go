package lock

import (
	"strings"
	"testing"
	"unicode"
)

// A lock's holder record is written by whoever can write the destination
// (any writer of an S3 prefix): what of it reaches a message must not
// carry control characters (terminal escapes, a forged second line).
func TestHolderFromHostileRecord(t *testing.T) {
	for _, body := range []string{
		`{"owner":"bsrecv","pid":12,"host":"evil\u001b]0;owned\u0007","started":"2026-01-02T03:04:05Z"}`,
		`{"owner":"bsrecv","pid":12,"host":"a\nbsrecv: error: forged","started":"2026-01-02T03:04:05Z"}`,
		`{"owner":"bsrecv","pid":12,"host":"\u009b31m","started":"2026-01-02T03:04:05Z"}`,
		`{"owner":"bs\u001b[2Jrecv","pid":12,"host":"h","started":"2026-01-02T03:04:05Z"}`,
	} {
		h, known := parseHolder([]byte(body))
		msg := (&LockedError{Dest: "D/", Holder: h, Known: known}).Error()
		if strings.ContainsFunc(msg, unicode.IsControl) {
			t.Errorf("%s: message %q holds a control character", body, msg)
		}
		if known && (strings.ContainsFunc(h.Host, unicode.IsControl) || strings.ContainsFunc(h.Owner, unicode.IsControl)) {
			t.Errorf("%s: holder %+v taken as known", body, h)
		}
	}
	h, known := parseHolder([]byte(`{"owner":"bsrecv","pid":12,"host":"backup-1","started":"2026-01-02T03:04:05Z"}`))
	if !known || h.Host != "backup-1" {
		t.Errorf("a plain record: %+v %v", h, known)
	}
}
