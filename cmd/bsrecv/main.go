// Package bsrecv is the command bsrecv: it receives the btrfs send streams on stdin into a
// directory and prints a snapshot record for each.
package bsrecv

import (
	"context"
	"strings"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/remote"
)

type flags struct {
	cli.Globals
	Remote remote.Flags  `embed:""`
	Lock   lock.Flags    `embed:""`
	Stats  metrics.Flags `embed:""`

	InPlace bool `name:"in-place" help:"Apply every stream into the one directory DEST names (dir:///dir/NAME), which then holds the newest snapshot only."`

	Dest string `arg:"" optional:"" name:"DEST" help:"Directory to receive into: [btrfs://]/dir/, or dir:///dir/ for a plain-directory mirror on any filesystem."`

	Tar     bool     `help:"Write the snapshot the streams make as a pax archive to stdout instead of receiving them (no DEST; see bsrecv(1))."`
	TmpDir  string   `name:"tmpdir" placeholder:"DIR" type:"path" help:"With --tar: apply the streams in a temporary directory in DIR (default $TMPDIR or /tmp)."`
	Include []string `sep:"none" placeholder:"GLOB" help:"With --tar, or dir:// and --in-place: restore only what GLOB matches (repeatable)."`
	Exclude []string `sep:"none" placeholder:"GLOB" help:"With --tar, or dir:// and --in-place: leave out what GLOB matches (repeatable)."`
}

// Main runs bsrecv on args (those after the command's name) and returns its
// exit status; cmd/bs (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bsrecv", "Receive btrfs send streams from stdin into a directory.", &f, func(ctx context.Context, env *cli.Env) error {
		usage := func(msg string) error { return hint.Wrap(cli.UsageError("%s", msg), "see bsrecv --help") }
		switch {
		case f.Tar && f.Dest != "":
			return usage("--tar writes to stdout: no DEST")
		case f.Tar && (f.Remote.Sudo || f.Lock.Wait || f.Lock.WaitTimeout != 0 || f.InPlace):
			return usage("--sudo, --wait, --wait-timeout and --in-place do not go with --tar")
		case f.Tar && f.Stats.MetricsFile != "":
			return usage("--metrics-file does not go with --tar")
		case f.Tar:
			return RunTar(ctx, env, TarOptions{TmpDir: f.TmpDir, Include: f.Include, Exclude: f.Exclude})
		case f.Dest == "":
			return usage("expected DEST, or --tar")
		case f.TmpDir != "":
			return usage("--tmpdir goes with --tar")
		case (len(f.Include) > 0 || len(f.Exclude) > 0) && !strings.HasPrefix(f.Dest, "dir://"):
			return usage("--include and --exclude go with --tar, or with dir:// and --in-place")
		case (len(f.Include) > 0 || len(f.Exclude) > 0) && !f.InPlace:
			return usage("--include and --exclude on dir:// go with --in-place")
		}
		rec := f.Stats.Recorder(f.Dest)
		env.AtExit(rec.AtExit(env.Log))
		return Run(ctx, env, Options{Dest: f.Dest, Remote: f.Remote, Lock: f.Lock, InPlace: f.InPlace, Include: f.Include, Exclude: f.Exclude, Stats: &rec.Stats})
	})
}
