package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/version"
	"github.com/buttersink/buttersink/test/harness"
)

// TestSSHHarness checks the server the other ssh tests stand on: key login
// as root works and sessions get exactly the PATH asked for, the built
// commands first.
func TestSSHHarness(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	r := harness.MustSh(t, `$BS_SSH -p `+port(s)+` root@127.0.0.1 'echo "$PATH"; command -v bsls'`, s.Env)
	want := harness.Bin(t) + ":/usr/sbin:/usr/bin:/sbin:/bin\n" + filepath.Join(harness.Bin(t), "bsls") + "\n"
	if r.Stdout != want {
		t.Fatalf("remote PATH and bsls:\n%s\nwant:\n%s", r.Stdout, want)
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
	// The ssh client's configuration applies: host alias, user, port, key.
	cfg := filepath.Join(t.TempDir(), "config")
	conf := "Host backup-test\n  HostName 127.0.0.1\n  User root\n  Port " + port(s) +
		"\n  IdentityFile " + s.Key + "\n  IdentitiesOnly yes\n  BatchMode yes\n  UserKnownHostsFile " +
		filepath.Join(s.Dir, "known_hosts") + "\n  StrictHostKeyChecking accept-new\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	viaConfig := mustSh(t, nil, `bsls --ssh "ssh -F $1" --json --all "ssh://backup-test$2"`, cfg, dir)
	if viaConfig.Stdout != local.Stdout {
		t.Fatalf("listing through an ssh config:\n%s", viaConfig.Stdout)
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
	build := exec.Command("go", "build", "-ldflags", "-X github.com/buttersink/buttersink/lib/version.Build=other-9", "-o", other+"/", "./cmd/bs")
	build.Dir = harness.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	if err := os.Symlink("bs", filepath.Join(other, "bsls")); err != nil {
		t.Fatal(err)
	}
	client := strings.TrimPrefix(strings.SplitN(harness.MustSh(t, "bsls --version").Stdout, "\n", 2)[0], "bsls (buttersink) ")
	server := version.Release + "+other-9"
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
		{"version", skew.SSH, skew.URL("/srv/"), "bsls: error: root@127.0.0.1:" + port(skew) + ": version mismatch: client " + client + ", server " + server, "same buttersink version"},
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

// sendStep prints a plan step that sends snapshot rel of src (a location
// directory, e.g. ssh://…/snaps/) to dst, incrementally from parent ("" =
// full), from the records bsls gives for them.
const sendStep = `
send_step() { # SRC DST REL [PARENT_REL]
	local parent=null
	# bsls names one snapshot relative to its own directory: put back the
	# path relative to SRC.
	if [ -n "${4:-}" ]; then parent=$(bsls --json "$1$4" | jq -c --arg p "$4" '.path = $p'); fi
	printf '{"op":"send","src":"%s","dst":"%s","snapshot":%s,"parent":%s,"clones":[],"size":0,"exact":false}\n' \
		"$1" "$2" "$(bsls --json "$1$3" | jq -c --arg p "$3" '.path = $p')" "$parent"
}
`

// received checks that every snapshot of src is at dst (a local path) as a
// complete received copy: read-only, received UUID = the source's effective UUID
// (received UUID, else UUID), same data.
func received(t *testing.T, src, dst string, names ...string) {
	t.Helper()
	for _, n := range names {
		mustSh(t, nil, `
			s=$(bsls --json "$1$3"); d=$(bsls --json "$2$3")
			[ "$(jq -r ".received_uuid // .uuid" <<<"$s")" = "$(jq -r .received_uuid <<<"$d")" ]
			[ "$(jq -r .readonly <<<"$d")" = true ]
			diff -r "$1$3" "$2$3"`, src, dst, n)
	}
	if r := mustSh(t, nil, `bsls --all --json "$1" | jq -c 'select(.partial == true or .readonly == false)'`, dst); r.Stdout != "" {
		t.Fatalf("partial or writable subvolumes at %s:\n%s", dst, r.Stdout)
	}
}

// TestSSHPush: bssend | bsrecv ssh://… receives on the remote host, full
// then incremental, and prints the remote bsrecv's records.
func TestSSHPush(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	src := makeSnaps(t, harness.Btrfs(t, 256), 2, 2048)
	dst := harness.Btrfs(t, 256) + "/backup/"
	mustSh(t, nil, `mkdir "$1"`, dst)
	env := []string{s.Env}
	r := mustSh(t, env, `
		bssend "$1s1" | bsrecv "$2"
		bssend -p "$1s1" "$1s2" | bsrecv "$2"`, src, s.URL(dst))
	if strings.Count(r.Stdout, "\n") != 2 || !strings.Contains(r.Stdout, `"path":"s2"`) {
		t.Fatalf("bsrecv records:\n%s", r.Stdout)
	}
	received(t, src, dst, "s1", "s2")
	// The same pair again is skipped by the remote bsrecv, not duplicated.
	mustSh(t, env, `bssend -p "$1s1" "$1s2" | bsrecv "$2"`, src, s.URL(dst))
	received(t, src, dst, "s1", "s2")
}

// TestSSHPull: bssend reading steps whose source is ssh:// runs the send on
// the remote host; nested snapshot paths keep their directories.
func TestSSHPull(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	mnt := harness.Btrfs(t, 256)
	src := makeSnaps(t, mnt, 2, 2048)
	mustSh(t, nil, `cd "$1" && mkdir snaps/nested && btrfs -q subvolume snapshot -r vol snaps/nested/n1`, mnt)
	dst := harness.Btrfs(t, 256) + "/"
	env := []string{s.Env}
	r := mustSh(t, env, sendStep+`
		{ send_step "$1" "$2" s1; send_step "$1" "$2" s2 s1; send_step "$1" "$2" nested/n1 s2; } |
			bssend -v | bsrecv "$2" >/dev/null`, s.URL(src), dst)
	received(t, src, dst, "s1", "s2", "nested/n1")
	// Pulled bytes are counted like local ones (the stream is over 2 MiB).
	if !regexp.MustCompile(`bssend: sent 3 snapshots, [2-9][.0-9]* MiB in `).MatchString(r.Stderr) {
		t.Errorf("no byte count for pulled streams:\n%s", r.Stderr)
	}
}

// TestSSHRemoteToRemote: bsplan lists both ssh:// sides, bssend pulls from
// one host and bsrecv pushes to the other; a second plan is empty; -d and
// bsrm delete over ssh what the source no longer has.
func TestSSHRemoteToRemote(t *testing.T) {
	a := harness.StartSSHD(t, harness.SSHDOptions{})
	b := harness.StartSSHD(t, harness.SSHDOptions{})
	src := makeSnaps(t, harness.Btrfs(t, 256), 3, 1024)
	dst := harness.Btrfs(t, 256) + "/"
	// Both servers take the same key here: one BS_SSH for both sides.
	keyB := strings.Replace(b.SSH, b.Key, a.Key, 1)
	pub, err := os.ReadFile(a.Key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(b.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(pub)
	f.Close()
	// Separate known_hosts files: a common one for both keeps working too.
	sshBoth := strings.Replace(keyB, filepath.Join(b.Dir, "known_hosts"), filepath.Join(a.Dir, "known_hosts"), 1)
	env := []string{"BS_SSH=" + sshBoth}
	mustSh(t, env, `bsplan "$1" "$2" | bssend | bsrecv "$2" >/dev/null`, a.URL(src), b.URL(dst))
	received(t, src, dst, "s1", "s2", "s3")
	if r := mustSh(t, env, `bsplan "$1" "$2"`, a.URL(src), b.URL(dst)); r.Stdout != "" {
		t.Fatalf("second plan is not empty:\n%s", r.Stdout)
	}
	mustSh(t, nil, `btrfs -q subvolume delete "$1s1"`, src)
	r := mustSh(t, env, `bsplan -d "$1" "$2" | bsrm "$2"`, a.URL(src), b.URL(dst))
	if !strings.Contains(r.Stdout, `"status":"deleted"`) || !strings.Contains(r.Stdout, `"dst":"`+b.URL(dst)+`"`) {
		t.Fatalf("bsrm output:\n%s", r.Stdout)
	}
	if _, err := os.Stat(dst + "s1"); !os.IsNotExist(err) {
		t.Fatalf("s1 still at the destination: %v", err)
	}
	received(t, src, dst, "s2", "s3")
	// checksumdir computes the digest on the host; equal trees, equal lines.
	l := mustSh(t, env, `checksumdir --stdout "$1s3"`, src)
	rm := mustSh(t, env, `checksumdir --stdout "$1s3"`, b.URL(dst))
	if l.Stdout == "" || l.Stdout != rm.Stdout {
		t.Fatalf("checksumdir: local %q, over ssh %q", l.Stdout, rm.Stdout)
	}
}

// TestSSHInterrupted: killing the ssh client in the middle of a push leaves
// a partial receive on the remote host, in the middle of a pull one here,
// never looking complete and resumable; reruns complete.
func TestSSHInterrupted(t *testing.T) {
	harness.RequireCommand(t, "pv")
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	mnt := harness.Btrfs(t, 512)
	mustSh(t, nil, `cd "$1" && btrfs -q subvolume create vol && head -c 150M /dev/urandom > vol/big && btrfs -q subvolume snapshot -r vol big`, mnt)
	dst := harness.Btrfs(t, 512) + "/"
	env := []string{s.Env}
	r := mustSh(t, env, `
		# pv slows the stream so that ssh is surely killed mid-transfer.
		bssend "$1/big" | pv -q -L 30m | bsrecv "$2" 2>"$3/err" & recv=$!
		for i in $(seq 100); do
			ssh=$(pgrep -P $recv -x ssh || true)
			[ -n "$ssh" ] && break
			sleep 0.1
		done
		sleep 2
		kill -9 $ssh
		if wait $recv; then echo "bsrecv succeeded after its ssh was killed" >&2; exit 1; fi
		cat "$3/err"
		# The remote bsrecv notices its input end and keeps its partial.
		for i in $(seq 300); do
			pgrep -f -- "bsrecv --client-version .* $4" >/dev/null || break
			sleep 0.1
		done
		! pgrep -f -- "bsrecv --client-version .* $4"
		bsls --all --json "$4"`, mnt, s.URL(dst), t.TempDir(), dst)
	if !strings.Contains(r.Stdout, "bsrecv: error: root@127.0.0.1:"+port(s)+": ssh killed by signal 9") {
		t.Errorf("no clear error line for the killed ssh:\n%s", r.Stdout)
	}
	sshPartial(t, r.Stdout, "big")
	mustSh(t, env, `bssend "$1/big" | bsrecv "$2"`, mnt, s.URL(dst))
	received(t, mnt+"/", dst, "big")

	// A pull whose ssh is killed: the local bsrecv keeps its partial.
	pulled := mnt + "/pulled/"
	r = mustSh(t, env, sendStep+`
		mkdir "$2"
		send_step "$1" "$2" big > "$3/plan"
		bssend < "$3/plan" 2>"$3/err" | pv -q -L 30m | bsrecv "$2" || true &
		for i in $(seq 100); do
			ssh=$(pgrep -f -- "-p $4 -- root@127.0.0.1 bssend" || true)
			[ -n "$ssh" ] && break
			sleep 0.1
		done
		sleep 2
		kill -9 $ssh
		wait
		cat "$3/err"
		bsls --all --json "$2"`, s.URL(dst), pulled, t.TempDir(), port(s))
	if !strings.Contains(r.Stdout, "bssend: error: root@127.0.0.1:"+port(s)+": ssh killed by signal 9") {
		t.Errorf("no clear error line for the killed ssh of a pull:\n%s", r.Stdout)
	}
	sshPartial(t, r.Stdout, "big")
	mustSh(t, env, sendStep+`send_step "$1" "$2" big | bssend | bsrecv "$2"`, s.URL(dst), pulled)
	received(t, dst, pulled, "big")
}

// sshPartial fails unless the bsls --all records among out (with other
// lines) show snap as a partial receive with a resume point, writable.
func sshPartial(t *testing.T, out, snap string) {
	t.Helper()
	var recs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "{") {
			recs = append(recs, l)
		}
	}
	for _, s := range srRecords(t, strings.Join(recs, "\n")) {
		if s.Path == snap {
			if !s.Partial || s.ReadOnly || s.Resume == nil {
				t.Fatalf("%s: not a resumable partial receive: %+v", snap, s)
			}
			return
		}
	}
	t.Fatalf("no partial receive of %s:\n%s", snap, out)
}

// TestSSHFilter: keys whose forced command is bs-ssh-filter may run the bs
// commands of their capabilities below their prefix, and nothing else.
// Every refused command line would create a marker file if any shell ever
// ran it; the marker must not exist.
func TestSSHFilter(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	mnt := harness.Btrfs(t, 256)
	prefix := filepath.Join(mnt, "backup")
	mustSh(t, nil, `
		cd "$1"
		btrfs -q subvolume create vol
		echo data > vol/f
		mkdir backup outside
		btrfs -q subvolume snapshot -r vol backup/s1
		btrfs -q subvolume snapshot -r vol backup/s2
		btrfs -q subvolume snapshot -r vol outside/o1
		ln -s ../outside backup/escape
		ln -s / backup/root`, mnt)
	filter := filepath.Join(harness.Root(), "examples", "bs-ssh-filter")
	opts := ",no-pty,no-agent-forwarding,no-port-forwarding,no-X11-forwarding"
	key := func(grant string) string {
		return s.AddKey(t, `command="`+filter+" "+grant+" --path "+prefix+`"`+opts)
	}
	read, appendKey, del := key("--read"), key("--append"), key("--delete")
	sudo := key("--read --sudo")
	marker := filepath.Join(t.TempDir(), "marker")
	P := prefix

	// Command lines sent as they are (ssh joins and sends one string).
	for _, tc := range []struct{ name, ssh, cmd string }{
		{"other command", read, "touch '" + marker + "'"},
		{"shell", read, "sh '-c' 'touch " + marker + "'"},
		{"semicolon", read, "bsls '--json' '" + P + "/'; touch " + marker},
		{"and", read, "bsls '" + P + "/' && touch " + marker},
		{"pipe", read, "bsls '" + P + "/' | touch " + marker},
		{"background", read, "bsls '" + P + "/' & touch " + marker},
		{"command substitution", read, "bsls '" + P + "/$(touch " + marker + ")'"},
		{"backquotes", read, "bsls '" + P + "/`touch " + marker + "`'"},
		{"redirect out", read, "bsls '" + P + "/' > " + marker},
		{"redirect in", read, "bsls '" + P + "/' < /etc/passwd"},
		{"newline", read, "bsls '" + P + "/'\ntouch " + marker},
		{"quote breaking", read, "bsls '" + P + "/'\\''; touch " + marker + "'"},
		{"unquoted", read, "bsls " + P + "/"},
		{"tab", read, "bsls\t'" + P + "/'"},
		{"log flag", read, "bsls '--log' '" + marker + "' '" + P + "/'"},
		{"short log flag", read, "bsls '-l' '" + marker + "' '" + P + "/'"},
		{"unknown flag", read, "bsls '--table' '" + P + "/'"},
		{"extra argument", read, "bsls '" + P + "/' '" + P + "/'"},
		{"dotdot", read, "bsls '" + P + "/../outside/'"},
		{"symlink out", read, "bsls '" + P + "/escape/'"},
		{"symlink to root", read, "bsls '" + P + "/root" + marker + "'"},
		{"relative", read, "bsls 'backup/'"},
		{"parent outside", read, "bssend '-p' '" + P + "/escape/o1' '" + P + "/s1'"},
		{"checksumdir writing files", read, "checksumdir '" + P + "/s1'"},
		{"receive with read key", read, "bsrecv '" + P + "/'"},
		{"delete with read key", read, "bsrm '" + P + "/s1'"},
		{"list with append key", appendKey, "bsls '" + P + "/'"},
		{"delete steps on stdin", del, "bsrm '" + P + "/'"},
		{"delete outside", del, "bsrm '" + P + "/escape/o1'"},
		{"delete the grant itself", del, "bsrm '" + P + "'"},
		{"delete the grant by dot", del, "bsrm '" + P + "/.'"},
		{"delete the grant by dotdot", del, "bsrm '" + P + "/s1/..'"},
		{"delete beside the grant", del, "bsrm '" + P + "/../outside/o1'"},
		{"delete with append key", appendKey, "bsrm '" + P + "/s1'"},
		{"receive outside with append key", appendKey, "bsrecv '" + P + "/../outside/'"},
		{"receive through a symlink", appendKey, "bsrecv '" + P + "/escape/'"},
		{"send with append key", appendKey, "bssend '" + P + "/s1'"},
		{"dollar", read, "bsls '" + P + "/$HOME'"},
		{"glob", read, "bsls '" + P + "/*'"},
		{"double quotes", read, "bsls \"" + P + "/\""},
		{"leading dash path", del, "bsrm '-rf' '" + P + "/s1'"},
		{"dash as path", read, "bsls '-'"},
		{"option as value", read, "bssend '-p' '--no-data' '" + P + "/s1'"},
		{"sudo twice", read, "sudo -n sudo -n bsls '" + P + "/'"},
		{"env prefix", read, "PATH=/tmp bsls '" + P + "/'"},
		{"absolute command", read, "/bin/sh '-c' 'touch " + marker + "'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustSh(t, nil, treeState, mnt).Stdout
			r := sh(t, nil, tc.ssh+` -p "$1" root@127.0.0.1 "$2" </dev/null`, port(s), tc.cmd)
			// The ssh client's own note on a key's first connection is not
			// the filter's.
			r.Stderr = regexp.MustCompile(`(?m)^Warning: Permanently added .*\n`).ReplaceAllString(r.Stderr, "")
			if r.Code == 0 || !strings.HasPrefix(r.Stderr, "bs-ssh-filter: error: denied: ") || strings.Count(r.Stderr, "\n") != 1 {
				t.Errorf("not refused with one line: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatalf("the marker exists: %q ran", tc.cmd)
			}
			if after := mustSh(t, nil, treeState, mnt).Stdout; after != before {
				t.Fatalf("%q changed the filesystem:\nbefore:\n%s\nafter:\n%s", tc.cmd, before, after)
			}
		})
	}
	if r := sh(t, nil, read+` -T -p "$1" root@127.0.0.1 </dev/null`, port(s)); r.Code == 0 || !strings.Contains(r.Stderr, "interactive login is not allowed") {
		t.Errorf("login without a command: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	for _, p := range []string{"o1", "s1", "s2"} {
		if _, err := os.Stat(filepath.Join(mnt, "outside", p)); p == "o1" && err != nil {
			t.Fatalf("outside/o1: %v", err)
		}
	}
	mustSh(t, nil, `[ -d "$1/s1" ] && [ -d "$1/s2" ] && [ -d "$2/o1" ]`, P, filepath.Join(mnt, "outside"))

	// What each capability does allow, through the bs commands.
	url := s.URL(P + "/")
	r := mustSh(t, []string{"BS_SSH=" + read}, `bsls --json "$1"; bsls --sudo --json "$1"`, url)
	if strings.Count(r.Stdout, `"path":"s`) != 4 {
		t.Fatalf("bsls with the read key:\n%s", r.Stdout)
	}
	mustSh(t, []string{"BS_SSH=" + read}, `checksumdir --stdout "$1s1"`, url)
	dst := harness.Btrfs(t, 256) + "/"
	mustSh(t, []string{"BS_SSH=" + read}, sendStep+`send_step "$1" "$2" s1 | bssend | bsrecv "$2"`, url, dst)
	received(t, P+"/", dst, "s1")
	r = sh(t, []string{"BS_SSH=" + read}, `bssend "$1/s1" | bsrecv "$2in/"`, dst, url)
	if r.Code == 0 || !strings.Contains(r.Stderr, "bsrecv: error: root@127.0.0.1:"+port(s)+": denied: bsrecv needs the append capability") {
		t.Fatalf("push with the read key: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	mustSh(t, nil, `mkdir "$1/in"`, P)
	mustSh(t, []string{"BS_SSH=" + appendKey}, `bssend "$1s1" | bsrecv "$2in/"`, dst, url)
	received(t, dst, P+"/in/", "s1")
	r = sh(t, []string{"BS_SSH=" + appendKey}, `bsls "$1"`, url)
	if r.Code == 0 || !strings.Contains(r.Stderr, "denied: bsls needs the read capability") {
		t.Fatalf("bsls with the append key: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	// bsrm with a named snapshot lists its directory first (bsls: read).
	mustSh(t, []string{"BS_SSH=" + del}, `$BS_SSH -p "$1" root@127.0.0.1 "bsrm '$2/s2'"`, port(s), P)
	if _, err := os.Stat(filepath.Join(P, "s2")); !os.IsNotExist(err) {
		t.Fatalf("s2 not deleted with the delete key: %v", err)
	}
	// --sudo in the grant: the command runs through sudo -n, whose
	// secure_path does not hold the test binaries; the error says so.
	r = sh(t, []string{"BS_SSH=" + sudo}, `bsls "$1"`, url)
	if r.Code == 0 || !strings.Contains(r.Stderr, "sudo -n bsls: command not found") {
		t.Fatalf("bsls through the filter's sudo: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
}

// treeState prints every path below $1 with its type, mode, size, owner and
// modification time, and every file's digest: equal before and after, so
// nothing there changed.
const treeState = `cd "$1" && find . -printf '%p %y %m %s %u %T@\n' | sort && find . -type f -exec sha256sum {} + | sort`

// filterRig runs bs-ssh-filter directly, as sshd would, with recording
// stand-ins for the bs commands on PATH: each writes the argv it got to a
// file, so a test sees exactly what the filter ran (or that it ran nothing).
type filterRig struct {
	prefix, bin, rec, marker string
}

func newFilterRig(t testing.TB) *filterRig {
	dir := t.TempDir()
	r := &filterRig{prefix: filepath.Join(dir, "p"), bin: filepath.Join(dir, "bin"), rec: filepath.Join(dir, "rec"), marker: filepath.Join(dir, "marker")}
	for _, d := range []string{r.bin, filepath.Join(r.prefix, "sub dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/", filepath.Join(r.prefix, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub dir", filepath.Join(r.prefix, "inside")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"bsls", "bssend", "bsrecv", "bsrm", "checksumdir", "touch", "sh", "sudo"} {
		script := "#!/bin/sh\nprintf '%s\\0' \"${0##*/}\" \"$@\" > " + r.rec + "\n"
		if err := os.WriteFile(filepath.Join(r.bin, c), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// run gives line to the filter; it returns the exit code, stderr and the
// argv the filter ran (nil: nothing ran).
func (r *filterRig) run(t testing.TB, line string, grant ...string) (int, string, []string) {
	os.Remove(r.rec)
	args := append([]string{filepath.Join(harness.Root(), "examples", "bs-ssh-filter")}, grant...)
	cmd := exec.Command("sh", append(args, "--path", r.prefix)...)
	cmd.Env = []string{"SSH_ORIGINAL_COMMAND=" + line, "PATH=" + r.bin + ":/usr/bin:/bin", "SSH_CLIENT=127.0.0.1 1 22"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(r.rec)
	if err != nil {
		return code, stderr.String(), nil
	}
	argv := strings.Split(string(b), "\x00")
	return code, stderr.String(), argv[:len(argv)-1]
}

// TestSSHFilterQuoting: what the client writes (remote.CommandLine) is what
// the filter runs, paths canonicalised; other spellings are refused.
func TestSSHFilterQuoting(t *testing.T) {
	r := newFilterRig(t)
	all := []string{"--read", "--append", "--delete"}
	P := r.prefix
	for _, tc := range []struct {
		line string
		want []string // nil: refused
	}{
		{remote.CommandLine(false, "bsls", []string{"--client-version", "v1.2-3-gabc", "-q", "--json", "--all", P + "/"}),
			[]string{"bsls", "--client-version", "v1.2-3-gabc", "-q", "--json", "--all", P + "/"}},
		{remote.CommandLine(true, "bsrecv", []string{"-v", P + "/sub dir/"}), []string{"bsrecv", "-v", P + "/sub dir/"}},
		{remote.CommandLine(false, "bssend", []string{"--proto", "2", "-p", P + "/inside/a", "-c", P + "/b", P + "/x/../c"}),
			[]string{"bssend", "--proto", "2", "-p", P + "/sub dir/a", "-c", P + "/b", P + "/c"}},
		{remote.CommandLine(false, "bsrm", []string{"--dry-run", P + "/a", P + "/b"}), []string{"bsrm", "--dry-run", P + "/a", P + "/b"}},
		{remote.CommandLine(false, "checksumdir", []string{"--stdout", "--full", P + "/a"}), []string{"checksumdir", "--stdout", "--full", P + "/a"}},
		{remote.CommandLine(false, "bsrecv", []string{"--wait", P + "/d/"}), []string{"bsrecv", "--wait", P + "/d/"}},
		{remote.CommandLine(false, "bsrm", []string{"--wait-timeout", "90s", P + "/a"}), []string{"bsrm", "--wait-timeout", "90s", P + "/a"}},
		{remote.CommandLine(false, "bsrecv", []string{"--wait-timeout", "0s", P + "/d/"}), nil},
		{remote.CommandLine(false, "bsrecv", []string{"--wait-timeout", "1m", P + "/d/"}), nil},
		{remote.CommandLine(false, "bsrecv", []string{"--wait-timeout", "1/s", P + "/d/"}), nil},
		{remote.CommandLine(false, "bsrecv", []string{"--wait-timeout", P + "/d/"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--wait", P + "/a"}), nil},
		{remote.CommandLine(false, "bsls", []string{P}), []string{"bsls", P}},
		{remote.CommandLine(false, "bsls", []string{P + "/it's"}), nil},
		{remote.CommandLine(false, "bsls", []string{P + "/ü"}), nil},
		{remote.CommandLine(false, "bsls", []string{P + "/escape/etc/"}), nil},
		{remote.CommandLine(false, "bsls", []string{P + "x/"}), nil},
		{remote.CommandLine(false, "bsls", []string{"--json=1", P + "/"}), nil},
		{remote.CommandLine(false, "bsls", []string{"", P + "/"}), nil},
		{remote.CommandLine(false, "bsls", []string{"--client-version", "-v", P + "/"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--proto", "x", P + "/a"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--resume", "4096:" + strings.Repeat("0a", 32), "-p", P + "/a", P + "/b"}),
			[]string{"bssend", "--resume", "4096:" + strings.Repeat("0a", 32), "-p", P + "/a", P + "/b"}},
		{remote.CommandLine(false, "bssend", []string{"--resume", "4096:" + strings.Repeat("0A", 32), P + "/b"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--resume", "4096:" + strings.Repeat("0a", 31), P + "/b"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--resume", ":" + strings.Repeat("0a", 32), P + "/b"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--resume", "-1:" + strings.Repeat("0a", 32), P + "/b"}), nil},
		{remote.CommandLine(false, "bssend", []string{"--resume", P + "/a", P + "/b"}), nil},
		{remote.CommandLine(false, "bsrm", []string{P + "/"}), nil},
		{remote.CommandLine(false, "bsrm", []string{P}), nil},
		{remote.CommandLine(false, "bsrm", []string{P + "/."}), nil},
		{remote.CommandLine(false, "bsrm", []string{P + "/sub dir/.."}), nil},
		{remote.CommandLine(false, "bsrm", []string{P + "/inside/.."}), nil},
		{remote.CommandLine(false, "bsrm", []string{P + "/inside/x"}), []string{"bsrm", P + "/sub dir/x"}},
		{remote.CommandLine(false, "checksumdir", []string{P + "/a"}), nil},
		{remote.CommandLine(false, "bsrecv", []string{P + "/a/", P + "/b/"}), nil},
		{remote.CommandLine(false, "sudo", []string{"bsls", P + "/"}), nil},
		{"sudo -n sudo -n bsls '" + P + "/'", nil},
		{"bsls '" + P + "/' ", nil},
		{" bsls '" + P + "/'", nil},
		{"bsls ''" + P + "/''", nil},
		{"bsls '" + P + "/", nil},
	} {
		code, stderr, argv := r.run(t, tc.line, all...)
		if tc.want == nil {
			if code != 1 || argv != nil || !strings.HasPrefix(stderr, "bs-ssh-filter: error: denied: ") {
				t.Errorf("%q: not refused: exit %d, ran %q, stderr %q", tc.line, code, argv, stderr)
			}
			continue
		}
		if code != 0 || !reflect.DeepEqual(argv, tc.want) {
			t.Errorf("%q: exit %d, ran %q, stderr %q; want %q", tc.line, code, argv, stderr, tc.want)
		}
	}
	// Misconfigured grants are the admin's error (exit 2), and run nothing.
	for _, grant := range [][]string{{"--read", "--path"}, {"--path", "/srv"}, {"--write", "--path", "/srv"}, {"--read", "--path", "srv"}} {
		cmd := exec.Command("sh", append([]string{filepath.Join(harness.Root(), "examples", "bs-ssh-filter")}, grant...)...)
		cmd.Env = []string{"SSH_ORIGINAL_COMMAND=bsls '/srv/'", "PATH=" + r.bin + ":/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "bad configuration") {
			t.Errorf("grant %q: %v, %s", grant, err, out)
		}
	}
}

// FuzzSSHFilter: whatever command line arrives, the filter either refuses
// it (exit 1, one "denied" line, nothing run) or runs one bs command whose
// arguments hold only the allowed characters and whose paths lie below
// the prefix. Nothing else ever runs: no marker file appears.
func FuzzSSHFilter(f *testing.F) {
	r := newFilterRig(f)
	P := r.prefix
	for _, s := range []string{
		"bsls '--json' '" + P + "/'",
		"sudo -n bsrecv '" + P + "/sub dir/'",
		"bssend '-p' '" + P + "/inside/a' '" + P + "/b'",
		"bsrm '" + P + "/a'",
		"bsls '" + P + "/'; touch " + r.marker,
		"bsls '" + P + "/$(touch " + r.marker + ")'",
		"bsls '" + P + "/'\ntouch '" + r.marker + "'",
		"touch '" + r.marker + "'",
		"bsls '--log' '" + r.marker + "' '" + P + "/'",
		"bsls '" + P + "/../../'",
		"bsls '" + P + "/escape/'",
		"bsls ''\\'''",
		"",
		"'",
		"bsls '",
	} {
		f.Add(s)
	}
	allowed := func(s string) bool {
		for _, c := range []byte(s) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_./:=@%+,- ", c) >= 0) {
				return false
			}
		}
		return true
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsRune(line, 0) {
			t.Skip("an environment variable cannot hold NUL")
		}
		code, stderr, argv := r.run(t, line, "--read", "--append", "--delete")
		if _, err := os.Stat(r.marker); err == nil {
			t.Fatalf("%q: the marker was created", line)
		}
		if code != 0 {
			if code != 1 || argv != nil || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "bs-ssh-filter: error: denied: ") {
				t.Fatalf("%q: exit %d, ran %q, stderr %q", line, code, argv, stderr)
			}
			return
		}
		if len(argv) < 2 {
			t.Fatalf("%q: admitted, but ran %q", line, argv)
		}
		switch argv[0] {
		case "bsls", "bssend", "bsrecv", "bsrm", "checksumdir":
		default:
			t.Fatalf("%q: ran %q", line, argv)
		}
		for _, a := range argv[1:] {
			if !allowed(a) || a == "" {
				t.Fatalf("%q: ran %q: argument %q", line, argv, a)
			}
			if strings.HasPrefix(a, "/") && a != P && !strings.HasPrefix(a, P+"/") {
				t.Fatalf("%q: ran %q: path %q outside %s", line, argv, a, P)
			}
			if strings.HasPrefix(a, "-l") || strings.HasPrefix(a, "--log") {
				t.Fatalf("%q: ran %q with a log flag", line, argv)
			}
		}
	})
}

// TestSSHSudoPassword: --sudo for a user sudo does not let run the command
// without a password is one line saying so, with the sudoers hint. The
// user is a throwaway system account, removed at cleanup.
func TestSSHSudoPassword(t *testing.T) {
	harness.RequireCommand(t, "useradd")
	harness.RequireCommand(t, "sudo")
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	user := "bstest" + strconv.Itoa(os.Getpid()%100000)
	// "*": no password, but not locked (sshd refuses locked accounts).
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "-p", "*", user).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", user).Run() })
	url := strings.Replace(s.URL("/tmp/"), "root@", user+"@", 1)
	r := sh(t, []string{s.Env}, `bsls --sudo "$1"`, url)
	want := "bsls: error: " + user + "@127.0.0.1:" + port(s) + ": sudo -n bsls: a password is required\n" +
		"bsls: hint: allow the ssh user to run bsls with NOPASSWD in sudoers on " + user + "@127.0.0.1:" + port(s) + " (see bs-ssh-filter(8))\n"
	if r.Code != 1 || r.Stderr != want {
		t.Fatalf("exit %d, stderr:\n%s\nwant:\n%s", r.Code, r.Stderr, want)
	}
}
