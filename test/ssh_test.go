package test

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// TestSSHHarness checks the server the other ssh tests stand on: key login
// as root works and sessions find the built commands.
func TestSSHHarness(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	r := harness.MustSh(t, `$BS_SSH -p `+port(s)+` root@127.0.0.1 'command -v bsls'`, s.Env)
	if got, want := strings.TrimSpace(r.Stdout), filepath.Join(harness.Bin(t), "bsls"); got != want {
		t.Fatalf("remote bsls = %q, want %q", got, want)
	}
}

func port(s *harness.SSHD) string { return strings.TrimPrefix(s.URL(""), "ssh://root@127.0.0.1:") }

// sh runs script with positional parameters: bash -c script _ args...
func sh(t *testing.T, env []string, script string, args ...string) harness.Result {
	t.Helper()
	return harness.Sh(t, `set -- `+quoteArgs(args)+"\n"+script, env...)
}

func mustSh(t *testing.T, env []string, script string, args ...string) harness.Result {
	t.Helper()
	return harness.MustSh(t, `set -- `+quoteArgs(args)+"\n"+script, env...)
}

func quoteArgs(args []string) string {
	var q []string
	for _, a := range args {
		q = append(q, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return strings.Join(q, " ")
}

// makeSnaps makes a subvolume under mnt and n read-only snapshots of it
// in mnt/snaps (each adding a file of kib KiB) and returns mnt/snaps/.
func makeSnaps(t *testing.T, mnt string, n, kib int) string {
	t.Helper()
	mustSh(t, nil, `
		cd "$1"
		[ -d vol ] || btrfs -q subvolume create vol
		mkdir -p snaps
		start=$(ls snaps | wc -l)
		for i in $(seq $((start + 1)) $((start + $2))); do
			head -c $(($3 * 1024)) /dev/urandom > vol/f$i
			btrfs -q subvolume snapshot -r vol snaps/s$i
		done`, mnt, itoa(n), itoa(kib))
	return filepath.Join(mnt, "snaps") + "/"
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSSHList: bsls over ssh prints exactly what bsls prints on the host.
func TestSSHList(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	mnt := harness.Btrfs(t, 256)
	dir := makeSnaps(t, mnt, 3, 10)
	env := []string{s.Env}
	local := mustSh(t, env, `bsls --json --all "$1"`, dir)
	remote := mustSh(t, env, `bsls --json --all "$1"`, s.URL(dir))
	if local.Stdout != remote.Stdout || strings.Count(local.Stdout, "\n") != 3 {
		t.Fatalf("remote listing differs from local one:\nlocal:\n%s\nremote:\n%s", local.Stdout, remote.Stdout)
	}
	one := mustSh(t, env, `bsls --json "$1"`, s.URL(dir+"s2"))
	if !strings.Contains(one.Stdout, `"path":"s2"`) || strings.Count(one.Stdout, "\n") != 1 {
		t.Fatalf("one snapshot over ssh: %s", one.Stdout)
	}
	// The remote command's error comes back as this command's, naming the host.
	r := sh(t, env, `bsls "$1"`, s.URL(mnt+"/nonexistent/"))
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "bsls: error: root@127.0.0.1:"+port(s)+": ") || strings.Count(r.Stderr, "error:") != 1 {
		t.Fatalf("missing remote dir: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
}

// TestSSHFailures: each way of not getting to run the remote command is one
// clear line naming the host and the cause.
func TestSSHFailures(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	// A server whose sessions do not have the bs commands on PATH.
	bare := harness.StartSSHD(t, harness.SSHDOptions{Path: "/usr/bin:/bin"})
	// A server with a bsls of another version.
	other := t.TempDir()
	build := exec.Command("go", "build", "-ldflags", "-X github.com/buttersink/buttersink/lib/cli.Version=other-9", "-o", other+"/", "./cmd/bsls")
	build.Dir = harness.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	skew := harness.StartSSHD(t, harness.SSHDOptions{Path: other + ":/usr/bin:/bin"})

	stranger := filepath.Join(t.TempDir(), "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	for _, tc := range []struct {
		name, ssh, url, want, hint string
	}{
		{"unreachable", s.SSH, "ssh://root@127.0.0.1:1/srv/", "bsls: error: root@127.0.0.1:1: unreachable (connection refused)", "sshd running"},
		{"auth", strings.Replace(s.SSH, s.Key, stranger, 1), s.URL("/srv/"), "bsls: error: root@127.0.0.1:" + port(s) + ": authentication failed", "authorized_keys"},
		{"unknown host", s.SSH, "ssh://root@nosuchhost.invalid/srv/", "bsls: error: root@nosuchhost.invalid: unknown host (could not resolve hostname)", ""},
		{"not installed", bare.SSH, bare.URL("/srv/"), "bsls: error: root@127.0.0.1:" + port(bare) + ": bsls: command not found on the remote host", "install buttersink on root@127.0.0.1:" + port(bare)},
		{"version", skew.SSH, skew.URL("/srv/"), "bsls: error: root@127.0.0.1:" + port(skew) + ": version mismatch: client dev, server other-9", "same buttersink version"},
		{"bad ssh command", `ssh "-i`, s.URL("/srv/"), `bsls: error: --ssh "ssh \"-i": unterminated quote`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sh(t, []string{"BS_SSH=" + tc.ssh}, `bsls "$1"`, tc.url)
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code == 0 || lines[0] != tc.want {
				t.Fatalf("exit %d, stderr:\n%s\nwant first line %q", r.Code, r.Stderr, tc.want)
			}
			if tc.hint != "" && (len(lines) != 2 || !strings.Contains(lines[1], "bsls: hint: ") || !strings.Contains(lines[1], tc.hint)) {
				t.Fatalf("stderr:\n%s\nwant a hint containing %q", r.Stderr, tc.hint)
			}
		})
	}
}
