// Package units writes byte counts for people, in binary units (KiB =
// 1024 bytes): Bytes is the one way sizes are written, in messages,
// progress lines and tables alike.
package units

import "strconv"

const prefixes = "KMGTPE"

// scale returns n in the biggest binary unit it reaches: the value and
// the unit's prefix index into prefixes, -1 for plain bytes.
func scale(n uint64) (float64, int) {
	if n < 1024 {
		return float64(n), -1
	}
	v, u := float64(n), -1
	for v >= 1024 && u < len(prefixes)-1 {
		v /= 1024
		u++
	}
	return v, u
}

// Bytes writes n with one decimal and a space before the unit: "512 B",
// "1.5 KiB", "12.0 GiB". A negative n is written in bytes.
func Bytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, u := scale(uint64(n))
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + prefixes[u:u+1] + "iB"
}
