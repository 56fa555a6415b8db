package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/buttersink/buttersink/lib/hint"
)

// handler writes "NAME: message key=value" lines to stderr at the chosen
// level, and everything to the -l log file when there is one.
type handler struct {
	name  string
	w     io.Writer
	level slog.Level
	style lineStyle
	file  slog.Handler
	attrs []slog.Attr
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level || h.file != nil
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if h.file != nil {
		fh := h.file
		if len(h.attrs) > 0 {
			fh = fh.WithAttrs(h.attrs)
		}
		_ = fh.Handle(ctx, r.Clone())
	}
	if r.Level < h.level {
		return nil
	}
	var b strings.Builder
	b.WriteString(h.name)
	b.WriteString(": ")
	if r.Level >= slog.LevelWarn {
		b.WriteString(strings.ToLower(r.Level.String()))
		b.WriteString(": ")
	}
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Any())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	// The message names what streams and stores hold: printable only.
	_, err := io.WriteString(h.w, h.style.line(r.Level, hint.OneLine(b.String())+"\n"))
	return err
}

// lineStyle is what every stderr line carries besides its text.
type lineStyle struct {
	// clear: a progress line may be on the terminal, drawn by this or
	// another stage of the pipeline; the message blanks it first, in the
	// same write, and the drawer draws it again below.
	clear bool
	// journal: stderr is the journal, which takes a syslog priority
	// from a "<N>" prefix.
	journal bool
}

func stderrStyle(f *os.File, bar bool) lineStyle {
	return lineStyle{clear: bar, journal: isJournal(f)}
}

// line is s (one line and its "\n") as written.
func (st lineStyle) line(level slog.Level, s string) string {
	if st.journal {
		s = priority(level) + s
	}
	if st.clear {
		s = "\r\x1b[K" + s
	}
	return s
}

// priority is the syslog priority prefix of a level: err, warning, info,
// debug.
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *handler) WithGroup(string) slog.Handler { return h }
