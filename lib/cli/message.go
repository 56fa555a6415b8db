package cli

import "strings"

// Message is one line of the protocol every command prints on stderr
// (Report writes them): "NAME: error: TEXT" or "NAME: hint: TEXT". A
// command that runs another reads its child's lines with ParseMessage, so
// that the child's error becomes its own.
type Message struct {
	Command string
	// Kind is "error" or "hint".
	Kind string
	Text string
}

// ParseMessage reads one stderr line; ok is false for any other line.
// NAME is any command name (lowercase letters, digits, '-', '.', '_'), so
// no list of commands is kept here.
func ParseMessage(line string) (m Message, ok bool) {
	line = strings.TrimSuffix(line, "\n")
	name, rest, found := strings.Cut(line, ": ")
	if !found || !isCommandName(name) {
		return Message{}, false
	}
	for _, kind := range []string{"error", "hint"} {
		if text, found := strings.CutPrefix(rest, kind+": "); found {
			return Message{Command: name, Kind: kind, Text: text}, true
		}
	}
	return Message{}, false
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
