package objstore

import (
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1234", 1234, true}, {"16M", 16 << 20, true}, {"16MiB", 16 << 20, true},
		{"16mb", 16 << 20, true}, {"5G", 5 << 30, true}, {"1k", 1024, true}, {"2T", 2 << 40, true},
		{"", 0, false}, {"M", 0, false}, {"-1", 0, false}, {"1x", 0, false}, {"1.5G", 0, false},
		{"99999999999T", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestMetaMap(t *testing.T) {
	m := Meta{Format: MetaFormat, StreamSize: 10, StreamSHA256: strings.Repeat("ab", 32), EncodedSize: 7, Encoding: "zstd", PartScheme: "auto-8MiB-x2per1000"}
	mm := m.Map()
	got := MetaFromMap(func(k string) (string, bool) { v, ok := mm[k]; return v, ok })
	if got != m || !got.Complete() {
		t.Errorf("meta round trip: got %+v want %+v", got, m)
	}
	mm[metaKeyStreamSize] = "-3"
	if got := MetaFromMap(func(k string) (string, bool) { v, ok := mm[k]; return v, ok }); got.Complete() {
		t.Errorf("negative size accepted as complete: %+v", got)
	}
	if got := MetaFromMap(func(string) (string, bool) { return "", false }); got.Complete() || got.Format != "" {
		t.Errorf("empty metadata: %+v", got)
	}
}

// TestRecordStored: a listing record carries the object's time stored, in
// UTC whatever zone the store gave it.
func TestRecordStored(t *testing.T) {
	key := "host1/home/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.full.ct7.bs1.zst"
	at := time.Date(2026, 12, 2, 14, 4, 5, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		modified time.Time
		want     time.Time
	}{
		{at, at.UTC()},
		{time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		rec, ok := Record(Object{Key: key, Size: 9, Modified: tt.modified})
		if !ok || !rec.Stored.Equal(tt.want) || rec.Stored.Location() != time.UTC || rec.Path != "host1/home" {
			t.Errorf("Record(modified %v): %+v, want stored %v", tt.modified, rec, tt.want)
		}
	}
}
