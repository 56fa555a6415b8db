package test

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/buttersink/buttersink/lib/version"
	"github.com/buttersink/buttersink/test/harness"
)

// maxInstalled is the bound on the installed commands (du, hard
// links counted once).
const maxInstalled = 40_000_000

// installedCommands are the commands make install must install: one per
// command package (cmd/bs and cmd/bs-s3 are the binaries they run as).
func installedCommands(t *testing.T) []string {
	t.Helper()
	dirs, err := os.ReadDir(filepath.Join(harness.Root(), "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, d := range dirs {
		if d.IsDir() && d.Name() != "bs" && d.Name() != "bs-s3" {
			cmds = append(cmds, d.Name())
		}
	}
	return cmds
}

// TestInstall: make install DESTDIR=... PREFIX=/usr installs every
// command (hard links to two binaries, at most 40 MB), reporting the
// release; the installed systemd service's ExecStart, run with its
// EnvironmentFile as systemd would (PID 1 here is not systemd, so no
// systemd-run), snapshots a loop btrfs and stores it in a file:// store
// using only installed files; the completion scripts load.
func TestInstall(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireCommand(t, "make")
	harness.RequireCommand(t, "age-keygen")
	src := harness.Btrfs(t, 512)
	work := t.TempDir()
	dest := filepath.Join(work, "dest")
	mk := exec.Command("make", "install", "DESTDIR="+dest, "PREFIX=/usr")
	mk.Dir = harness.Root()
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(dest, "usr/bin")

	t.Run("commands", func(t *testing.T) {
		binaries := map[uint64]string{}
		for _, b := range []string{"bs", "bs-s3"} {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(bin, b), &st); err != nil {
				t.Fatal(err)
			}
			binaries[st.Ino] = b
		}
		for _, c := range installedCommands(t) {
			p := filepath.Join(bin, c)
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				t.Errorf("%s not installed: %v", c, err)
				continue
			}
			if c == "buttersink" {
				continue
			}
			if _, ok := binaries[st.Ino]; !ok {
				t.Errorf("%s is not a hard link of bs or bs-s3", c)
			}
			out, err := exec.Command(p, "--version").Output()
			if want := c + " (buttersink) " + version.Release; err != nil || !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "GPL-3.0-or-later") {
				t.Errorf("%s --version: %v, %q, want %q... and the licence", c, err, out, want)
			}
			for _, f := range []string{"share/man/man1/" + c + ".1", "share/bash-completion/completions/" + c,
				"share/zsh/site-functions/_" + c, "share/fish/vendor_completions.d/" + c + ".fish"} {
				if _, err := os.Stat(filepath.Join(dest, "usr", f)); err != nil {
					t.Errorf("%s: %v", c, err)
				}
			}
		}
		for _, f := range []string{"bin/bs-ssh-filter", "share/man/man8/bs-ssh-filter.8", "share/man/man5/buttersink-formats.5"} {
			if _, err := os.Stat(filepath.Join(dest, "usr", f)); err != nil {
				t.Error(err)
			}
		}
		du, err := exec.Command("du", "-sb", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.Fields(string(du))[0], 10, 64)
		if err != nil || n > maxInstalled {
			t.Errorf("installed commands: %d bytes (%v), want at most %d", n, err, maxInstalled)
		}
		t.Logf("installed commands: %d bytes", n)
	})

	t.Run("completion", func(t *testing.T) {
		for _, c := range installedCommands(t) {
			if c == "buttersink" {
				continue
			}
			f := filepath.Join(dest, "usr/share/bash-completion/completions", c)
			// Loaded, registered, and completing a long flag.
			script := fmt.Sprintf(`source %q && complete -p %s && COMP_WORDS=(%s --ver) COMP_CWORD=1 && _%s && echo "${COMPREPLY[*]}"`, f, c, c, c)
			out, err := exec.Command("bash", "-c", script).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "complete -o default -F _"+c+" "+c) || !strings.Contains(string(out), "--verbose --version") {
				t.Errorf("bash completion of %s: %v\n%s", c, err, out)
			}
			for _, sh := range []struct{ shell, file string }{
				{"zsh", "share/zsh/site-functions/_" + c},
				{"fish", "share/fish/vendor_completions.d/" + c + ".fish"},
			} {
				// Parsed only where the shell is installed: the tests do
				// not install zsh and fish for this.
				if _, err := exec.LookPath(sh.shell); err != nil {
					continue
				}
				if out, err := exec.Command(sh.shell, "-n", filepath.Join(dest, "usr", sh.file)).CombinedOutput(); err != nil {
					t.Errorf("%s -n %s: %v\n%s", sh.shell, sh.file, err, out)
				}
			}
		}
	})

	t.Run("service", func(t *testing.T) {
		units := filepath.Join(dest, "usr/lib/systemd/system")
		service := readUnit(t, filepath.Join(units, "buttersink-backup.service"))
		timer := readUnit(t, filepath.Join(units, "buttersink-backup.timer"))
		if timer["Timer.OnCalendar"] == nil || timer["Install.WantedBy"] == nil {
			t.Errorf("timer: %v", timer)
		}
		onFailure := service["Unit.OnFailure"]
		if len(onFailure) != 1 || !strings.HasPrefix(onFailure[0], "buttersink-failure@") {
			t.Fatalf("OnFailure=%q", onFailure)
		}
		failure := readUnit(t, filepath.Join(units, "buttersink-failure@.service"))
		for _, unit := range []map[string][]string{service, failure} {
			for _, exe := range unit["Service.ExecStart"] {
				if p := strings.Fields(strings.TrimLeft(exe, "-@+!:"))[0]; !strings.HasPrefix(p, "/usr/") {
					t.Errorf("ExecStart %q is not an installed absolute path", exe)
				}
			}
		}
		exe := strings.Fields(strings.TrimLeft(service["Service.ExecStart"][0], "-@+!:"))
		envFile := service["Service.EnvironmentFile"]
		if len(envFile) != 1 || !strings.HasPrefix(envFile[0], "/etc/buttersink/") {
			t.Fatalf("EnvironmentFile=%q", envFile)
		}

		// The installed example backup.env, its settings pointed at
		// the test's loop btrfs and a file:// store; later lines win,
		// as in systemd.
		harness.MustSh(t, fmt.Sprintf(`btrfs -q subvolume create %[1]s/home && mkdir %[1]s/snaps && head -c 1M /dev/urandom >%[1]s/home/a.bin
			age-keygen -o %[2]s/identity.txt 2>/dev/null && age-keygen -y %[2]s/identity.txt >%[2]s/recipients.txt`, src, work))
		store := filepath.Join(work, "store")
		if err := os.Mkdir(store, 0o700); err != nil {
			t.Fatal(err)
		}
		metrics := filepath.Join(work, "buttersink.prom")
		example, err := os.ReadFile(filepath.Join(dest, envFile[0]))
		if err != nil {
			t.Fatal(err)
		}
		env := string(example) + fmt.Sprintf("SUBVOLUME=%s/home\nSNAPSHOTS=%s/snaps\nDEST=file://%s/\nAGE_RECIPIENTS=%s/recipients.txt\nMETRICS_FILE=%s\n",
			src, src, store, work, metrics)
		vars := map[string]string{}
		for _, l := range strings.Split(env, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || l[0] == '#' || l[0] == ';' {
				continue
			}
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("backup.env line %q", l)
			}
			vars[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		// systemd's environment: no /usr/local, and not the test's
		// commands: the script must find the installed ones itself.
		cmd := exec.Command(filepath.Join(dest, exe[0]), exe[1:]...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ExecStart %s: %v\n%s", exe, err, out)
		}
		snaps, err := os.ReadDir(filepath.Join(src, "snaps"))
		if err != nil || len(snaps) != 1 || !strings.HasPrefix(snaps[0].Name(), "home.") {
			t.Fatalf("snapshots after the run: %v %v", snaps, err)
		}
		ls, err := exec.Command(filepath.Join(bin, "bsls"), "--json", "file://"+store+"/").Output()
		if err != nil || strings.Count(string(ls), `"kind":"object"`) != 1 || !strings.Contains(string(ls), `"path":"`+snaps[0].Name()+`"`) {
			t.Fatalf("store after the run: %v\n%s", err, ls)
		}
		b, err := os.ReadFile(metrics)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := parseProm(string(b))
		if err != nil || len(samples) == 0 {
			t.Fatalf("metrics file: %d samples, %v\n%s", len(samples), err, b)
		}
	})
}

// TestGoInstallLinks: what go install installs (the two binaries) and
// bs --install-links DIR make every command, and the buttersink script,
// runnable from DIR.
func TestGoInstallLinks(t *testing.T) {
	gobin, links := t.TempDir(), t.TempDir()
	install := exec.Command("go", "install", "./cmd/...")
	install.Dir = harness.Root()
	install.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(gobin)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != "bs bs-s3" {
		t.Fatalf("go install installed %q, want bs and bs-s3", got)
	}
	for _, dir := range []string{links, gobin} {
		if out, err := exec.Command(filepath.Join(gobin, "bs"), "--install-links", dir).CombinedOutput(); err != nil {
			t.Fatalf("bs --install-links %s: %v\n%s", dir, err, out)
		}
		for _, c := range installedCommands(t) {
			out, err := exec.Command(filepath.Join(dir, c), "--version").Output()
			if err != nil || !strings.HasPrefix(string(out), c+" (buttersink) "+version.Release) {
				t.Errorf("%s/%s --version: %v, %q", dir, c, err, out)
			}
		}
	}
	// Relative links beside the binaries, absolute ones elsewhere.
	if l, err := os.Readlink(filepath.Join(gobin, "bsplan")); err != nil || l != "bs-s3" {
		t.Errorf("bsplan beside bs: %q %v", l, err)
	}
	if l, err := os.Readlink(filepath.Join(links, "bsls")); err != nil || l != filepath.Join(gobin, "bs") {
		t.Errorf("bsls elsewhere: %q %v", l, err)
	}
	// An unknown command is a usage error.
	if err := exec.Command(filepath.Join(gobin, "bs"), "bsnope").Run(); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
		t.Errorf("bs bsnope: %v, want exit 2", err)
	}
}

// readUnit reads a systemd unit file as "Section.Key" → values.
func readUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[' && l[len(l)-1] == ']':
			section = l[1 : len(l)-1]
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s: line %q", path, l)
			}
			unit[section+"."+strings.TrimSpace(k)] = append(unit[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return unit
}

// promSample is one sample of the Prometheus text exposition format.
type promSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

var (
	promName  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promLabel = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)
)

// parseProm parses the Prometheus text exposition format strictly: HELP
// and TYPE lines (one TYPE per metric, before its samples, a known
// type), samples with well-formed labels and escapes, a float value and
// an optional integer timestamp, and a final newline.
func parseProm(text string) ([]promSample, error) {
	if text != "" && !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("no final newline")
	}
	typed := map[string]bool{}
	seen := map[string]bool{}
	var out []promSample
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(what string) error { return fmt.Errorf("line %d %q: %s", i+1, l, what) }
		if strings.TrimSpace(l) == "" {
			continue
		}
		if strings.HasPrefix(l, "#") {
			f := strings.Fields(l)
			if len(f) < 2 || (f[1] != "HELP" && f[1] != "TYPE") {
				continue // a comment
			}
			if len(f) < 3 || promName.FindString(f[2]) != f[2] {
				return nil, fail("bad metric name")
			}
			if f[1] == "TYPE" {
				if len(f) != 4 || !strings.Contains(" counter gauge histogram summary untyped ", " "+f[3]+" ") {
					return nil, fail("bad type")
				}
				if typed[f[2]] || seen[f[2]] {
					return nil, fail("TYPE repeated or after samples")
				}
				typed[f[2]] = true
			}
			continue
		}
		s := promSample{Name: promName.FindString(l), Labels: map[string]string{}}
		if s.Name == "" {
			return nil, fail("no metric name")
		}
		rest := l[len(s.Name):]
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				name := promLabel.FindString(rest)
				if name == "" || !strings.HasPrefix(rest[len(name):], `="`) {
					return nil, fail("bad label")
				}
				rest = rest[len(name)+2:]
				var v strings.Builder
				for {
					if rest == "" {
						return nil, fail("unterminated label value")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' {
						if rest == "" {
							return nil, fail("bad escape")
						}
						switch rest[0] {
						case '\\', '"':
							v.WriteByte(rest[0])
						case 'n':
							v.WriteByte('\n')
						default:
							return nil, fail("bad escape")
						}
						rest = rest[1:]
						continue
					}
					v.WriteByte(c)
				}
				if _, dup := s.Labels[name]; dup {
					return nil, fail("repeated label")
				}
				s.Labels[name] = v.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		f := strings.Fields(rest)
		if !strings.HasPrefix(rest, " ") || len(f) < 1 || len(f) > 2 {
			return nil, fail("want a value and an optional timestamp")
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil && f[0] != "NaN" {
			return nil, fail("bad value")
		}
		if f[0] == "NaN" {
			v = math.NaN()
		}
		if len(f) == 2 {
			if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
				return nil, fail("bad timestamp")
			}
		}
		s.Value = v
		seen[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

func TestParseProm(t *testing.T) {
	for _, tt := range []struct {
		text string
		n    int
		ok   bool
	}{
		{"", 0, true},
		{"# HELP a_b x y\n# TYPE a_b gauge\na_b 1\n", 1, true},
		{"a{x=\"1\",y=\"q\\\"\\\\\\n\"} 2.5e3 1700000000000\nb +Inf\nc NaN\n", 3, true},
		{"a{x=\"1\",} 1\n", 1, true},
		{"a 1", 0, false},
		{"1a 1\n", 0, false},
		{"a{x=1} 1\n", 0, false},
		{"a{x=\"1\"\n", 0, false},
		{"a{x=\"\\t\"} 1\n", 0, false},
		{"a{x=\"1\",x=\"2\"} 1\n", 0, false},
		{"a one\n", 0, false},
		{"a 1 2 3\n", 0, false},
		{"a 1 1.5\n", 0, false},
		{"a 1\n# TYPE a gauge\n", 0, false},
		{"# TYPE a gauge\n# TYPE a gauge\n", 0, false},
		{"# TYPE a meter\n", 0, false},
		{"a{} 1\n", 1, true},
	} {
		got, err := parseProm(tt.text)
		if (err == nil) != tt.ok || (tt.ok && len(got) != tt.n) {
			t.Errorf("parseProm(%q) = %d samples, %v; want ok %v, %d", tt.text, len(got), err, tt.ok, tt.n)
		}
	}
}

// TestBsInitCheap: bsls runs as bs, with bsrecv, bssend and checksumdir
// linked in; their package initialisation must not make every bsls start
// dearer (test/bench/bsls.sh). What the runtime reports it allocated
// during initialisation (GODEBUG=inittrace) stays small: a buffer made
// at init, not when needed, shows here.
func TestBsInitCheap(t *testing.T) {
	cmd := exec.Command(filepath.Join(harness.Bin(t), "bsls"), "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bsls --version: %v\n%s", err, out)
	}
	line := regexp.MustCompile(`(?m)^init (\S+) @.* ([0-9]+) bytes, [0-9]+ allocs$`)
	total := 0
	for _, m := range line.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[2])
		total += n
		if n > 64<<10 {
			t.Errorf("package %s allocates %d bytes at init", m[1], n)
		}
	}
	if total == 0 || total > 256<<10 {
		t.Errorf("bsls allocates %d bytes at init, want (0, 256 KiB]:\n%s", total, out)
	}
}
