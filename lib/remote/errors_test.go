package remote

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/child"
	"github.com/buttersink/buttersink/lib/hint"
)

// Lines as OpenSSH 9, sudo and bash print them.
func TestClassify(t *testing.T) {
	const host = "root@backup:2222"
	for _, tc := range []struct {
		name   string
		code   int
		stderr string
		want   string
		hint   string
	}{
		{"refused", 255, "ssh: connect to host backup port 2222: Connection refused\n", "root@backup:2222: unreachable (connection refused)", "sshd running"},
		{"auth", 255, "Warning: Permanently added '[backup]:2222' (ED25519) to the list of known hosts.\nroot@backup: Permission denied (publickey).\n", "root@backup:2222: authentication failed", "authorized_keys"},
		{"resolve", 255, "ssh: Could not resolve hostname backup: Name or service not known\n", "root@backup:2222: unknown host (could not resolve hostname)", "host name"},
		{"hostkey", 255, "Host key verification failed.\n", "root@backup:2222: host key verification failed", "known_hosts"},
		{"timeout", 255, "ssh: connect to host backup port 22: Connection timed out\n", "root@backup:2222: unreachable (connection timed out)", "network"},
		{"other255", 255, "ssh: something odd\n", "root@backup:2222: ssh failed: something odd", ""},
		{"nothing255", 255, "", "root@backup:2222: ssh failed (exit status 255)", ""},
		{"notfound", 127, "bash: line 1: bsrecv: command not found\n", "root@backup:2222: bsrecv: command not found on the remote host", "install buttersink on root@backup:2222"},
		{"sudo password", 1, "sudo: a password is required\n", "root@backup:2222: sudo -n bsrecv: a password is required", "NOPASSWD"},
		{"sudo notfound", 1, "sudo: bsrecv: command not found\n", "root@backup:2222: sudo -n bsrecv: command not found", "secure_path"},
		{"remote error", 1, "bsrecv: received a\nbsrecv: error: /srv/b/c: parent 3f2a is not at the destination\nbsrecv: hint: send the parent first\n", "root@backup:2222: /srv/b/c: parent 3f2a is not at the destination", "send the parent first"},
		{"filter", 1, "bs-ssh-filter: error: denied: bsrm needs the delete capability, which this key lacks\n", "root@backup:2222: denied: bsrm needs the delete capability, which this key lacks", ""},
		{"version", 1, "bsrecv: error: version mismatch: client v1, server v2\nbsrecv: hint: install the same buttersink version on both hosts\n", "root@backup:2222: version mismatch: client v1, server v2", "same buttersink version"},
		{"logged error, then the exit error", 1, "bsrecv: error: could not delete the partial subvolume; delete it by hand path=/srv/b/c\nbsrecv: error: /srv/b/c: btrfs receive failed\nbsrecv: hint: see above\n", "root@backup:2222: /srv/b/c: btrfs receive failed", "see above"},
		{"any command's error line", 1, "bs-next: error: no such thing\n", "root@backup:2222: no such thing", ""},
		{"plain failure", 3, "something broke\n", "root@backup:2222: remote bsrecv failed (exit status 3): something broke", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fwd strings.Builder
			f := newStderrFilter("bsrecv", &fwd, slog.New(slog.NewTextHandler(io.Discard, nil)))
			w := child.NewLineWriter(f.line)
			// Feed in awkward pieces: line handling must not depend on write boundaries.
			for i := 0; i < len(tc.stderr); i += 3 {
				w.Write([]byte(tc.stderr[i:min(i+3, len(tc.stderr))]))
			}
			w.Flush()
			err := classify(host, "bsrecv", tc.code, f.result())
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if h := hint.Of(err); !strings.Contains(h, tc.hint) || (tc.hint == "" && h != "") {
				t.Errorf("hint %q, want it to contain %q", h, tc.hint)
			}
		})
	}
}

func TestStderrFilterForwardsMessages(t *testing.T) {
	var fwd strings.Builder
	f := newStderrFilter("bsrecv", &fwd, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := child.NewLineWriter(f.line)
	io.WriteString(w, "bsrecv: received home.1\nWarning: Permanently added 'x'\nbsrecv: error: boom\nbsrecv: skipped home.0\nssh: bsrecv: not its line")
	w.Flush()
	if want := "bsrecv: received home.1\nbsrecv: skipped home.0\n"; fwd.String() != want {
		t.Errorf("forwarded %q, want %q", fwd.String(), want)
	}
	if r := f.result(); r.err == nil || r.err.Error() != "boom" || len(r.other) != 2 {
		t.Errorf("result %+v", r)
	}
	// A flood without newlines stays bounded.
	io.WriteString(w, strings.Repeat("x", 10*child.MaxLine))
	w.Flush()
	for _, l := range f.result().other {
		if len(l) > child.MaxLine {
			t.Fatalf("kept a line of %d bytes", len(l))
		}
	}
}
