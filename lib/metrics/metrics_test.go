package metrics

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEscapeLabel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"s3://b/p/", "s3://b/p/"},
		{`a"b`, `a\"b`},
		{`a\b`, `a\\b`},
		{"a\nb", `a\nb`},
		{"a\xffb", "a\uFFFDb"},
		{`\"` + "\n", `\\\"\n`},
	} {
		if got := EscapeLabel(tc.in); got != tc.want {
			t.Errorf("EscapeLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriteFileKeepsLastSuccess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.prom")
	dst := "file:///x\"\n/"
	t0 := time.Unix(1700000000, 250000000)
	ok := Run{Destination: dst, Start: t0.Add(-time.Second), End: t0, Stats: Stats{SnapshotsSent: 2, BytesSent: 10, BytesStored: 5, MaxChain: 2}}
	if err := WriteFile(path, ok); err != nil {
		t.Fatal(err)
	}
	failed := Run{Destination: dst, Start: t0.Add(time.Hour), End: t0.Add(time.Hour + time.Second), ExitStatus: 75}
	if err := WriteFile(path, failed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	// A float64 of seconds holds the time to within a microsecond.
	if got := LastSuccess(bytes.NewReader(b), dst); got.Sub(t0).Abs() > time.Microsecond {
		t.Errorf("last success %v, want %v:\n%s", got, t0, b)
	}
	if !strings.Contains(string(b), "buttersink_last_run_exit_status{destination=\"file:///x\\\"\\n/\"} 75\n") {
		t.Errorf("metrics:\n%s", b)
	}
	// Another destination's success is not this one's.
	if got := LastSuccess(bytes.NewReader(b), "file:///y/"); !got.IsZero() {
		t.Errorf("other destination: %v", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files left", len(ents))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestReadStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats")
	for _, s := range []Stats{{Start: 20, MaxChain: 3}, {Start: 10, SnapshotsSent: 2, BytesSent: 100, BytesStored: 50}, {SnapshotsDeleted: 1, MaxChain: 2}} {
		if err := AppendStats(path, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadStats(path)
	want := Stats{Start: 10, SnapshotsSent: 2, BytesSent: 100, BytesStored: 50, SnapshotsDeleted: 1, MaxChain: 3}
	if err != nil || got != want {
		t.Errorf("ReadStats = %+v, %v; want %+v", got, err, want)
	}
	if s, err := ReadStats(path + ".none"); err != nil || s != (Stats{}) {
		t.Errorf("missing file: %+v, %v", s, err)
	}
	for _, bad := range []string{`{"bytes_sent":-1}`, `{"x":1}`, `[]`, "{\"bytes_sent\":1}\n" + strings.Repeat("x", 5000)} {
		os.WriteFile(path, []byte(bad+"\n"), 0o600)
		if _, err := ReadStats(path); err == nil {
			t.Errorf("%.40q: no error", bad)
		}
	}
}

// FuzzFormat: whatever the destination, the metrics are lines of the
// known metrics only, each with one label that reads back as the
// destination.
func FuzzFormat(f *testing.F) {
	for _, s := range []string{"s3://b/p/", "a\"b\\c\nbuttersink_evil 1", "\xff\\\"", "}\n# TYPE x counter"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dst string) {
		var b bytes.Buffer
		if err := Format(&b, Run{Destination: dst, Stats: Stats{MaxChain: 1}}, time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
		label := `{destination="` + EscapeLabel(dst) + `"} `
		for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if strings.HasPrefix(l, "# HELP buttersink_") || strings.HasPrefix(l, "# TYPE buttersink_") {
				continue
			}
			name, rest, ok := strings.Cut(l, "{")
			if !ok || !strings.HasPrefix(name, "buttersink_") || strings.ContainsAny(name, " \"") ||
				!strings.HasPrefix("{"+rest, label) {
				t.Fatalf("line %q", l)
			}
		}
		if got := LastSuccess(&b, dst); !got.Equal(time.Unix(1, 0)) {
			t.Fatalf("last success %v", got)
		}
	})
}

// FuzzReadStats: a stats file of any content is read or refused, never
// merged into negative counts.
func FuzzReadStats(f *testing.F) {
	f.Add([]byte(`{"start":1,"snapshots_sent":2}` + "\n" + `{"max_chain":3}`))
	f.Add([]byte(`{"bytes_sent":-5}`))
	f.Add([]byte("{}\n\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "s")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := ReadStats(path)
		if err == nil && (s.Start < 0 || s.SnapshotsSent < 0 || s.BytesSent < 0 || s.BytesStored < 0 || s.SnapshotsDeleted < 0 || s.MaxChain < 0) {
			t.Fatalf("negative counts %+v", s)
		}
	})
}
