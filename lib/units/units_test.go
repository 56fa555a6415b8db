package units

import "testing"

func TestBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{-5, "-5 B"}, {0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1<<20 - 1, "1024.0 KiB"}, {10 << 20, "10.0 MiB"}, {3 << 30, "3.0 GiB"}, {3<<30 + 1<<29, "3.5 GiB"},
		{5 << 40, "5.0 TiB"}, {7 << 50, "7.0 PiB"}, {1 << 62, "4.0 EiB"}, {1<<63 - 1, "8.0 EiB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.n); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
