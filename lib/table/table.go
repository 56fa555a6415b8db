// Package table prints aligned tables for people: columns that are empty
// in every row are left out, and on a terminal the table is cut to its
// width, so that a line never wraps into the next.
package table

import (
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Empty is the cell of an unknown value.
const Empty = "-"

// Table is a heading and rows of cells (one per heading).
type Table struct {
	Head []string
	Rows [][]string
	// Keep is the number of leading columns a table without rows shows
	// (it would otherwise have none).
	Keep int
	// Whole are the headings of columns cut only when cutting the others
	// is not enough (times, sizes: a cut there loses what the value means).
	Whole []string
}

// gap is the room between columns.
const gap = 2

// minWidth is the narrowest a cut column gets (before its heading's width).
const minWidth = 8

// Write prints t to w: cells left-aligned, columns gap apart. Columns whose
// every cell is "" or Empty are dropped (a table without rows shows Keep).
// width > 0 cuts the widest columns (a cut cell ends in "…"), Whole ones
// last, until a line fits, as far as they can shrink; width 0 cuts
// nothing (not a terminal).
func (t *Table) Write(w io.Writer, width int) error {
	var cols []int
	for c := range t.Head {
		if (len(t.Rows) == 0 && c < t.Keep) || t.used(c) {
			cols = append(cols, c)
		}
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = utf8.RuneCountInString(t.Head[c])
		for _, r := range t.Rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[c]))
		}
	}
	if width > 0 {
		t.fit(widths, cols, width)
	}
	var b strings.Builder
	line := func(cells []string) error {
		b.Reset()
		for i, c := range cols {
			cell := cut(cells[c], widths[i])
			b.WriteString(cell)
			if i < len(cols)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)+gap))
			}
		}
		b.WriteByte('\n')
		_, err := io.WriteString(w, b.String())
		return err
	}
	if err := line(t.Head); err != nil {
		return err
	}
	for _, r := range t.Rows {
		if err := line(r); err != nil {
			return err
		}
	}
	return nil
}

func (t *Table) used(c int) bool {
	for _, r := range t.Rows {
		if r[c] != "" && r[c] != Empty {
			return true
		}
	}
	return false
}

// fit narrows the widest column, a character at a time, until the line
// fits width or no column can shrink further: first those not Whole, then
// the Whole ones too (a narrow terminal).
func (t *Table) fit(widths []int, cols []int, width int) {
	total := gap * (len(widths) - 1)
	for _, w := range widths {
		total += w
	}
	for _, whole := range []bool{false, true} {
		for total > width {
			widest := -1
			for i, w := range widths {
				h := t.Head[cols[i]]
				if (whole || !slices.Contains(t.Whole, h)) && w > max(minWidth, utf8.RuneCountInString(h)) && (widest < 0 || w > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
			total--
		}
	}
}

// cut shortens s to n characters, the last one "…" when it cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Width is the width of the terminal f is, 0 when it is none.
func Width(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

// Time writes t for a table cell, with its zone: "2026-12-02 13:04:05
// UTC" (Empty when t is zero).
func Time(t time.Time) string {
	if t.IsZero() {
		return Empty
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}
