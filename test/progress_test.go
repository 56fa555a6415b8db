package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// progressSource makes three read-only snapshots holding 1 GiB in all
// (512, 256 and 256 MiB), on a btrfs that compresses what is written, so
// that the source and two file:// stores of the whole push fit in a
// small image. A file:// store makes the same point as S3 here: what is
// tested is how the stages of a pipeline share one terminal, and
// bss3put's meter is the same whatever store it writes to.
func progressSource(t *testing.T) (mnt string) {
	mnt = harness.Btrfs(t, 1024)
	harness.MustSh(t, fmt.Sprintf(`cd %s
		mount -o remount,compress-force=zstd:1 .
		btrfs -q subvolume create vol
		mkdir snaps
		head -c 512M /dev/zero > vol/a; btrfs -q subvolume snapshot -r vol snaps/s1
		head -c 256M /dev/zero > vol/b; btrfs -q subvolume snapshot -r vol snaps/s2
		head -c 256M /dev/zero > vol/c; btrfs -q subvolume snapshot -r vol snaps/s3`, mnt))
	return mnt
}

// screen plays a typescript as a terminal shows it (\r, \n, ESC[K, text
// overwriting from the cursor) and calls frame with the line under the
// cursor each time a stage is about to overwrite it (every \r) and with
// each line a newline ends.
func screen(t *testing.T, ts string, frame func(line string, ended bool)) {
	var line []rune
	col := 0
	rs := []rune(ts)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\r' && i+1 < len(rs) && rs[i+1] == '\n':
			// The terminal's own \r before a newline (onlcr).
			col = 0
		case r == '\r':
			frame(string(line), false)
			col = 0
		case r == '\n':
			frame(string(line), true)
			line, col = nil, 0
		case r == 0x1b:
			if i+2 < len(rs) && rs[i+1] == '[' && rs[i+2] == 'K' {
				line = line[:min(col, len(line))]
				i += 2
				continue
			}
			t.Fatalf("unexpected escape sequence at %q", string(rs[i:min(i+12, len(rs))]))
		default:
			for len(line) <= col {
				line = append(line, ' ')
			}
			line[col] = r
			col++
		}
	}
}

var (
	stagePrefix = regexp.MustCompile(`\b(bsplan|bssend|bss3put|bsrecv|bss3get): `)
	barLine     = regexp.MustCompile(`^(bsplan|bssend|bss3put): (measuring \d+/\d+ snapshots|(\d+/\d+|#\d+) \S+ \d+(\.\d)? [KMG]?i?B( of \S+ \S+ \(\d+%\))?( \S+ \S+/s)?( ETA \d+:\d\d)?( · total .*)?)$`)
)

// A push of 1 GiB through bsplan | bssend | bss3put on a terminal: one
// progress line, drawn by one stage at a time, never mixed with another
// stage's text, and the -v messages on lines of their own above it.
func TestProgressOneLineOnTerminal(t *testing.T) {
	harness.RequireCommand(t, "script")
	mnt := progressSource(t)
	store := "file://" + mnt + "/store-tty/"
	ts := filepath.Join(t.TempDir(), "typescript")
	harness.MustSh(t, fmt.Sprintf(`script -qfec 'stty cols 100 rows 40; bsplan %[1]s/snaps/ %[2]s | bssend -v | bss3put -v %[2]s >/dev/null' %[3]s </dev/null >/dev/null`,
		mnt, store, ts))
	b, err := os.ReadFile(ts)
	if err != nil {
		t.Fatal(err)
	}
	var drawers []string // in the order they drew
	bars, logs := 0, map[string]int{}
	screen(t, string(b), func(line string, ended bool) {
		trimmed := strings.TrimRight(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "Script started on ") || strings.HasPrefix(trimmed, "Script done on ") {
			return
		}
		if n := len(stagePrefix.FindAllString(trimmed, -1)); n != 1 || !stagePrefix.MatchString(trimmed[:min(len(trimmed), 9)]) {
			t.Errorf("a screen line holds text of %d stages: %q", n, trimmed)
			return
		}
		if m := barLine.FindStringSubmatch(trimmed); m != nil && !ended {
			if len([]rune(trimmed)) >= 100 {
				t.Errorf("a progress line wider than the terminal: %q", trimmed)
			}
			bars++
			if len(drawers) == 0 || drawers[len(drawers)-1] != m[1] {
				drawers = append(drawers, m[1])
			}
			return
		}
		if !ended {
			t.Errorf("a progress line that is no progress line: %q", trimmed)
			return
		}
		// A message: on its own line, its stage's name first.
		if barLine.MatchString(trimmed) {
			t.Errorf("a progress line was left on the screen: %q", trimmed)
		}
		logs[stagePrefix.FindString(trimmed)]++
	})
	t.Logf("%d progress lines drawn by %v; messages %v", bars, drawers, logs)
	if bars < 3 {
		t.Errorf("only %d progress lines in\n%q", bars, b)
	}
	// One drawer at a time: the line passes on (bsplan, then a stage of
	// the transfer), it never goes back and forth.
	seen := map[string]bool{}
	for _, d := range drawers {
		if seen[d] {
			t.Errorf("stages take turns drawing: %v", drawers)
			break
		}
		seen[d] = true
	}
	if logs["bssend: "] == 0 || logs["bss3put: "] == 0 {
		t.Errorf("the -v messages of both stages are missing: %v", logs)
	}
	if !strings.Contains(string(b), " · total ") || !regexp.MustCompile(`\b[23]/3 s[23] `).Match(b) {
		t.Errorf("no snapshot n of 3 with the run's total in\n%q", b)
	}
}

// Without a terminal, -v prints a status line every --progress-interval
// (each stage its own, as each has its own line in a log).
func TestProgressLogWithoutTerminal(t *testing.T) {
	mnt := progressSource(t)
	store := "file://" + mnt + "/store-log/"
	r := harness.MustSh(t, fmt.Sprintf(`bsplan %[1]s/snaps/ %[2]s | bssend -v --progress-interval 100ms | bss3put -v --progress-interval=100ms %[2]s >/dev/null`, mnt, store))
	status := regexp.MustCompile(`(?m)^(bssend|bss3put): progress: (\d+/\d+|#\d+) \S+ \d`)
	n := map[string]int{}
	for _, m := range status.FindAllStringSubmatch(r.Stderr, -1) {
		n[m[1]]++
	}
	if n["bssend"] < 2 || n["bss3put"] < 2 {
		t.Errorf("status lines %v in\n%s", n, r.Stderr)
	}
	if strings.ContainsAny(r.Stderr, "\r\x1b") {
		t.Errorf("terminal controls in a log:\n%q", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "bssend: progress: 3/3 s3 ") && !strings.Contains(r.Stderr, "bssend: progress: 2/3 s2 ") {
		t.Errorf("no snapshot n of 3 in\n%s", r.Stderr)
	}
}

// When stderr is the journal (JOURNAL_STREAM names it), every line
// carries its syslog priority; when it is not, none does.
func TestProgressJournalPriority(t *testing.T) {
	dir := t.TempDir()
	r := harness.Sh(t, fmt.Sprintf(`cd %s
		exec 2>err
		export JOURNAL_STREAM=$(stat -c %%d:%%i err)
		bss3put -v --progress=log file://%[1]s/store/ </dev/null >/dev/null || :
		bss3put -q file://%[1]s/store/snap </dev/null || :
		bss3put --no-such-flag || :
		bss3put -v file://%[1]s/store/ </dev/null 2>other >/dev/null || :
		cat err`, dir))
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	prio := regexp.MustCompile(`^<[3467]>bss3put: `)
	for _, l := range lines {
		if !prio.MatchString(l) {
			t.Errorf("a journal line without its priority: %q", l)
		}
	}
	if !strings.Contains(r.Stdout, "<7>bss3put: ") || !strings.Contains(r.Stdout, "<3>bss3put: error: ") {
		t.Errorf("want debug and error lines with their priorities:\n%s", r.Stdout)
	}
	other, _ := os.ReadFile(filepath.Join(dir, "other"))
	if len(other) == 0 || strings.Contains(string(other), "<") {
		t.Errorf("stderr elsewhere than the journal: %q", other)
	}
}
