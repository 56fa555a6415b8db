package hint

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The kinds of Line.
const (
	KindError = "error"
	KindHint  = "hint"
)

// Line is one line of the protocol every command prints on stderr when it
// fails (cli.Report prints them with String): "NAME: error: TEXT", then
// optionally "NAME: hint: TEXT". A command that runs another reads its
// child's lines with ParseLine (or a Collector), so that the child's error
// becomes its own.
type Line struct {
	Command string
	// Kind is KindError or KindHint.
	Kind string
	Text string
}

// String is the line as printed, with its "\n"; the text is made one line
// (OneLine), so that ParseLine reads it back.
func (l Line) String() string {
	return l.Command + ": " + l.Kind + ": " + OneLine(l.Text) + "\n"
}

// OneLine joins the lines of s with "; " and collapses its white space.
// It is printable: names in a message may come from a hostile stream,
// store or remote host and must not drive the user's terminal, so control
// characters and bytes that are not UTF-8 are escaped ("\x1b").
func OneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// ParseLine reads one stderr line (its "\n" optional); ok is false for
// any other line. NAME is any command name (lowercase letters, digits,
// '-', '.', '_'), so no list of commands is kept.
func ParseLine(line string) (l Line, ok bool) {
	line = strings.TrimSuffix(line, "\n")
	name, rest, found := strings.Cut(line, ": ")
	if !found || !isCommandName(name) {
		return Line{}, false
	}
	for _, kind := range []string{KindError, KindHint} {
		if text, found := strings.CutPrefix(rest, kind+": "); found {
			return Line{Command: name, Kind: kind, Text: text}, true
		}
	}
	return Line{}, false
}

func isCommandName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// Collector reads a child command's stderr line by line and keeps its
// failure: the last error line and the hint line after it. The error
// printed last is the one the command exited with (an error logged before
// it is a message); the lines it displaces are passed on.
type Collector struct {
	// Pass receives the lines Take does not keep: an error line and its
	// hint displaced by a later error, a hint displaced by a later hint.
	Pass      func(line string)
	err, hint *Line
}

// Take reads one line; it reports whether it was an error or hint line,
// which the Collector then owns.
func (c *Collector) Take(line string) bool {
	l, ok := ParseLine(line)
	if !ok {
		return false
	}
	if l.Kind == KindError {
		c.pass(c.err)
		c.pass(c.hint)
		c.err, c.hint = &l, nil
	} else {
		c.pass(c.hint)
		c.hint = &l
	}
	return true
}

func (c *Collector) pass(l *Line) {
	if l != nil && c.Pass != nil {
		c.Pass(l.Command + ": " + l.Kind + ": " + OneLine(l.Text))
	}
}

// Err is the child's error line as an error carrying its hint, or nil when
// it printed none.
func (c *Collector) Err() error {
	if c.err == nil {
		return nil
	}
	err := errors.New(c.err.Text)
	if c.hint != nil {
		err = Wrap(err, c.hint.Text)
	}
	return err
}
