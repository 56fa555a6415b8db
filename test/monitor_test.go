package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
	"github.com/buttersink/buttersink/test/harness"
)

// sample is one metric line of the exposition format.
type sample struct {
	labels map[string]string
	value  float64
}

var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// parseExposition reads the Prometheus text exposition format strictly:
// every line is a HELP, a TYPE or a sample; a TYPE comes once, before the
// samples of its name; label values use only the escapes \\ \" \n; the
// text ends with a newline. It returns the samples by name.
func parseExposition(t *testing.T, text string) map[string][]sample {
	t.Helper()
	if text == "" || !strings.HasSuffix(text, "\n") {
		t.Fatalf("exposition does not end with a newline: %q", text)
	}
	out := map[string][]sample{}
	typed := map[string]bool{}
	helped := map[string]bool{}
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(why string) { t.Fatalf("line %d %q: %s", n+1, line, why) }
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.SplitN(rest, " ", 3)
			if len(f) < 3 || !metricName.MatchString(f[1]) {
				fail("malformed comment")
			}
			switch f[0] {
			case "HELP":
				if helped[f[1]] {
					fail("second HELP")
				}
				helped[f[1]] = true
			case "TYPE":
				if typed[f[1]] || len(out[f[1]]) > 0 {
					fail("TYPE repeated or after samples")
				}
				if f[2] != "gauge" && f[2] != "counter" && f[2] != "untyped" {
					fail("unknown type")
				}
				typed[f[1]] = true
			default:
				fail("unknown comment")
			}
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 || !metricName.MatchString(line[:i]) {
			fail("no metric name")
		}
		name, rest := line[:i], line[i:]
		s := sample{labels: map[string]string{}}
		if rest[0] == '{' {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq <= 0 || !metricName.MatchString(rest[:eq]) {
					fail("bad label name")
				}
				label := rest[:eq]
				rest = rest[eq+2:]
				var v strings.Builder
				for {
					if rest == "" {
						fail("unterminated label value")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' {
						if rest == "" {
							fail("dangling escape")
						}
						switch rest[0] {
						case '\\':
							v.WriteByte('\\')
						case '"':
							v.WriteByte('"')
						case 'n':
							v.WriteByte('\n')
						default:
							fail("unknown escape")
						}
						rest = rest[1:]
						continue
					}
					v.WriteByte(c)
				}
				if _, dup := s.labels[label]; dup {
					fail("label repeated")
				}
				s.labels[label] = v.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		f := strings.Fields(rest)
		if !strings.HasPrefix(rest, " ") || len(f) < 1 || len(f) > 2 {
			fail("want a value and an optional timestamp")
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			fail(err.Error())
		}
		s.value = v
		out[name] = append(out[name], s)
	}
	return out
}

// metricValues checks every sample of m is labelled destination=dst only
// and returns the values by name.
func metricValues(t *testing.T, m map[string][]sample, dst string) map[string]float64 {
	t.Helper()
	v := map[string]float64{}
	for name, ss := range m {
		if !strings.HasPrefix(name, "buttersink_") || len(ss) != 1 {
			t.Fatalf("metric %s: %d samples", name, len(ss))
		}
		if len(ss[0].labels) != 1 || ss[0].labels["destination"] != dst {
			t.Fatalf("metric %s: labels %q, want destination=%q", name, ss[0].labels, dst)
		}
		v[name] = ss[0].value
	}
	return v
}

func readMetrics(t *testing.T, path, dst string) map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s: mode %v (%v), want 0644", path, fi.Mode(), err)
	}
	return metricValues(t, parseExposition(t, string(b)), dst)
}

// onlyFile checks dir holds the one file name: no temporary file is left.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want only %s", dir, names, name)
	}
}

// storeFigures sums the stream and stored sizes of a store's objects and
// finds its longest restore chain by following send parents.
func storeFigures(t *testing.T, url string) (streams, stored int64, chain int) {
	t.Helper()
	recs := objRecords(t, mustOsh(t, nil, `bsls --json "$1"`, url).Stdout)
	byUUID := map[uuid.UUID]snapshot.Snapshot{}
	for _, r := range recs {
		// An object stored as it came has no separate stream size.
		stored += *r.Size
		if r.StreamSize != nil {
			streams += *r.StreamSize
		} else {
			streams += *r.Size
		}
		byUUID[r.UUID] = r
	}
	for _, r := range recs {
		n := 1
		for p := r.SendParentUUID; !p.IsZero(); p = byUUID[p].SendParentUUID {
			n++
		}
		chain = max(chain, n)
	}
	return streams, stored, chain
}

// hookEnv reads the environment a hook wrote with env(1).
func hookEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook did not run: %v", err)
	}
	e := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "BUTTERSINK_") {
			e[k] = v
		}
	}
	return e
}

// TestMetricsWrapper: buttersink --metrics-file writes the run's metrics
// on success and on failure (keeping the last success time), atomically,
// runs the hook of the outcome with the run in its environment, prints one
// JSON summary line on stdout; a killed run leaves the file as it was.
func TestMetricsWrapper(t *testing.T) {
	mnt := harness.Btrfs(t, 512)
	src := lockSnaps(t, mnt)
	mdir := t.TempDir()
	hooks := t.TempDir()
	mfile := filepath.Join(mdir, "buttersink.prom")
	url := "file://" + t.TempDir() + "/st/"
	env := []string{"H=" + hooks}
	run := func(extra ...string) harness.Result {
		args := append([]string{"-q", "--metrics-file", mfile, "--summary-json",
			"--on-success", `env > "$H/ok"`, "--on-failure", `env > "$H/fail"`}, extra...)
		return osh(t, env, `buttersink "$@"`, args...)
	}

	r := run(src+"/", url)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	m := readMetrics(t, mfile, url)
	streams, stored, chain := storeFigures(t, url)
	want := map[string]float64{
		"buttersink_last_run_exit_status":           0,
		"buttersink_last_run_snapshots_sent":        3,
		"buttersink_last_run_snapshots_deleted":     0,
		"buttersink_last_run_bytes_sent":            float64(streams),
		"buttersink_last_run_bytes_stored":          float64(stored),
		"buttersink_restore_chain_max_length":       float64(chain),
		"buttersink_last_success_timestamp_seconds": m["buttersink_last_run_timestamp_seconds"],
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if chain < 2 || m["buttersink_last_run_duration_seconds"] <= 0 {
		t.Errorf("chain %d, duration %v", chain, m["buttersink_last_run_duration_seconds"])
	}
	onlyFile(t, mdir, "buttersink.prom")
	// One JSON line on stdout, the same figures.
	if strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("stdout %q: want one line", r.Stdout)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("summary %q: %v", r.Stdout, err)
	}
	if sum["destination"] != url || sum["exit_status"] != 0.0 || sum["snapshots_sent"] != 3.0 ||
		sum["bytes_sent"] != float64(streams) || sum["bytes_stored"] != float64(stored) || sum["max_chain"] != float64(chain) {
		t.Errorf("summary %s", r.Stdout)
	}
	e := hookEnv(t, filepath.Join(hooks, "ok"))
	if e["BUTTERSINK_EXIT_STATUS"] != "0" || e["BUTTERSINK_DESTINATION"] != url || e["BUTTERSINK_METRICS_FILE"] != mfile {
		t.Errorf("success hook env %q", e)
	}
	if _, err := strconv.Atoi(e["BUTTERSINK_DURATION"]); err != nil {
		t.Errorf("BUTTERSINK_DURATION %q", e["BUTTERSINK_DURATION"])
	}
	if _, err := os.Stat(filepath.Join(hooks, "fail")); err == nil {
		t.Errorf("failure hook ran after a success")
	}
	lastSuccess := m["buttersink_last_success_timestamp_seconds"]
	old, _ := os.ReadFile(mfile)

	// A run killed mid-transfer leaves the old file, whole, and nothing
	// beside it.
	mustOsh(t, nil, `btrfs -q subvolume snapshot -r "$1/../vol" "$1/s4"`, src)
	osh(t, env, `setsid buttersink -q --metrics-file "$1" --filter 'sleep 30; cat' "$2/" "$3" & p=$!
		sleep 1.5; kill -KILL -$p; wait $p`, mfile, src, url)
	if b, _ := os.ReadFile(mfile); string(b) != string(old) {
		t.Errorf("a killed run changed the metrics file:\n%s", b)
	}
	onlyFile(t, mdir, "buttersink.prom")

	// A failing stage: the failure's status, the last success kept, the
	// failure hook; a failing hook changes nothing.
	os.Remove(filepath.Join(hooks, "ok"))
	r = run("--filter", "exit 3", "--on-failure", `env > "$H/fail"; exit 9`, src+"/", url)
	if r.Code != 1 || !strings.Contains(r.Stderr, "buttersink: warning: hook exited with status 9") {
		t.Fatalf("failing stage: exit %d, stderr %s", r.Code, r.Stderr)
	}
	m = readMetrics(t, mfile, url)
	if m["buttersink_last_run_exit_status"] != 1 || m["buttersink_last_success_timestamp_seconds"] != lastSuccess ||
		m["buttersink_last_run_timestamp_seconds"] <= lastSuccess || m["buttersink_last_run_snapshots_sent"] != 0 {
		t.Errorf("after a failure: %v (last success was %v)", m, lastSuccess)
	}
	if e := hookEnv(t, filepath.Join(hooks, "fail")); e["BUTTERSINK_EXIT_STATUS"] != "1" {
		t.Errorf("failure hook env %q", e)
	}
	if _, err := os.Stat(filepath.Join(hooks, "ok")); err == nil {
		t.Errorf("success hook ran after a failure")
	}
	var fsum map[string]any
	if strings.Count(r.Stdout, "\n") != 1 || json.Unmarshal([]byte(r.Stdout), &fsum) != nil || fsum["exit_status"] != 1.0 {
		t.Errorf("summary of a failure %q", r.Stdout)
	}
	onlyFile(t, mdir, "buttersink.prom")
}

// TestMetricsDeletes: a btrfs destination counts the snapshots received
// and deleted, has no restore chains, and a failing success hook leaves
// the status 0.
func TestMetricsDeletes(t *testing.T) {
	mnt := harness.Btrfs(t, 512)
	src := lockSnaps(t, mnt)
	dst := filepath.Join(mnt, "dst")
	mfile := filepath.Join(t.TempDir(), "m.prom")
	mustOsh(t, nil, `mkdir "$1"`, dst)
	r := osh(t, nil, `buttersink -q --metrics-file "$1" "$2/" "$3/"`, mfile, src, dst)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	m := readMetrics(t, mfile, dst+"/")
	streams := mustOsh(t, nil, `for s in s1 s2 s3; do p=; [ $s = s1 ] || p="-p $1/s$(( ${s#s} - 1 ))"; bssend $p "$1/$s"; done | wc -c`, src).Stdout
	n, _ := strconv.ParseFloat(strings.TrimSpace(streams), 64)
	if m["buttersink_last_run_snapshots_sent"] != 3 || m["buttersink_last_run_bytes_sent"] < n*0.9 || m["buttersink_last_run_bytes_sent"] > n*1.1 {
		t.Errorf("sent: %v, streams of %v bytes", m, n)
	}
	if _, ok := m["buttersink_restore_chain_max_length"]; ok {
		t.Errorf("a btrfs destination has no restore chains: %v", m)
	}
	mustOsh(t, nil, `btrfs -q subvolume delete "$1/s1"`, src)
	r = osh(t, nil, `buttersink -q -d --metrics-file "$1" --on-success 'exit 4' "$2/" "$3/"`, mfile, src, dst)
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning: hook exited with status 4") {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	m = readMetrics(t, mfile, dst+"/")
	if m["buttersink_last_run_snapshots_deleted"] != 1 || m["buttersink_last_run_snapshots_sent"] != 0 || m["buttersink_last_run_exit_status"] != 0 {
		t.Errorf("delete run: %v", m)
	}
}

// TestMetricsHostileDestination: a destination whose name holds quotes,
// backslashes, newlines and shell syntax cannot add a metric line nor run
// a command in a hook: the label holds the name, the hook sees it as a
// value.
func TestMetricsHostileDestination(t *testing.T) {
	mnt := harness.Btrfs(t, 256)
	src := lockSnaps(t, mnt)
	sentinel := t.TempDir()
	hooks := t.TempDir()
	base := t.TempDir()
	mfile := filepath.Join(t.TempDir(), "m.prom")
	// A name with a newline is refused (exit 2) but still reported; one
	// without is used.
	for _, name := range []string{
		"a\"b\\c\nbuttersink_evil{destination=\"x\"} 1\n$(touch dollar)`touch bq`;x'",
		`q"b\\c} 1 $(touch dollar2)` + "`touch bq2`;'",
	} {
		for _, url := range []string{"file://" + base + "/" + name + "/", filepath.Join(mnt, name) + "/"} {
			if !strings.HasPrefix(url, "file:") {
				mustOsh(t, nil, `mkdir "$1"`, url)
			}
			os.Remove(filepath.Join(hooks, "dst"))
			r := osh(t, []string{"H=" + hooks}, `cd "$4" && buttersink -q --metrics-file "$1" --on-success 'printf %s "$BUTTERSINK_DESTINATION" > "$H/dst"' --on-failure 'printf %s "$BUTTERSINK_DESTINATION" > "$H/dst"' "$2/" "$3"`, mfile, src, url, sentinel)
			m := readMetrics(t, mfile, url)
			if len(m) < 7 || m["buttersink_last_run_exit_status"] != float64(r.Code) {
				t.Errorf("%q: exit %d, metrics %v, stderr %s", url, r.Code, m, r.Stderr)
			}
			if !strings.Contains(name, "\n") && r.Code != 0 {
				t.Errorf("%q: exit %d: %s", url, r.Code, r.Stderr)
			}
			if b, err := os.ReadFile(filepath.Join(hooks, "dst")); err != nil || string(b) != url {
				t.Errorf("hook saw %q (%v), want %q", b, err, url)
			}
			if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
				t.Fatalf("%q: a shell ran part of the name: %s", url, ents[0].Name())
			}
		}
	}
}

// TestLockedExit75: every command that takes a destination's lock, and
// the buttersink script, exits 75 when another run holds it, and reports
// that status in its metrics.
func TestLockedExit75(t *testing.T) {
	mnt := harness.Btrfs(t, 256)
	src := lockSnaps(t, mnt)
	dst := filepath.Join(mnt, "dst")
	mustOsh(t, nil, `mkdir "$1" && bssend "$2/s1" > "$3/s1.stream"`, dst, src, mnt)
	sdir := t.TempDir() + "/st/"
	url := "file://" + sdir
	mustOsh(t, nil, `bss3put "$1" < "$2/s1.stream" >/dev/null`, url, mnt)
	ctx := context.Background()
	dl, err := lock.Dir(ctx, dst, dst, lock.Options{Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Release()
	st := store{name: "file", url: url}.open(t)
	sl, err := objstore.Lock(ctx, st, lock.Options{Owner: "test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Release()
	mdir := t.TempDir()
	for i, c := range []struct{ what, script string }{
		{"bsrecv", `bsrecv --metrics-file "$5" "$1/" < "$3/s1.stream"`},
		{"bss3put", `bss3put --metrics-file "$5" "$2" < "$3/s1.stream"`},
		{"bsrm btrfs", `bsrm --metrics-file "$5" "$1/s1"`},
		{"bsrm store", `bsplan "$4/" "$2" >/dev/null; bsls --json "$2" | jq -c --arg d "$2" '{op: "delete", dst: $d, snapshot: .}' | bsrm --metrics-file "$5" "$2"`},
		{"buttersink btrfs", `buttersink --metrics-file "$5" "$4/" "$1/"`},
		{"buttersink store", `buttersink --metrics-file "$5" "$4/" "$2"`},
	} {
		mfile := filepath.Join(mdir, fmt.Sprintf("%d.prom", i))
		r := osh(t, nil, c.script, dst, url, mnt, src, mfile)
		if r.Code != cli.ExitLocked || !strings.Contains(r.Stderr, "is locked by") {
			t.Errorf("%s: exit %d, want %d: %s", c.what, r.Code, cli.ExitLocked, r.Stderr)
			continue
		}
		b, err := os.ReadFile(mfile)
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		var status float64 = math.NaN()
		for _, ss := range parseExposition(t, string(b))["buttersink_last_run_exit_status"] {
			status = ss.value
		}
		if status != cli.ExitLocked {
			t.Errorf("%s: metrics say exit status %v:\n%s", c.what, status, b)
		}
	}
}
