// Package cli is what every command's main shares: flag parsing with kong,
// the common flags, logging, signal handling and the one mapping from errors
// to exit codes.
//
// Exit codes, for every command:
//
//	0    success
//	1    failure (the error is printed as "NAME: error: ...")
//	2    usage error (bad flags or arguments)
//	75   the destination is locked by another run (EX_TEMPFAIL; see lib/lock)
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
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/version"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitLocked      = 75
	ExitInterrupted = 130
)

// Globals are the flags every command takes. Embed it in the command's
// flag struct.
type Globals struct {
	Quiet   int              `short:"q" type:"counter" help:"Print only warnings and errors; -qq only errors."`
	Verbose int              `short:"v" type:"counter" help:"Print more: debug messages and a closing summary."`
	Log     string           `short:"l" name:"log" placeholder:"LOGFILE" type:"path" help:"Append a debug log to LOGFILE."`
	Version kong.VersionFlag `short:"V" help:"Print the version and exit."`
	// ClientVersion is passed by a client running this command over ssh
	// (lib/remote), so that two different builds never talk to each other.
	ClientVersion string `name:"client-version" hidden:"" placeholder:"V" help:"Fail unless this command's version is V."`
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
}

// ShowProgress reports whether progress should be drawn: stderr is a
// terminal and -q was not given.
func (e *Env) ShowProgress() bool { return e.Quiet == 0 && IsTerminal(e.Stderr) }

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

// Main parses os.Args into flags, runs run, prints any error and returns
// the exit code. Only the command's main calls os.Exit with it.
func Main(name, description string, flags Flags, run func(ctx context.Context, env *Env) error, options ...kong.Option) int {
	return main(name, description, os.Args[1:], flags, run, options...)
}

type exitCode int

func main(name, description string, args []string, flags Flags, run func(ctx context.Context, env *Env) error, options ...kong.Option) (code int) {
	opts := []kong.Option{
		kong.Name(name),
		kong.Description(description),
		kong.Vars{"version": name + " (buttersink) " + version.Version},
		kong.Writers(os.Stdout, os.Stderr),
		kong.Exit(func(c int) { panic(exitCode(c)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	}
	parser, err := kong.New(flags, append(opts, options...)...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", name, err)
		return ExitFailure
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
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", name, oneLine(err.Error()))
		fmt.Fprintf(os.Stderr, "%s: hint: see %s --help\n", name, name)
		return ExitUsage
	}
	g := flags.Common()
	if g.ClientVersion != "" && g.ClientVersion != version.Version {
		fmt.Fprintf(os.Stderr, "%s: error: version mismatch: client %s, server %s\n", name, g.ClientVersion, version.Version)
		fmt.Fprintf(os.Stderr, "%s: hint: install the same buttersink version on both hosts\n", name)
		return ExitFailure
	}
	env := &Env{Name: name, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Quiet: g.Quiet, Verbose: g.Verbose}
	logger, closeLog, err := newLogger(name, g, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", name, err)
		return ExitFailure
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
	return Report(name, err, interrupted, logger)
}

// Report prints err (if any) and returns the exit code for it.
func Report(name string, err error, interrupted bool, log *slog.Logger) int {
	return reportTo(os.Stderr, name, err, interrupted, log)
}

// report prints the lines ParseMessage reads.
func reportTo(w io.Writer, name string, err error, interrupted bool, log *slog.Logger) int {
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
	msg := oneLine(err.Error())
	if log != nil {
		log.Debug("exit", "code", code, "error", msg)
	}
	if interrupted {
		// Whatever failed after the signal (a cancelled request, a
		// stream cut short by the same Ctrl-C upstream) failed because
		// of it: one line says so, the detail is in the debug log.
		fmt.Fprintf(w, "%s: error: interrupted\n", name)
		return ExitInterrupted
	}
	fmt.Fprintf(w, "%s: error: %s\n", name, msg)
	if h := hint.Of(err); h != "" {
		fmt.Fprintf(w, "%s: hint: %s\n", name, oneLine(h))
	}
	return code
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return visible(strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " "))
}

// visible escapes the control characters of s (\x1b, \u009b, ...): a
// message names things from outside (file names are any bytes but NUL
// and '/'), and none may move the terminal's cursor, retitle its window
// or start a line of its own.
func visible(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			_, n := utf8.DecodeRuneInString(s[i:])
			b.WriteString(s[i : i+n]) // a byte that is not UTF-8 stays as it is
		case !unicode.IsControl(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

func newLogger(name string, g *Globals, stderr io.Writer) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	switch {
	case g.Quiet == 1:
		level = slog.LevelWarn
	case g.Quiet >= 2:
		level = slog.LevelError
	case g.Verbose > 0:
		level = slog.LevelDebug
	}
	h := &handler{name: name, w: stderr, level: level}
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
