package s3store

import "testing"

func TestPartSchedule(t *testing.T) {
	tests := []struct {
		fixed int64
		n     int
		want  int64
	}{
		{0, 1, 8 << 20},
		{0, 1000, 8 << 20},
		{0, 1001, 16 << 20},
		{0, 2001, 32 << 20},
		{0, 8001, 2 << 30},
		{0, 9001, 4 << 30},
		{0, 10000, 4 << 30},
		{8 << 20, 1, 8 << 20},
		{8 << 20, 9999, 8 << 20},
	}
	for _, tc := range tests {
		if got := PartSize(tc.fixed, tc.n); got != tc.want {
			t.Errorf("PartSize(%d, %d) = %d, want %d", tc.fixed, tc.n, got, tc.want)
		}
	}
	if max := MaxObjectSize(0); max < 5<<40 {
		t.Errorf("automatic schedule reaches only %d bytes in 10,000 parts, want > 5 TiB", max)
	}
	for n := 1; n <= MaxParts; n++ {
		if s := PartSize(0, n); s < MinPartSize || s > MaxPartSize || s < PartSize(0, max(n-1, 1)) {
			t.Fatalf("part %d size %d breaks S3 limits or shrinks", n, s)
		}
	}
}
