package schedule

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "1y 3m 30d 24h", want: "1y 3m 30d 24h"},
		{in: "24h 1y", want: "1y 24h"},
		{in: "2q 4w 60M", want: "2q 4w 60M"},
		{in: "", err: "empty"},
		{in: "3x", err: "unknown unit"},
		{in: "0d", err: "positive"},
		{in: "d", err: "count and a unit"},
		{in: "1d 2d", err: "twice"},
	}
	for _, tc := range tests {
		p, err := Parse(tc.in, time.UTC)
		if tc.err != "" {
			if err == nil || !contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if p.String() != tc.want {
			t.Errorf("%q: got %q", tc.in, p.String())
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestStart(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata")
	}
	// Wednesday 2025-08-13 14:35 in Berlin.
	at := time.Date(2025, 8, 13, 14, 35, 10, 0, berlin)
	tests := []struct {
		u    Unit
		want time.Time
	}{
		{Year, time.Date(2025, 1, 1, 0, 0, 0, 0, berlin)},
		{Quarter, time.Date(2025, 7, 1, 0, 0, 0, 0, berlin)},
		{Month, time.Date(2025, 8, 1, 0, 0, 0, 0, berlin)},
		{Week, time.Date(2025, 8, 11, 0, 0, 0, 0, berlin)},
		{Day, time.Date(2025, 8, 13, 0, 0, 0, 0, berlin)},
		{Hour, time.Date(2025, 8, 13, 14, 0, 0, 0, berlin)},
		{Minute, time.Date(2025, 8, 13, 14, 35, 0, 0, berlin)},
	}
	for _, tc := range tests {
		if got := tc.u.Start(at); !got.Equal(tc.want) {
			t.Errorf("%s: got %v want %v", tc.u, got, tc.want)
		}
	}
	// The same instant is in another day in another zone.
	utc := time.Date(2025, 8, 13, 23, 30, 0, 0, time.UTC)
	if got := Day.Start(utc.In(berlin)); got.Day() != 14 {
		t.Errorf("Berlin day of %v: %v", utc, got)
	}
	// A Sunday belongs to the week that started on Monday.
	if got := Week.Start(time.Date(2025, 8, 17, 12, 0, 0, 0, time.UTC)); got.Day() != 11 {
		t.Errorf("week of Sunday 17th starts %v", got)
	}
	// Hours across the end of summer time: 02:00-03:00 happens twice.
	first := time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	second := first.Add(time.Hour)                          // 02:30 CET
	if Hour.Start(first.In(berlin)).Equal(Hour.Start(second.In(berlin))) {
		t.Error("the two 02:00 hours of the autumn change are one period")
	}
	if back := Hour.Back(Hour.Start(second.In(berlin)), 1); !back.Equal(Hour.Start(first.In(berlin))) {
		t.Errorf("hour before %v is %v", second.In(berlin), back)
	}
}

func TestCalendar(t *testing.T) {
	p, _ := Parse("1m 2d 2h", time.UTC)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var times []time.Time
	for h := 0; h < 72; h += 6 { // every 6 hours for 3 days
		times = append(times, base.Add(time.Duration(h)*time.Hour))
	}
	c := NewCalendar(p, times)
	if c.Level(0) != 0 || c.Level(4) != 1 || c.Level(5) != 2 {
		t.Errorf("levels %d %d %d", c.Level(0), c.Level(4), c.Level(5))
	}
	if c.Nominal(1, 6) != 4 {
		t.Errorf("day nominal of #6 is %d", c.Nominal(1, 6))
	}
	now := times[len(times)-1]
	kept := c.Kept(now)
	// Month: #0. Days: Mar 2 (#4) and Mar 3 (#8). Hours: the current
	// hour holds #11 (also the newest); the previous hour holds none.
	want := map[int]bool{0: true, 4: true, 8: true, 11: true}
	for i, k := range kept {
		if k != want[i] {
			t.Errorf("kept[%d] = %v", i, k)
		}
	}
	if p.MaxChain() != 4 {
		t.Errorf("max chain %d", p.MaxChain())
	}
}

// FuzzParse: any input parses to a policy that prints and parses back to
// itself, or fails cleanly.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1y 3m 30d 24h", "2q", "7d 7d", "0h", "99999999999999999999y", "1M 1h", " 3w\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s, time.UTC)
		if err != nil {
			return
		}
		q, err := Parse(p.String(), time.UTC)
		if err != nil || q.String() != p.String() || p.MaxChain() != len(p.Frames)+1 {
			t.Fatalf("%q: %q then %q, %v", s, p.String(), q.String(), err)
		}
	})
}
