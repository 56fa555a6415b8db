package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/hint"
)

func TestParseMessage(t *testing.T) {
	for _, c := range []struct {
		line string
		want Message
		ok   bool
	}{
		{"bss3ls: error: s3://b/p/: no such bucket\n", Message{"bss3ls", "error", "s3://b/p/: no such bucket"}, true},
		{"bsrecv: hint: run as root", Message{"bsrecv", "hint", "run as root"}, true},
		{"my-filter.v2: error: x", Message{"my-filter.v2", "error", "x"}, true},
		{"bsrecv: warning: x", Message{}, false},
		{"ERROR: cannot open", Message{}, false},
		{"/usr/bin/x: error: y", Message{}, false},
		{"bsrecv error: x", Message{}, false},
		{"", Message{}, false},
	} {
		got, ok := ParseMessage(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: got %+v %v, want %+v %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

// What Report prints, ParseMessage reads back.
func TestReportParsesBack(t *testing.T) {
	var buf bytes.Buffer
	err := hint.Wrap(errors.New("dest is\nlocked"), "use --wait")
	reportTo(&buf, "bsrecv", err, false, nil)
	lines := strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %q", buf.String())
	}
	e, ok1 := ParseMessage(lines[0])
	h, ok2 := ParseMessage(lines[1])
	if !ok1 || !ok2 || e.Text != "dest is; locked" || h.Text != "use --wait" || e.Command != "bsrecv" {
		t.Fatalf("read back %+v %+v from %q", e, h, buf.String())
	}
}

// An error naming what a hostile stream made cannot drive the terminal.
func TestReportEscapes(t *testing.T) {
	var buf bytes.Buffer
	reportTo(&buf, "bsrecv", errors.New("x/\x1b]0;owned\x07\xff\xfeé\u009b: refused"), false, nil)
	if got, want := buf.String(), `bsrecv: error: x/\x1b]0;owned\x07\xff\xfeé\xc2\x9b: refused`+"\n"; got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}
