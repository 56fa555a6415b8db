package hint

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		line string
		want Line
		ok   bool
	}{
		{"bss3ls: error: s3://b/p/: no such bucket\n", Line{"bss3ls", "error", "s3://b/p/: no such bucket"}, true},
		{"bsrecv: hint: run as root", Line{"bsrecv", "hint", "run as root"}, true},
		{"my-filter.v2: error: x", Line{"my-filter.v2", "error", "x"}, true},
		{"bs-ssh-filter: error: denied: x", Line{"bs-ssh-filter", "error", "denied: x"}, true},
		{"bsrecv: error: ", Line{"bsrecv", "error", ""}, true},
		{"bsrecv: warning: x", Line{}, false},
		{"bsrecv: received home.1", Line{}, false},
		{"ssh: connect to host b port 22: Connection refused", Line{}, false},
		{"bash: line 1: bsrecv: command not found", Line{}, false},
		{"ERROR: cannot open", Line{}, false},
		{"/usr/bin/x: error: y", Line{}, false},
		{"Bsrecv: error: y", Line{}, false},
		{"bsrecv error: x", Line{}, false},
		{"bsrecv: error:x", Line{}, false},
		{"", Line{}, false},
	} {
		got, ok := ParseLine(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: got %+v %v, want %+v %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

// What String prints, ParseLine reads back, whatever the text.
func FuzzLine(f *testing.F) {
	f.Add("bsrecv", "dest is\nlocked", true)
	f.Add("bss3ls", "  a:  error: b \r\n", false)
	f.Add("x", "hint: error: \n\n", true)
	f.Fuzz(func(t *testing.T, name, text string, isErr bool) {
		kind := KindHint
		if isErr {
			kind = KindError
		}
		l := Line{Command: name, Kind: kind, Text: text}
		s := l.String()
		got, ok := ParseLine(s)
		if !isCommandName(name) {
			if ok && got.Command == name {
				t.Fatalf("invalid name %q read back from %q", name, s)
			}
			return
		}
		if strings.Count(s, "\n") != 1 {
			t.Fatalf("%q is not one line", s)
		}
		if !ok || got.Command != name || got.Kind != kind || got.Text != OneLine(text) {
			t.Fatalf("%q read back as %+v %v", s, got, ok)
		}
		// Any line: what ParseLine accepts, String prints back the same
		// once normalised.
		if g2, ok2 := ParseLine(got.String()); !ok2 || g2.String() != got.String() {
			t.Fatalf("%+v does not round-trip", got)
		}
	})
}

func TestCollector(t *testing.T) {
	var passed []string
	c := &Collector{Pass: func(l string) { passed = append(passed, l) }}
	var others []string
	for _, l := range []string{
		"bsrecv: received a",
		"bsrecv: error: could not delete the partial subvolume; delete it by hand path=/x",
		"bsrecv: hint: first",
		"ssh: something",
		"bsrecv: error: /x: btrfs receive failed",
		"bsrecv: hint: free space",
	} {
		if !c.Take(l) {
			others = append(others, l)
		}
	}
	err := c.Err()
	if err == nil || err.Error() != "/x: btrfs receive failed" || Of(err) != "free space" {
		t.Fatalf("error %v hint %q", err, Of(err))
	}
	if strings.Join(passed, "|") != "bsrecv: error: could not delete the partial subvolume; delete it by hand path=/x|bsrecv: hint: first" {
		t.Errorf("passed on %q", passed)
	}
	if len(others) != 2 {
		t.Errorf("not taken %q", others)
	}
	if (&Collector{}).Err() != nil {
		t.Error("an error from no lines")
	}
	c = &Collector{}
	c.Take("bss3ls: error: x")
	if err := c.Err(); err.Error() != "x" || Of(err) != "" || errors.Unwrap(err) != nil {
		t.Errorf("got %v %q", err, Of(err))
	}
}
