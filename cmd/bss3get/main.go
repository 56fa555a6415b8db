// Package bss3get is the command bss3get: it writes the send streams stored in objects to stdout.
package bss3get

import (
	"context"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/stage"
)

type flags struct {
	cli.Globals
	Store objstore.Flags `embed:""`

	AgeIdentity []string          `sep:"none" name:"age-identity" short:"i" placeholder:"FILE" type:"existingfile" help:"Decrypt age-encrypted objects with the identities in FILE; repeatable."`
	Filter      []string          `sep:"none" name:"filter" placeholder:"CMD" help:"Inverse of a bss3put --filter, run as 'sh -c CMD'; give them in bss3put's order, they run in reverse."`
	Concurrency int               `name:"concurrency" short:"j" default:"4" help:"Ranged GETs in flight."`
	ChunkSize   objstore.ByteSize `name:"chunk-size" placeholder:"SIZE" default:"8MiB" help:"Size of one ranged GET."`
	RestoreTier string            `name:"restore-tier" placeholder:"TIER" help:"Restore archived (GLACIER, DEEP_ARCHIVE) objects at TIER: Standard, Bulk or Expedited; the run then ends with status 75 and says when to come back."`
	RestoreDays int               `name:"restore-days" placeholder:"N" help:"Days a restored copy stays readable (default 7; with --restore-tier)."`
	Objects     []string          `arg:"" optional:"" name:"object" help:"Objects (s3://bucket/prefix/path/KEY or file:///dir/path/KEY); without any, plan steps are read from stdin."`
}

// Main runs bss3get on args (those after the command's name) and returns its
// exit status; cmd/bs-s3 (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bss3get", "Write the send streams stored in objects to stdout, verified, for bsrecv.", &f, func(ctx context.Context, env *cli.Env) error {
		if f.Concurrency < 1 || f.Concurrency > 64 {
			return cli.UsageError("--concurrency %d: want 1 to 64", f.Concurrency)
		}
		if f.ChunkSize < 1<<20 || f.ChunkSize > 1<<30 {
			return cli.UsageError("--chunk-size %d: want 1MiB to 1GiB", f.ChunkSize)
		}
		tier := ""
		if f.RestoreTier != "" {
			var err error
			if tier, err = objstore.ParseRestoreTier(f.RestoreTier); err != nil {
				return cli.UsageError("--restore-tier: %v", err)
			}
		}
		switch {
		case f.RestoreDays != 0 && tier == "":
			return cli.UsageError("--restore-days needs --restore-tier")
		case f.RestoreDays == 0:
			f.RestoreDays = 7
		case f.RestoreDays < 1 || f.RestoreDays > 30000:
			return cli.UsageError("--restore-days %d: want 1 to 30000", f.RestoreDays)
		}
		ids, err := stage.ParseIdentities(f.AgeIdentity)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		return Get(ctx, env, GetOptions{
			Objects:     f.Objects,
			Store:       f.Store.Options(),
			Decoding:    stage.Decoding{Identities: ids, Filters: f.Filter, Stderr: env.Stderr},
			Concurrency: f.Concurrency,
			ChunkSize:   int64(f.ChunkSize),
			RestoreTier: tier,
			RestoreDays: f.RestoreDays,
		})
	})
}
