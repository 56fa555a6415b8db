package progress

import (
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

func TestSummary(t *testing.T) {
	if got, want := Summary(1, "snapshot", 2048, 2*time.Second), "1 snapshot, 2.0 KiB in 2s (1.0 KiB/s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Summary(3, "snapshot", 0, 0), "3 snapshots, 0 B in 0s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMeterCounts(t *testing.T) {
	m := New("bssend")
	m.Expect(2, 3000)
	m.Start("a", 1000)
	m.Write(make([]byte, 1000))
	m.Start("b", 2000)
	m.Add(500)
	m.Close()
	m.Close()
	s := m.State()
	if s.N != 2 || s.Of != 2 || s.Cur != 500 || s.Done != 1500 || s.Total != 3000 || s.Label != "b" || s.Size != 2000 || m.N() != 500 {
		t.Errorf("state %+v", s)
	}
}

// Log mode prints a status line every interval, through the command's
// logger.
func TestMeterLogs(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	m := Open(Options{Mode: Log, Name: "bssend", Role: RoleSource, LogInterval: 20 * time.Millisecond,
		Logf: func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }})
	m.Expect(1, 100)
	m.Start("a/b", 100)
	m.Add(50)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n >= 2 {
			break
		}
	}
	m.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "1/1 a/b 50 B of 100 B (50%)") {
		t.Fatalf("status lines %q", lines)
	}
}
