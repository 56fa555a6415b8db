// Package uuid is the 16-byte identifier btrfs gives subvolumes, written as
// the canonical lowercase string and as JSON null when unset (all zero).
package uuid

import (
	"encoding/hex"
	"fmt"
)

// UUID is a btrfs subvolume UUID. The zero value means "unset".
type UUID [16]byte

// Zero is the unset UUID.
var Zero UUID

// IsZero reports whether u is unset.
func (u UUID) IsZero() bool { return u == Zero }

// String returns the canonical 36-character form, or "" when unset.
func (u UUID) String() string {
	if u.IsZero() {
		return ""
	}
	return u.Canonical()
}

// Canonical returns the 36-character form even for the zero UUID.
func (u UUID) Canonical() string {
	var b [36]byte
	return string(u.AppendCanonical(b[:0]))
}

// AppendCanonical appends the 36-character form, even for the zero UUID.
func (u UUID) AppendCanonical(b []byte) []byte {
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

const hexDigits = "0123456789abcdef"

// Parse reads the canonical form (case-insensitive). The all-zero UUID
// parses to Zero.
func Parse(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("invalid uuid %q", s)
	}
	hexs := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(hexs)); err != nil {
		return UUID{}, fmt.Errorf("invalid uuid %q", s)
	}
	return u, nil
}

// MarshalJSON writes null for the zero UUID.
func (u UUID) MarshalJSON() ([]byte, error) {
	if u.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + u.Canonical() + `"`), nil
}

// UnmarshalJSON accepts null or the canonical string.
func (u *UUID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*u = Zero
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("invalid uuid %s", b)
	}
	v, err := Parse(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	*u = v
	return nil
}
