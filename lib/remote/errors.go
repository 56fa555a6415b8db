package remote

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/buttersink/buttersink/lib/hint"
)

// maxOther is the number of lines from others than buttersink kept to
// explain a failure (each at most child.MaxLine bytes).
const maxOther = 8

// stderrFilter sorts the ssh client's stderr line by line: the remote
// command's messages ("NAME: ..." from the command named) are passed on;
// the last error line and its hint (from the command or the server's
// forced command) are kept to become this command's error; everything
// else (ssh, sudo, the remote shell) is logged at debug level and the last
// lines kept as the cause of a failure. Memory stays bounded whatever the
// remote side writes.
type stderrFilter struct {
	name    string
	forward io.Writer
	log     *slog.Logger
	failure hint.Collector
	res     stderrResult
}

type stderrResult struct {
	err   error // the remote command's error line, with its hint
	other []string
}

func newStderrFilter(name string, forward io.Writer, log *slog.Logger) *stderrFilter {
	s := &stderrFilter{name: name, forward: forward, log: log}
	s.failure.Pass = s.pass
	return s
}

func (s *stderrFilter) pass(l string) { io.WriteString(s.forward, l+"\n") }

func (s *stderrFilter) line(l string) {
	if s.failure.Take(l) {
		return
	}
	if strings.HasPrefix(l, s.name+": ") {
		s.pass(l)
		return
	}
	if strings.TrimSpace(l) == "" {
		return
	}
	s.log.Debug("ssh: " + l)
	if len(s.res.other) == maxOther {
		s.res.other = s.res.other[1:]
	}
	s.res.other = append(s.res.other, l)
}

func (s *stderrFilter) result() stderrResult {
	r := s.res
	r.err = s.failure.Err()
	return r
}

// classify turns a failed ssh run into one error line naming host and cause.
func classify(host, name string, code int, r stderrResult) error {
	for _, l := range r.other {
		if strings.Contains(l, "a password is required") {
			return hint.Wrap(fmt.Errorf("%s: sudo -n %s: a password is required", host, name),
				"allow the ssh user to run "+name+" with NOPASSWD in sudoers on "+host+" (see bs-ssh-filter(8))")
		}
		if strings.HasPrefix(l, "sudo: ") && strings.Contains(l, name+": command not found") {
			return hint.Wrap(fmt.Errorf("%s: sudo -n %s: command not found", host, name),
				"install buttersink on "+host+" in sudo's secure_path (e.g. /usr/local/bin)")
		}
	}
	if r.err != nil {
		return fmt.Errorf("%s: %w", host, r.err)
	}
	last := ""
	if len(r.other) > 0 {
		last = r.other[len(r.other)-1]
	}
	switch code {
	case 127:
		return hint.Wrap(fmt.Errorf("%s: %s: command not found on the remote host", host, name),
			"install buttersink on "+host+" or set PATH for its ssh sessions")
	case 126:
		return fmt.Errorf("%s: %s: permission denied (not executable)", host, name)
	case 255:
		return sshFailure(host, r.other)
	}
	if last != "" {
		return fmt.Errorf("%s: remote %s failed (exit status %d): %s", host, name, code, last)
	}
	return fmt.Errorf("%s: remote %s failed (exit status %d)", host, name, code)
}

// sshFailures maps what OpenSSH prints when it cannot run the command to
// a cause and a hint; the first pattern found in the kept lines wins.
var sshFailures = []struct{ pattern, cause, hint string }{
	{"Permission denied (", "authentication failed", "check the key (--ssh \"ssh -i KEY\" or ~/.ssh/config) and authorized_keys on %s"},
	{"Host key verification failed", "host key verification failed", "check the host key of %s in ~/.ssh/known_hosts"},
	{"Could not resolve hostname", "unknown host (could not resolve hostname)", "check the host name %s"},
	{"Connection refused", "unreachable (connection refused)", "is sshd running on %s, on that port?"},
	{"timed out", "unreachable (connection timed out)", "check the network path to %s"},
	{"No route to host", "unreachable (no route to host)", "check the network path to %s"},
	{"Network is unreachable", "unreachable (network is unreachable)", "check the network path to %s"},
	{"Too many authentication failures", "authentication failed (too many authentication failures)", "pass one key with --ssh \"ssh -i KEY -o IdentitiesOnly=yes\" for %s"},
}

func sshFailure(host string, lines []string) error {
	for _, f := range sshFailures {
		for _, l := range lines {
			if strings.Contains(l, f.pattern) {
				return hint.Wrap(fmt.Errorf("%s: %s", host, f.cause), fmt.Sprintf(f.hint, host))
			}
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: ssh failed (exit status 255)", host)
	}
	last := strings.TrimPrefix(lines[len(lines)-1], "ssh: ")
	return fmt.Errorf("%s: ssh failed: %s", host, last)
}
