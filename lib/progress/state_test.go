package progress

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

func TestMerge(t *testing.T) {
	src := State{Role: RoleSource, Name: "bssend", Label: "home/b", N: 2, Of: 3, Cur: 300, Size: 1000, Done: 1300, Total: 3000, Start: at(0)}
	tests := []struct {
		name   string
		states []State
		want   State
		ok     bool
	}{
		{"nothing", nil, State{}, false},
		{"source alone", []State{src}, src, true},
		{"sink lags within the stream: the sink's position",
			[]State{src, {Role: RoleSink, N: 2, Done: 1100, Start: at(time.Second)}},
			State{Role: RoleSource, Name: "bssend", Label: "home/b", N: 2, Of: 3, Cur: 100, Size: 1000, Done: 1100, Total: 3000, Start: at(0)}, true},
		{"sink a stream behind: the stream at 0",
			[]State{{Role: RoleSink, N: 1, Done: 900, Start: at(time.Second)}, src},
			State{Role: RoleSource, Name: "bssend", Label: "home/b", N: 2, Of: 3, Cur: 0, Size: 1000, Done: 900, Total: 3000, Start: at(0)}, true},
		{"source ended, sink still storing: still its sizes",
			[]State{func() State { s := src; s.Ended = true; return s }(), {Role: RoleSink, N: 2, Done: 1250, Start: at(time.Second)}},
			State{Role: RoleSource, Ended: true, Name: "bssend", Label: "home/b", N: 2, Of: 3, Cur: 250, Size: 1000, Done: 1250, Total: 3000, Start: at(0)}, true},
		{"sink alone",
			[]State{{Role: RoleSink, Name: "bsrecv", Label: "x", N: 1, Cur: 5, Done: 5, Start: at(0)}},
			State{Role: RoleSink, Name: "bsrecv", Label: "x", N: 1, Cur: 5, Done: 5, Start: at(0)}, true},
		{"plan measuring, no stream yet",
			[]State{{Role: RolePlan, N: 3, Of: 9}, {Role: RoleSource, Of: 0}, {Role: RoleSink}},
			State{Role: RolePlan, N: 3, Of: 9}, true},
		{"plan ended, nothing begun", []State{{Role: RolePlan, Ended: true, N: 9, Of: 9}}, State{}, false},
		{"the newest source wins (an earlier run's ended one)",
			[]State{{Role: RoleSource, Ended: true, N: 5, Of: 5, Start: at(-time.Hour)}, src}, src, true},
	}
	for _, tt := range tests {
		got, ok := Merge(tt.states)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: Merge = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRender(t *testing.T) {
	v := State{Role: RoleSource, Label: "home/2026-01-02", N: 2, Of: 5, Cur: 256 << 20, Size: 1 << 30,
		Done: 1280 << 20, Total: 4 << 30, Start: at(0)}
	now := t0.Add(10 * time.Second)
	tests := []struct {
		name  string
		v     State
		width int
		want  string
	}{
		{"all of it", v, 0,
			"bssend: 2/5 home/2026-01-02 256.0 MiB of 1.0 GiB (25%) 128.0 MiB/s ETA 0:06 · total 1.2 GiB of 4.0 GiB (31%) ETA 0:22"},
		{"no rate", v, 106,
			"bssend: 2/5 home/2026-01-02 256.0 MiB of 1.0 GiB (25%) ETA 0:06 · total 1.2 GiB of 4.0 GiB (31%) ETA 0:22"},
		{"no stream ETA", v, 97,
			"bssend: 2/5 home/2026-01-02 256.0 MiB of 1.0 GiB (25%) · total 1.2 GiB of 4.0 GiB (31%) ETA 0:22"},
		{"no total", v, 60, "bssend: 2/5 home/2026-01-02 256.0 MiB of 1.0 GiB (25%)"},
		{"essentials", v, 40, "bssend: 2/5 home/2026-01-02 256.0 MiB"},
		{"label shortened from its start", v, 32, "bssend: 2/5 …26-01-02 256.0 MiB"},
		{"cut", v, 12, "bssend: 2/5"},
		{"unknown sizes", State{Role: RoleSink, Label: "a", N: 3, Cur: 2048, Done: 4096, Start: at(0)}, 0,
			"bssend: #3 a 2.0 KiB 409 B/s"},
		{"one stream: no total", State{Role: RoleSource, Label: "a", N: 1, Of: 1, Cur: 10, Size: 10, Done: 10, Total: 10, Start: at(0)}, 0,
			"bssend: 1/1 a 10 B of 10 B (100%) 1 B/s"},
		{"more than the estimate: capped", State{Role: RoleSource, Label: "a", N: 1, Of: 1, Cur: 20, Size: 10, Done: 20, Total: 10, Start: at(0)}, 0,
			"bssend: 1/1 a 20 B of 10 B (100%) 2 B/s"},
		{"plan", State{Role: RolePlan, N: 3, Of: 40}, 0, "bssend: measuring 3/40 snapshots"},
		{"hostile label escaped", State{Role: RoleSink, Label: "a\x1b[2Jb\r", N: 1}, 0, `bssend: #1 a\x1b[2Jb 0 B`},
	}
	for _, tt := range tests {
		got := Render("bssend", tt.v, now, tt.width)
		if got != tt.want {
			t.Errorf("%s (width %d):\n got %q\nwant %q", tt.name, tt.width, got, tt.want)
		}
		if tt.width > 0 && utf8.RuneCountInString(got) >= tt.width {
			t.Errorf("%s: %d runes in width %d", tt.name, utf8.RuneCountInString(got), tt.width)
		}
	}
	// Every width fits, however narrow.
	for w := 1; w < 130; w++ {
		if got := Render("bssend", v, now, w); utf8.RuneCountInString(got) > max(w-1, 0) || strings.ContainsAny(got, "\r\n\x1b") {
			t.Errorf("width %d: %q", w, got)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	s := State{Role: RoleSink, Ended: true, Name: "bss3put", Label: strings.Repeat("é", 200), N: 7, Of: 9,
		Cur: 1, Size: 2, Done: 3, Total: 4, Start: 5, Stream: 6}
	var b [slotSize]byte
	s.encode(b[:])
	got, ok := decodeState(b[:])
	want := s
	want.Label = clip(s.Label, labelCap)
	if !ok || got != want || !utf8.ValidString(got.Label) {
		t.Fatalf("decoded %+v, %v", got, ok)
	}
	b[100] ^= 1
	if _, ok := decodeState(b[:]); ok {
		t.Fatal("a torn slot decoded")
	}
}

// A slot is read from a file another process writes: no content makes
// decoding panic or yield a state that encodes differently.
func FuzzDecodeState(f *testing.F) {
	var b [slotSize]byte
	(&State{Role: RoleSource, Name: "bssend", Label: "a/b", N: 1, Of: 2, Cur: 3}).encode(b[:])
	f.Add(b[:])
	f.Add(make([]byte, slotSize))
	f.Add([]byte("BSP1"))
	f.Fuzz(func(t *testing.T, p []byte) {
		s, ok := decodeState(p)
		if !ok {
			return
		}
		var again [slotSize]byte
		s.encode(again[:])
		if s2, ok := decodeState(again[:]); !ok || s2 != s {
			t.Fatalf("%+v re-decoded as %+v, %v", s, s2, ok)
		}
		Render(s.Name, s, time.Now(), 80)
	})
}
