package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// handler writes "NAME: message key=value" lines to stderr at the chosen
// level, and everything to the -l log file when there is one.
type handler struct {
	name  string
	w     io.Writer
	level slog.Level
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
	_, err := io.WriteString(h.w, visible(b.String())+"\n")
	return err
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *handler) WithGroup(string) slog.Handler { return h }
