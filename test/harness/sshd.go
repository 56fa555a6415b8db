package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SSHD is a real OpenSSH server (Debian's /usr/sbin/sshd) listening on
// 127.0.0.1 on a free port, with throwaway host and client keys in a temp
// dir, accepting root by key only. Sessions get PATH with the built bs
// commands first.
type SSHD struct {
	Port int
	// Dir holds the config, keys, authorized_keys and known_hosts.
	Dir string
	// Key is the client key authorized without restrictions.
	Key string
	// SSH is the value for BS_SSH (or --ssh) that logs in with Key, and
	// Env is "BS_SSH=" + SSH, for harness.Sh.
	SSH string
	Env string

	mu     sync.Mutex
	nkeys  int
	stderr *bytes.Buffer
}

// SSHDOptions tune the server.
type SSHDOptions struct {
	// Path is the PATH of sessions; default: the built commands, then the
	// system directories.
	Path string
}

// StartSSHD starts sshd and stops it at cleanup.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	RequireRoot(t)
	sshd := "/usr/sbin/sshd"
	_, err := os.Stat(sshd)
	Require(t, err == nil, "OpenSSH server at "+sshd)
	RequireCommand(t, "ssh")
	RequireCommand(t, "ssh-keygen")
	if opts.Path == "" {
		opts.Path = Bin(t) + ":/usr/sbin:/usr/bin:/sbin:/bin"
	}
	// sshd refuses to start without its privilege separation directory,
	// which Debian creates only when the service runs.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bs-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &SSHD{Dir: dir, stderr: &bytes.Buffer{}}
	keygen(t, filepath.Join(dir, "host_ed25519"))
	// sshd reads authorized_keys as the user logging in: let any user
	// reach it (keys and config stay private to root).
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Port = freePort(t)
	config := strings.Join([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"PidFile none",
		"PermitRootLogin prohibit-password",
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		// SHLVL=1 keeps bash from sourcing root's ~/.bashrc in every
		// session (it does so only at shell level 1), which can take
		// seconds and could change PATH.
		"SetEnv PATH=" + opts.Path + " SHLVL=1",
		"LogLevel VERBOSE",
		"MaxStartups 100",
		"MaxSessions 100",
		"",
	}, "\n")
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	logw := &lockedWriter{mu: &s.mu, w: s.stderr}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	if err := waitSSH(s.Port, 10*time.Second); err != nil {
		t.Fatalf("sshd on port %d: %v\n%s", s.Port, err, s.Log())
	}
	s.SSH = s.AddKey(t, "")
	s.Key = filepath.Join(dir, "id_1")
	s.Env = "BS_SSH=" + s.SSH
	return s
}

// AddKey makes a new client key, authorizes it with the authorized_keys
// options given (e.g. `command="...",no-pty`; "" for none) and returns
// the ssh command that logs in with it, for BS_SSH.
func (s *SSHD) AddKey(t testing.TB, options string) string {
	t.Helper()
	s.mu.Lock()
	s.nkeys++
	key := filepath.Join(s.Dir, "id_"+strconv.Itoa(s.nkeys))
	s.mu.Unlock()
	keygen(t, key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(pub)) + "\n"
	if options != "" {
		line = options + " " + line
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "authorized_keys"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
	return "ssh -F /dev/null -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes" +
		" -o UserKnownHostsFile=" + filepath.Join(s.Dir, "known_hosts") +
		" -o StrictHostKeyChecking=accept-new"
}

// URL is the ssh:// location of path (absolute) on this server, as root.
func (s *SSHD) URL(path string) string {
	return "ssh://root@127.0.0.1:" + strconv.Itoa(s.Port) + path
}

// Log is what sshd has logged so far.
func (s *SSHD) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func keygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bs-test", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitSSH waits until the server greets with its SSH banner.
func waitSSH(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c net.Conn
		c, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			_, err = c.Read(buf)
			c.Close()
			if err == nil && string(buf) == "SSH-" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", timeout, err)
}
