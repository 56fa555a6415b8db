// Package cli is what every command's main shares: flag parsing with kong,
// the common flags, logging, signal handling and the one mapping from errors
// to exit codes.
//
// Exit codes, for every command:
//
//	0    success
//	1    failure (the error is printed as "NAME: error: ...")
//	2    usage error (bad flags or arguments)
//	75   try again later (EX_TEMPFAIL): the destination is locked by another
//	     run (see lib/lock), or bss3get's archived objects are not restored yet
//	130  interrupted by SIGINT or SIGTERM (work in progress was cleaned up)
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/progress"
	"github.com/buttersink/buttersink/lib/version"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitLocked      = 75
	ExitTempFail    = ExitLocked
	ExitInterrupted = 130
)

// Globals are the flags every command takes. Embed it in the command's
// flag struct.
type Globals struct {
	Quiet   int    `short:"q" type:"counter" help:"Print only warnings and errors; -qq only errors."`
	Verbose int    `short:"v" type:"counter" help:"Print more: debug messages and a closing summary."`
	Log     string `short:"l" name:"log" placeholder:"LOGFILE" type:"path" help:"Append a debug log to LOGFILE."`
	// Progress: "auto" is a bar on a terminal, status lines with -v
	// without one, nothing with -q.
	Progress         string           `name:"progress" enum:"auto,bar,log,none" default:"auto" placeholder:"MODE" help:"Show progress as a bar (on a terminal), log (a status line every --progress-interval) or none; default: bar on a terminal, log with -v."`
	ProgressInterval time.Duration    `name:"progress-interval" default:"30s" placeholder:"DUR" help:"Time between two status lines of --progress=log."`
	Version          kong.VersionFlag `short:"V" help:"Print the version and exit."`
	// ClientVersion is passed by a client running this command over ssh
	// (lib/remote), so that two different builds never talk to each other.
	ClientVersion string `name:"client-version" hidden:"" placeholder:"V" help:"Fail unless this command's version is V."`
	// Completion is for make install (lib/cli/completion.go).
	Completion completionFlag `name:"completion" hidden:"" placeholder:"SHELL" help:"Print the completion script for SHELL (bash, zsh or fish) and exit."`
}

// Common returns the embedded globals.
func (g *Globals) Common() *Globals { return g }

// Flags is a command's flag struct embedding Globals.
type Flags interface{ Common() *Globals }

// Env is what a command's run function gets from main.
type Env struct {
	Name   string
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
	Log    *slog.Logger
	// Quiet and Verbose are the counts of -q and -v.
	Quiet, Verbose int
	// Progress is how progress is shown (--progress), every
	// ProgressInterval in its log mode.
	Progress         progress.Mode
	ProgressInterval time.Duration
	atExit           []func(code int)
}

// AtExit has fn called with the exit code once the run's error is mapped
// to it (lib/metrics reports the status of the run it counted).
func (e *Env) AtExit(fn func(code int)) { e.atExit = append(e.atExit, fn) }

// ShowProgress reports whether a progress line is drawn on the terminal.
func (e *Env) ShowProgress() bool { return e.Progress == progress.Bar }

// Meter returns the progress meter of a stage in role, nil when no
// progress is shown. Close it when the run ends.
func (e *Env) Meter(role progress.Role) *progress.Meter {
	if e.Progress == progress.None {
		return nil
	}
	return progress.Open(progress.Options{
		Mode: e.Progress, Name: e.Name, Role: role, Term: e.Stderr,
		Logf:        func(s string) { e.Log.Info("progress: " + s) },
		LogInterval: e.ProgressInterval,
	})
}

// progressMode resolves --progress: given, it is obeyed (but a bar needs
// a terminal); "auto" is a bar on a terminal, status lines with -v
// without one, and nothing with -q.
func progressMode(flag string, quiet, verbose int, term bool) progress.Mode {
	switch {
	case flag == "none", flag == "bar" && !term:
		return progress.None
	case flag == "bar":
		return progress.Bar
	case flag == "log":
		return progress.Log
	case quiet > 0:
		return progress.None
	case term:
		return progress.Bar
	case verbose > 0:
		return progress.Log
	}
	return progress.None
}

// isJournal reports whether f is the journal's stream (systemd sets
// JOURNAL_STREAM to its device and inode for the service's stdout and
// stderr; a child's stderr redirected elsewhere does not match).
func isJournal(f *os.File) bool {
	d, i, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Dev == dev && st.Ino == ino
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ExitError makes a command end with a given code. With a nil Err nothing
// is printed (the command has already reported, e.g. a differing check).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// UsageError is an error in the arguments that kong could not catch.
func UsageError(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// Main parses args (those after the command's name) into flags, runs run,
// prints any error and returns the exit code. Only a main calls os.Exit
// with it.
func Main(args []string, name, description string, flags Flags, run func(ctx context.Context, env *Env) error, options ...kong.Option) int {
	return main(name, description, args, flags, run, options...)
}

type exitCode int

func main(name, description string, args []string, flags Flags, run func(ctx context.Context, env *Env) error, options ...kong.Option) (code int) {
	opts := []kong.Option{
		kong.Name(name),
		kong.Description(description),
		kong.Vars{"version": name + " (buttersink) " + version.Version + "\n" + version.License},
		kong.Writers(os.Stdout, os.Stderr),
		kong.Exit(func(c int) { panic(exitCode(c)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	}
	parser, err := kong.New(flags, append(opts, options...)...)
	if err != nil {
		return Report(name, err, false, nil)
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	if _, err := parser.Parse(args); err != nil {
		return Report(name, &ExitError{Code: ExitUsage, Err: hint.Wrap(err, "see "+name+" --help")}, false, nil)
	}
	g := flags.Common()
	if g.ClientVersion != "" && g.ClientVersion != version.Version {
		return Report(name, hint.Wrap(fmt.Errorf("version mismatch: client %s, server %s", g.ClientVersion, version.Version),
			"install the same buttersink version on both hosts"), false, nil)
	}
	env := &Env{Name: name, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Quiet: g.Quiet, Verbose: g.Verbose,
		Progress: progressMode(g.Progress, g.Quiet, g.Verbose, IsTerminal(os.Stderr)), ProgressInterval: g.ProgressInterval}
	if env.ProgressInterval <= 0 {
		return Report(name, UsageError("--progress-interval %s: must be positive", env.ProgressInterval), false, nil)
	}
	style := stderrStyle(os.Stderr, env.Progress == progress.Bar)
	logger, closeLog, err := newLogger(name, g, os.Stderr, style)
	if err != nil {
		return Report(name, err, false, nil)
	}
	defer closeLog()
	env.Log = logger

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed stdout must surface as EPIPE from write, not kill us
	// before cleanup runs.
	signal.Ignore(syscall.SIGPIPE)

	err = run(ctx, env)
	interrupted := ctx.Err() != nil
	stop()
	code = reportTo(os.Stderr, style, name, err, interrupted, logger)
	for _, fn := range env.atExit {
		fn(code)
	}
	return code
}

// Report prints err (if any) and returns the exit code for it.
func Report(name string, err error, interrupted bool, log *slog.Logger) int {
	return reportTo(os.Stderr, stderrStyle(os.Stderr, false), name, err, interrupted, log)
}

// reportTo prints the lines hint.ParseLine reads (after the style's
// prefixes).
func reportTo(w io.Writer, style lineStyle, name string, err error, interrupted bool, log *slog.Logger) int {
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ee *ExitError
	var coded interface{ ExitCode() int }
	switch {
	case errors.As(err, &ee):
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	case errors.As(err, &coded):
		// A domain package's typed error (lib/remote's usage fault, a
		// busy lock) names its exit status without importing this kit.
		code = coded.ExitCode()
	}
	msg := hint.OneLine(err.Error())
	if log != nil {
		log.Debug("exit", "code", code, "error", msg)
	}
	if interrupted {
		// Whatever failed after the signal (a cancelled request, a
		// stream cut short by the same Ctrl-C upstream) failed because
		// of it: one line says so, the detail is in the debug log.
		io.WriteString(w, style.line(slog.LevelError, hint.Line{Command: name, Kind: hint.KindError, Text: "interrupted"}.String()))
		return ExitInterrupted
	}
	io.WriteString(w, style.line(slog.LevelError, hint.Line{Command: name, Kind: hint.KindError, Text: msg}.String()))
	if h := hint.Of(err); h != "" {
		io.WriteString(w, style.line(slog.LevelError, hint.Line{Command: name, Kind: hint.KindHint, Text: h}.String()))
	}
	return code
}

func newLogger(name string, g *Globals, stderr io.Writer, style lineStyle) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	switch {
	case g.Quiet == 1:
		level = slog.LevelWarn
	case g.Quiet >= 2:
		level = slog.LevelError
	case g.Verbose > 0:
		level = slog.LevelDebug
	}
	h := &handler{name: name, w: stderr, level: level, style: style}
	closeLog := func() {}
	if g.Log != "" {
		f, err := os.OpenFile(g.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		h.file = slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
		closeLog = func() { f.Close() }
	}
	return slog.New(h).With(), closeLog, nil
}
