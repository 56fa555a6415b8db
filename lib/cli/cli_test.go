package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/progress"
	"golang.org/x/sys/unix"
)

// report runs Report with os.Stderr captured.
func report(t *testing.T, err error, interrupted bool) (int, string) {
	t.Helper()
	r, w, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	saved := os.Stderr
	os.Stderr = w
	code := Report("cmd", err, interrupted, nil)
	os.Stderr = saved
	w.Close()
	out, _ := io.ReadAll(r)
	return code, string(out)
}

// TestReport: an error is one line (and its hint); once interrupted,
// whatever failed failed because of the signal: exit 130 and the one line
// "interrupted", whatever the error says.
func TestReport(t *testing.T) {
	for _, c := range []struct {
		name        string
		err         error
		interrupted bool
		code        int
		stderr      string
	}{
		{"ok", nil, false, 0, ""},
		{"ok though interrupted", nil, true, 0, ""},
		{"failure", errors.New("x: broken\nsecond line"), false, 1, "cmd: error: x: broken; second line\n"},
		{"hint", hint.Wrap(errors.New("x: broken"), "try y"), false, 1, "cmd: error: x: broken\ncmd: hint: try y\n"},
		{"usage", UsageError("bad"), false, 2, "cmd: error: bad\n"},
		{"interrupted", fmt.Errorf("s3://b/k: %w", context.Canceled), true, 130, "cmd: error: interrupted\n"},
		{"interrupted, other error", hint.Wrap(errors.New("stdin: stream truncated at byte 7"), "check the sender"), true, 130, "cmd: error: interrupted\n"},
		{"interrupted, silent exit", &ExitError{Code: 1}, true, 1, ""},
		// A name from outside (a snapshot, a key, a lock's holder) may
		// hold control characters: they are shown, never acted on.
		{"control characters", hint.Wrap(errors.New("/dst/a\x1b]0;owned\x07b\u009b2J\xff: exists\rcmd: error: forged"), "x\x1b[2J"), false, 1,
			"cmd: error: /dst/a\\x1b]0;owned\\x07b\\xc2\\x9b2J\\xff: exists cmd: error: forged" + "\n" + `cmd: hint: x\x1b[2J` + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := report(t, c.err, c.interrupted)
			if code != c.code || stderr != c.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr, c.code, c.stderr)
			}
		})
	}
}

// Log lines carry names from outside too: one line, no control character.
func TestLogLineVisible(t *testing.T) {
	var b strings.Builder
	log := slog.New(&handler{name: "cmd", w: &b, level: slog.LevelInfo})
	log.Warn("/dst/a\x1b[2Jb: deleting", "path", "x\ncmd: error: forged")
	if want := `cmd: warn: /dst/a\x1b[2Jb: deleting path=x; cmd: error: forged` + "\n"; b.String() != want {
		t.Errorf("%q, want %q", b.String(), want)
	}
}

func TestProgressMode(t *testing.T) {
	tests := []struct {
		flag           string
		quiet, verbose int
		term           bool
		want           progress.Mode
	}{
		{"auto", 0, 0, true, progress.Bar},
		{"auto", 1, 0, true, progress.None},
		{"auto", 0, 0, false, progress.None},
		{"auto", 0, 1, false, progress.Log},
		{"auto", 1, 1, false, progress.None},
		{"log", 0, 0, true, progress.Log},
		{"log", 1, 0, false, progress.Log},
		{"bar", 0, 0, false, progress.None},
		{"bar", 1, 0, true, progress.Bar},
		{"none", 0, 2, true, progress.None},
	}
	for _, tt := range tests {
		if got := progressMode(tt.flag, tt.quiet, tt.verbose, tt.term); got != tt.want {
			t.Errorf("progressMode(%q, -q×%d, -v×%d, terminal %v) = %v, want %v", tt.flag, tt.quiet, tt.verbose, tt.term, got, tt.want)
		}
	}
}

// On the journal every line carries its syslog priority; on a terminal
// with a progress line, a message blanks the line first, in one write.
func TestLineStyle(t *testing.T) {
	tests := []struct {
		style lineStyle
		level slog.Level
		want  string
	}{
		{lineStyle{}, slog.LevelError, "x\n"},
		{lineStyle{journal: true}, slog.LevelError, "<3>x\n"},
		{lineStyle{journal: true}, slog.LevelWarn, "<4>x\n"},
		{lineStyle{journal: true}, slog.LevelInfo, "<6>x\n"},
		{lineStyle{journal: true}, slog.LevelDebug, "<7>x\n"},
		{lineStyle{clear: true}, slog.LevelInfo, "\r\x1b[Kx\n"},
	}
	for _, tt := range tests {
		if got := tt.style.line(tt.level, "x\n"); got != tt.want {
			t.Errorf("%+v %v: %q, want %q", tt.style, tt.level, got, tt.want)
		}
	}
}

func TestIsJournal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "j")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	unix.Fstat(int(f.Fd()), &st)
	for v, want := range map[string]bool{
		fmt.Sprintf("%d:%d", st.Dev, st.Ino):   true,
		fmt.Sprintf("%d:%d", st.Dev, st.Ino+1): false,
		fmt.Sprintf("%d:%d:", st.Dev, st.Ino):  false,
		"":                                     false, "x:y": false,
	} {
		t.Setenv("JOURNAL_STREAM", v)
		if got := isJournal(f); got != want {
			t.Errorf("JOURNAL_STREAM=%q: %v", v, got)
		}
	}
}

type atExitFlags struct{ Globals }

// TestAtExit: a function given to AtExit gets the exit code the run's
// error maps to, the busy lock's 75 included.
func TestAtExit(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("x"), ExitFailure},
		{UsageError("bad"), ExitUsage},
		{&ExitError{Code: ExitLocked, Err: errors.New("locked")}, ExitLocked},
	} {
		got := -1
		saved := os.Stderr
		os.Stderr, _ = os.Open(os.DevNull)
		code := main("cmd", "test", nil, &atExitFlags{}, func(_ context.Context, env *Env) error {
			env.AtExit(func(c int) { got = c })
			return tc.err
		})
		os.Stderr = saved
		if code != tc.want || got != tc.want {
			t.Errorf("%v: exit %d, AtExit got %d; want %d", tc.err, code, got, tc.want)
		}
	}
}
