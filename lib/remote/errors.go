package remote

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/buttersink/buttersink/lib/hint"
)

// commands are the names whose "NAME: ..." lines on the remote stderr come
// from buttersink (the remote command or the server's forced command)
// rather than from ssh, sudo or the remote shell.
var commands = map[string]bool{
	"bsls": true, "bsplan": true, "bssend": true, "bsrecv": true, "bsrm": true,
	"bss3put": true, "bss3get": true, "checksumdir": true, "buttersink": true,
	"bs-ssh-filter": true,
}

// maxLine bounds one remembered stderr line; maxOther the number of
// non-buttersink lines kept to explain a failure.
const (
	maxLine  = 4096
	maxOther = 8
)

// stderrFilter sorts the ssh client's stderr line by line: the remote
// command's messages are passed on; its error and hint lines are kept to
// become this command's error; everything else (ssh, sudo, the remote
// shell) is logged at debug level and the last lines kept as the cause of
// a failure. Memory stays bounded whatever the remote side writes.
type stderrFilter struct {
	forward io.Writer
	log     *slog.Logger
	buf     []byte
	res     stderrResult
}

type stderrResult struct {
	errMsg, hintMsg string // the remote command's "NAME: error:" / "NAME: hint:" text
	other           []string
}

func (s *stderrFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.buf = append(s.buf, p...)
			if len(s.buf) > maxLine {
				s.line(string(s.buf[:maxLine]))
				s.buf = s.buf[:0]
			}
			break
		}
		s.buf = append(s.buf, p[:i]...)
		if len(s.buf) > maxLine {
			s.buf = s.buf[:maxLine]
		}
		s.line(string(s.buf))
		s.buf = s.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (s *stderrFilter) flush() {
	if len(s.buf) > 0 {
		s.line(string(s.buf))
		s.buf = s.buf[:0]
	}
}

func (s *stderrFilter) line(l string) {
	l = strings.TrimRight(l, "\r")
	if name, rest, ok := strings.Cut(l, ": "); ok && commands[name] {
		switch {
		case strings.HasPrefix(rest, "error: "):
			if s.res.errMsg == "" {
				s.res.errMsg = strings.TrimPrefix(rest, "error: ")
			}
		case strings.HasPrefix(rest, "hint: "):
			if s.res.hintMsg == "" {
				s.res.hintMsg = strings.TrimPrefix(rest, "hint: ")
			}
		default:
			io.WriteString(s.forward, l+"\n")
		}
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

func (s *stderrFilter) result() stderrResult { return s.res }

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
	if r.errMsg != "" {
		err := fmt.Errorf("%s: %s", host, r.errMsg)
		if r.hintMsg != "" {
			err = hint.Wrap(err, r.hintMsg)
		}
		return err
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
