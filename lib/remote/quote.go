package remote

import (
	"errors"
	"strings"
)

// Quote quotes word for a POSIX shell in the one way the client ever
// quotes: the whole word in single quotes, an embedded single quote written
// as '\”. bs-ssh-filter accepts exactly this form (and refuses embedded
// single quotes altogether), so keep the two in step.
func Quote(word string) string {
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

// CommandLine is the line the remote shell runs: the bs command's name as
// a bare word (it is one of a fixed set of names), then every argument
// quoted. ssh sends one string, which the remote user's shell splits again,
// so nothing may go unquoted.
func CommandLine(sudo bool, name string, args []string) string {
	var b strings.Builder
	if sudo {
		b.WriteString("sudo -n ")
	}
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(Quote(a))
	}
	return b.String()
}

// SplitCommand splits the --ssh / BS_SSH value into words: at blanks,
// with single or double quotes grouping a word that holds blanks (no
// escapes, no expansions; it is a command, not a script).
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
