package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/hint"
)

// What Report prints, hint.ParseLine reads back.
func TestReportParsesBack(t *testing.T) {
	var buf bytes.Buffer
	err := hint.Wrap(errors.New("dest is\nlocked"), "use --wait")
	reportTo(&buf, lineStyle{}, "bsrecv", err, false, nil)
	lines := strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %q", buf.String())
	}
	e, ok1 := hint.ParseLine(lines[0])
	h, ok2 := hint.ParseLine(lines[1])
	if !ok1 || !ok2 || e.Text != "dest is; locked" || h.Text != "use --wait" || e.Command != "bsrecv" || e.Kind != hint.KindError || h.Kind != hint.KindHint {
		t.Fatalf("read back %+v %+v from %q", e, h, buf.String())
	}
}

// An error naming what a hostile stream made cannot drive the terminal.
func TestReportEscapes(t *testing.T) {
	var buf bytes.Buffer
	reportTo(&buf, lineStyle{}, "bsrecv", errors.New("x/\x1b]0;owned\x07\xff\xfeé\u009b: refused"), false, nil)
	if got, want := buf.String(), `bsrecv: error: x/\x1b]0;owned\x07\xff\xfeé\xc2\x9b: refused`+"\n"; got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}
