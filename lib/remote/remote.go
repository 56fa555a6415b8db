// Package remote runs bs commands on another host through the system's
// OpenSSH client: an ssh:// location means "run the same command there,
// on the local path", with stdin and stdout as the pipe.
//
// There is no server protocol: the remote side needs only the bs commands
// on its PATH, called with plain, shell-quoted arguments (CommandLine), so
// a forced command on the server (examples/bs-ssh-filter) can decide from
// the command line alone what a key may do.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/buttersink/buttersink/lib/child"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/version"
)

// Flags are the ssh options of every command that takes ssh:// locations.
// Embed it in the command's flag struct.
type Flags struct {
	SSH  string `name:"ssh" env:"BS_SSH" placeholder:"CMD" default:"ssh" help:"The ssh command for ssh:// locations, e.g. \"ssh -i KEY\"."`
	Sudo bool   `name:"sudo" help:"Run the remote command with sudo -n."`
}

// Command is one bs command to run on the host of an ssh:// location.
type Command struct {
	// Name is the bs command, e.g. "bsrecv"; Args its arguments, already
	// rewritten to the remote host's local paths (see Path).
	Name string
	Args []string
	// Stdin feeds the remote command (nil: /dev/null); its stdout goes to
	// Stdout (nil: discarded). An *os.File is handed to ssh as it is, so
	// stream bytes are never copied by this process.
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr receives the remote command's own messages (not its error,
	// which Run returns); Log gets ssh's chatter at debug level.
	Stderr io.Writer
	Log    *slog.Logger
	// Quiet and Verbose are passed on as -q and -v.
	Quiet, Verbose int
}

// Path is the argument a remote bs command takes for loc: the local path
// on that host, with the trailing slash when loc names a directory.
func Path(loc location.Location) string {
	return location.Location{Scheme: location.Btrfs, Dir: loc.Dir, Snapshot: loc.Snapshot}.String()
}

// Host names loc's host in messages: [user@]host[:port].
func Host(loc location.Location) string {
	h := loc.SSHTarget()
	if loc.Port != 0 {
		h += ":" + strconv.Itoa(loc.Port)
	}
	return h
}

// argv is the ssh client's command line for c on loc's host.
func (f Flags) argv(loc location.Location, c *Command) ([]string, error) {
	sshCmd := f.SSH
	if sshCmd == "" {
		sshCmd = "ssh"
	}
	argv, err := SplitCommand(sshCmd)
	if err != nil {
		return nil, fmt.Errorf("--ssh %q: %v", sshCmd, err)
	}
	if loc.Port != 0 {
		argv = append(argv, "-p", strconv.Itoa(loc.Port))
	}
	args := []string{"--client-version", version.Version}
	for i := 0; i < c.Quiet; i++ {
		args = append(args, "-q")
	}
	for i := 0; i < c.Verbose; i++ {
		args = append(args, "-v")
	}
	args = append(args, c.Args...)
	// "--" ends ssh's options; the target and the one command string follow.
	return append(argv, "--", loc.SSHTarget(), CommandLine(f.Sudo, c.Name, args)), nil
}

// Run runs c on loc's host and waits for it. Its error names the host and
// the cause: ssh failing to connect or authenticate, the command missing
// there, sudo wanting a password, or the remote command's own error line.
func (f Flags) Run(ctx context.Context, loc location.Location, c Command) error {
	argv, err := f.argv(loc, &c)
	if err != nil {
		return &UsageError{err}
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Debug("ssh", "argv", argv)
	fwd := c.Stderr
	if fwd == nil {
		fwd = io.Discard
	}
	se := newStderrFilter(c.Name, fwd, log)
	cmd := child.Command("ssh", argv...)
	cmd.Stdin, cmd.Stdout = c.Stdin, c.Stdout
	cmd.StderrLine = se.line
	// On interrupt ask ssh to end the session (the remote command then
	// sees its input end and cleans up) before killing it outright.
	cmd.Grace = 10 * time.Second
	if err := cmd.Start(ctx); err != nil {
		var nf *child.NotFoundError
		if errors.As(err, &nf) {
			return hint.Wrap(fmt.Errorf("%s: ssh client %q not found", Host(loc), argv[0]), "install openssh-client or set --ssh / BS_SSH")
		}
		return fmt.Errorf("%s: start %w", Host(loc), err)
	}
	err = cmd.Wait()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	code := -1
	var ee *child.ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Signal != 0 {
			return fmt.Errorf("%s: ssh killed by signal %d while running %s", Host(loc), ee.Signal, c.Name)
		}
	}
	err = classify(Host(loc), c.Name, code, se.result())
	if code == exitLocked {
		// The remote command found its destination locked: so does this one.
		err = &lockedError{err}
	}
	return err
}

// Exec runs the bs command name with args on loc's host with env's stdin
// and stdout: the one-line dispatch of a command whose location is ssh://.
func Exec(ctx context.Context, env Stdio, f Flags, loc location.Location, name string, args ...string) error {
	return f.Run(ctx, loc, Command{
		Name: name, Args: args,
		Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr, Log: env.Log,
		Quiet: env.Quiet, Verbose: env.Verbose,
	})
}

// Stdio is what a command run over ssh is joined to: the local streams,
// the logger, and the -q and -v counts it is given.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Log            *slog.Logger
	Quiet, Verbose int
}

// UsageError is a fault in the arguments (an ssh option, a location):
// the command exits 2, as for a bad flag.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is cli.ExitUsage.
func (e *UsageError) ExitCode() int { return 2 }

// exitLocked is cli.ExitLocked, a remote command's "destination locked".
const exitLocked = 75

// lockedError is a remote command that found its destination locked.
type lockedError struct{ Err error }

func (e *lockedError) Error() string { return e.Err.Error() }
func (e *lockedError) Unwrap() error { return e.Err }

// ExitCode is cli.ExitLocked: this command's destination is locked too.
func (e *lockedError) ExitCode() int { return exitLocked }
