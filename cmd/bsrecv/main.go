// Command bsrecv receives the btrfs send streams on stdin into a
// directory and prints a snapshot record for each.
package main

import (
	"context"
	"os"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/remote"
)

type flags struct {
	cli.Globals
	Remote remote.Flags `embed:""`
	Lock   lock.Flags   `embed:""`

	InPlace bool `name:"in-place" help:"Apply every stream into the one directory DEST names (dir:///dir/NAME), which then holds the newest snapshot only."`

	Dest string `arg:"" name:"DEST" help:"Directory to receive into: [btrfs://]/dir/, or dir:///dir/ for a plain-directory mirror on any filesystem."`
}

func main() {
	var f flags
	os.Exit(cli.Main("bsrecv", "Receive btrfs send streams from stdin into a directory.", &f, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, Options{Dest: f.Dest, Remote: f.Remote, Lock: f.Lock, InPlace: f.InPlace})
	}))
}
