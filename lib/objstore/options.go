package objstore

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/buttersink/buttersink/lib/objstore/objopts"
)

// Options configure access to an S3 store (lib/objstore/objopts, where a
// command can take them without linking the stores).
type Options = objopts.Options

// Flags are the command-line flags for reaching S3 (lib/objstore/objopts).
type Flags = objopts.Flags

// ByteSize is a flag value in bytes, written as a number with an optional
// unit: 16777216, 16M, 16MiB, 1G (units are powers of 1024).
type ByteSize int64

// UnmarshalText parses a size (kong and encoding use it).
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// ParseByteSize reads a size with an optional K, M, G or T unit (also
// KiB, MiB, ...; powers of 1024).
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	shift := 0
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "ib"), "b") {
	case "":
		if unit != "" && unit != "b" {
			return 0, fmt.Errorf("invalid size unit in %q", s)
		}
	case "k":
		shift = 10
	case "m":
		shift = 20
	case "g":
		shift = 30
	case "t":
		shift = 40
	default:
		return 0, fmt.Errorf("invalid size unit in %q", s)
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}
