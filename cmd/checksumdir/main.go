// Package checksumdir is the command checksumdir: it writes checksums of directory trees (NAME.ls,
// NAME.files, NAME.sha256sum, as the original ButterSink script did) and
// checks trees against them.
package checksumdir

import (
	"context"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/remote"
)

type flags struct {
	cli.Globals
	Remote remote.Flags `embed:""`

	Check    string   `placeholder:"NAME.sha256sum" help:"Compare DIR with the set saved as NAME.sha256sum (and the .ls, .files, .full next to it); print the differences, exit 1 if any."`
	Stdout   bool     `help:"Write no files; print each DIR's overall digest, the line sha256sum prints for NAME.sha256sum."`
	Full     bool     `help:"Also cover xattrs, symlink targets, device numbers and file attributes, in NAME.full."`
	Portable bool     `help:"Print every directory's link count as 1, as btrfs has it, so a tree restored onto another filesystem gives the same checksums as its btrfs source."`
	Jobs     int      `short:"j" default:"0" help:"Files hashed at once (default: one per CPU)."`
	Dirs     []string `arg:"" name:"DIR" help:"Directories to checksum; the files are written to the working directory, named after DIR's base name."`
}

// Main runs checksumdir on args (those after the command's name) and returns its
// exit status; cmd/bs (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "checksumdir", "Checksum directory trees and verify them.", &f, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, RunOptions{
			Dirs: f.Dirs, Check: f.Check, Stdout: f.Stdout, Full: f.Full, Portable: f.Portable, Jobs: f.Jobs, Remote: f.Remote,
		})
	})
}
