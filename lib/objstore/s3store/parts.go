package s3store

import "fmt"

// S3's multipart limits.
const (
	MaxParts    = 10000
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
)

// The automatic part schedule: 8 MiB parts, doubling every 1,000 parts,
// capped at 5 GiB. It is a pure function of the part number, so a resumed
// upload cuts a stream at the same offsets as the interrupted one, and it
// lets 10,000 parts reach about 8 TiB (> S3's 5 TiB object limit) while
// small streams keep small parts: memory is concurrency × part size, and
// fresh memory is not free (every page is a fault on first touch).
const (
	autoFirstPart   = 8 << 20
	autoDoubleEvery = 1000
	autoScheme      = "auto-8MiB-x2per1000"
)

// PartSize is the size of part n (1-based) under a scheme: fixed > 0 for
// --part-size, 0 for the automatic schedule.
func PartSize(fixed int64, n int) int64 {
	if fixed > 0 {
		return fixed
	}
	size := int64(autoFirstPart) << ((n - 1) / autoDoubleEvery)
	if size > MaxPartSize || size <= 0 {
		return MaxPartSize
	}
	return size
}

// PartScheme names a scheme for the upload's metadata.
func PartScheme(fixed int64) string {
	if fixed > 0 {
		return fmt.Sprintf("fixed-%d", fixed)
	}
	return autoScheme
}

// CheckPartSize validates a --part-size.
func CheckPartSize(n int64) error {
	if n != 0 && (n < MinPartSize || n > MaxPartSize) {
		return fmt.Errorf("part size %d is outside S3's limits (5 MiB to 5 GiB)", n)
	}
	return nil
}

// MaxObjectSize is the most a scheme can store in 10,000 parts.
func MaxObjectSize(fixed int64) int64 {
	var total int64
	for n := 1; n <= MaxParts; n++ {
		total += PartSize(fixed, n)
	}
	return total
}
