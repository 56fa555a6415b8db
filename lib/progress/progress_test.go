package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0:00"}, {-time.Second, "0:00"}, {1499 * time.Millisecond, "0:01"}, {61 * time.Second, "1:01"},
		{3600 * time.Second, "1:00:00"}, {90061 * time.Second, "25:01:01"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestLine(t *testing.T) {
	tests := []struct {
		n, total int64
		elapsed  time.Duration
		want     string
	}{
		{0, 0, 0, "bssend: a/b 0 B"},
		{10 << 20, 0, time.Second, "bssend: a/b 10.0 MiB 10.0 MiB/s"},
		{10 << 20, 40 << 20, time.Second, "bssend: a/b 10.0 MiB of 40.0 MiB (25%) 10.0 MiB/s ETA 0:03"},
		// An estimate smaller than the truth: capped at 100%, no ETA.
		{50 << 20, 40 << 20, 2 * time.Second, "bssend: a/b 50.0 MiB of 40.0 MiB (100%) 25.0 MiB/s"},
		{1 << 20, 2 << 20, 50 * time.Millisecond, "bssend: a/b 1.0 MiB of 2.0 MiB (50%)"},
	}
	for _, tt := range tests {
		if got := Line("bssend", "a/b", tt.n, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("Line(%d, %d, %v) = %q, want %q", tt.n, tt.total, tt.elapsed, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	if got, want := Summary(1, "snapshot", 2048, 2*time.Second), "1 snapshot, 2.0 KiB in 2s (1.0 KiB/s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Summary(3, "snapshot", 0, 0), "3 snapshots, 0 B in 0s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestMeterDrawsAndBlanks(t *testing.T) {
	var out syncBuffer
	m := New(&out, "bsrecv")
	m.Start("snap", 1000)
	m.Write(make([]byte, 500))
	time.Sleep(3 * Interval)
	m.Finish()
	m.Finish()
	s := out.String()
	if !strings.Contains(s, "bsrecv: snap 500 B of 1000 B (50%)") {
		t.Errorf("no meter line in %q", s)
	}
	if !strings.HasSuffix(s, "\r") {
		t.Errorf("line not blanked at the end: %q", s)
	}
	if m.N() != 500 {
		t.Errorf("N = %d", m.N())
	}
	// Counting only: nothing drawn.
	q := New(nil, "x")
	q.Start("y", 0)
	q.Add(7)
	q.Finish()
	if q.N() != 7 {
		t.Errorf("N = %d", q.N())
	}
}
