// Package bsplan is the command bsplan: it decides what to send from one location to another, from
// which parent, and what to delete, and prints the plan as JSON Lines.
package bsplan

import (
	"context"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/remote"
)

type flags struct {
	cli.Globals
	Remote  remote.Flags   `embed:""`
	Objects objstore.Flags `embed:""`

	DryRun           bool   `short:"n" name:"dry-run" help:"Print only the summary, no steps."`
	Delete           bool   `short:"d" name:"delete" help:"Also plan deleting destination snapshots the source does not have (never one a kept chain needs)."`
	Estimate         bool   `short:"e" name:"estimate" help:"Estimate sizes instead of measuring them with metadata-only sends."`
	MaxChain         int    `name:"max-chain" placeholder:"N" help:"Longest restore chain at object-store destinations (default 8; btrfs destinations have none)."`
	Schedule         string `name:"schedule" placeholder:"POLICY" help:"Pick parents by calendar period and send what the policy keeps, e.g. \"1y 3m 30d 24h\"."`
	TZ               string `name:"tz" placeholder:"ZONE" help:"Time zone of the schedule's periods, e.g. Europe/Berlin (default: TZ, else the system's)."`
	Now              string `name:"now" placeholder:"TIME" help:"Apply the schedule as at TIME (RFC 3339) instead of now."`
	Prune            bool   `name:"prune" help:"With --schedule: also plan deleting what the policy no longer keeps."`
	NoResume         bool   `name:"no-resume" help:"Send every stream whole, also one the destination holds in part from an interrupted receive (default: resume it)."`
	AllowEmptySource bool   `name:"allow-empty-source" help:"With -d: plan deleting every destination snapshot even when the source has none (else refused: an unmounted source looks empty)."`
	SrcList          string `name:"src-list" placeholder:"FILE" type:"path" help:"Plan from saved bsls output of the source (- for stdin) instead of listing it."`
	DstList          string `name:"dst-list" placeholder:"FILE" type:"path" help:"Plan from saved bsls output of the destination instead of listing it."`

	// The buttersink script's run report: bsplan holds it because it
	// runs first and knows SRC and DST; the format is lib/metrics'.
	StatsFile   string `name:"stats-file" hidden:"" placeholder:"FILE" type:"path" help:"Append the plan's start and longest destination chain to FILE as a JSON line."`
	Report      int    `name:"report" hidden:"" default:"-1" placeholder:"STATUS" help:"Instead of planning, report a run that ended with STATUS from the lines of --stats-file."`
	MetricsFile string `name:"metrics-file" hidden:"" placeholder:"FILE" type:"path" help:"With --report: write Prometheus textfile-collector metrics to FILE."`
	SummaryJSON bool   `name:"summary-json" hidden:"" help:"With --report: print a JSON summary line."`

	Src string `arg:"" name:"SRC" help:"SRC/ for every read-only snapshot below SRC, SRC/NAME for one."`
	Dst string `arg:"" name:"DST" help:"Destination directory; relative paths below SRC are kept below it."`
}

// Main runs bsplan on args (those after the command's name) and returns its
// exit status; cmd/bs-s3 (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bsplan", "Plan what to send from SRC to DST and from which parents, as JSON Lines steps.", &f, func(ctx context.Context, env *cli.Env) error {
		if f.Report >= 0 {
			return metrics.Report(env.Stdout, f.StatsFile, f.MetricsFile, f.SummaryJSON, f.Dst, f.Report)
		}
		if f.MetricsFile != "" || f.SummaryJSON {
			return cli.UsageError("--metrics-file and --summary-json go with --report")
		}
		rec := metrics.Flags{StatsFile: f.StatsFile}.Recorder(f.Dst)
		env.AtExit(rec.AtExit(env.Log))
		return Run(ctx, env, Options{
			Src: f.Src, Dst: f.Dst, SrcList: f.SrcList, DstList: f.DstList,
			DryRun: f.DryRun, Delete: f.Delete, Estimate: f.Estimate, MaxChain: f.MaxChain,
			Schedule: f.Schedule, TZ: f.TZ, Now: f.Now, Prune: f.Prune, AllowEmptySource: f.AllowEmptySource, NoResume: f.NoResume,
			Remote: f.Remote, Objects: f.Objects.Options(), Stats: &rec.Stats,
		})
	})
}
