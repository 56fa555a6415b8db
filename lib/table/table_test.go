package table

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name  string
		tab   Table
		width int
		want  string
	}{
		{"aligned", Table{Head: []string{"A", "BB"}, Rows: [][]string{{"xyz", "1"}, {"é", "22"}}}, 0,
			"A    BB\nxyz  1\né    22\n"},
		{"empty columns dropped", Table{Head: []string{"A", "B", "C"}, Rows: [][]string{{"x", "-", "1"}, {"y", "", "2"}}}, 0,
			"A  C\nx  1\ny  2\n"},
		{"no rows: kept columns", Table{Head: []string{"A", "B", "C"}, Keep: 2}, 0, "A  B\n"},
		{"rows: Keep drops nothing more", Table{Head: []string{"A", "B", "C"}, Keep: 2, Rows: [][]string{{"x", "-", "1"}}}, 0, "A  C\nx  1\n"},
		{"no terminal: no cut", Table{Head: []string{"PATH", "N"}, Rows: [][]string{{strings.Repeat("p", 40), "1"}}}, 0,
			"PATH" + strings.Repeat(" ", 38) + "N\n" + strings.Repeat("p", 40) + "  1\n"},
		{"cut to the width", Table{Head: []string{"PATH", "N"}, Rows: [][]string{{strings.Repeat("p", 40), "1"}}}, 20,
			"PATH" + strings.Repeat(" ", 15) + "N\n" + strings.Repeat("p", 16) + "…  1\n"},
		{"the widest is cut first", Table{Head: []string{"A", "B"}, Rows: [][]string{{strings.Repeat("a", 12), strings.Repeat("b", 30)}}}, 30,
			"A             B\n" + strings.Repeat("a", 12) + "  " + strings.Repeat("b", 15) + "…\n"},
		{"whole columns are cut last", Table{Head: []string{"A", "B"}, Whole: []string{"B"}, Rows: [][]string{{strings.Repeat("a", 12), strings.Repeat("b", 30)}}}, 30,
			"A         B\n" + strings.Repeat("a", 7) + "…  " + strings.Repeat("b", 19) + "…\n"},
		{"whole columns fit", Table{Head: []string{"A", "B"}, Whole: []string{"B"}, Rows: [][]string{{strings.Repeat("a", 12), strings.Repeat("b", 10)}}}, 22,
			"A           B\n" + strings.Repeat("a", 9) + "…  " + strings.Repeat("b", 10) + "\n"},
		{"no narrower than the heading or 8", Table{Head: []string{"LONGHEADING", "B"}, Rows: [][]string{{strings.Repeat("a", 20), strings.Repeat("b", 20)}}}, 10,
			"LONGHEADING  B\n" + strings.Repeat("a", 10) + "…  " + strings.Repeat("b", 7) + "…\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := tt.tab.Write(&b, tt.width); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("%s:\n%s\nwant\n%s", tt.name, b.String(), tt.want)
		}
		if tt.width >= 20 {
			for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
				if n := utf8.RuneCountInString(l); n > tt.width {
					t.Errorf("%s: line of %d characters on a terminal of %d: %q", tt.name, n, tt.width, l)
				}
			}
		}
	}
}

func TestTime(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	tests := []struct {
		local *time.Location
		t     time.Time
		want  string
	}{
		{time.UTC, time.Time{}, "-"},
		{time.UTC, time.Date(2026, 12, 2, 13, 4, 5, 0, time.UTC), "2026-12-02 13:04:05 UTC"},
		{time.FixedZone("CET", 3600), time.Date(2026, 12, 2, 13, 4, 5, 0, time.UTC), "2026-12-02 14:04:05 CET"},
		{time.FixedZone("", 5*3600+1800), time.Date(2026, 12, 2, 13, 4, 5, 0, time.UTC), "2026-12-02 18:34:05 +0530"},
	}
	for _, tt := range tests {
		time.Local = tt.local
		if got := Time(tt.t); got != tt.want {
			t.Errorf("Time(%v) in %v = %q, want %q", tt.t, tt.local, got, tt.want)
		}
	}
}
