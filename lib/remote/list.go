package remote

import (
	"bytes"
	"context"
	"io"
	"log/slog"

	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// List runs bsls on loc's host and returns its records, paths relative to
// loc.Dir as for a local listing. Remote messages go to stderr.
func (f Flags) List(ctx context.Context, loc location.Location, all bool, stderr io.Writer, log *slog.Logger) ([]snapshot.Snapshot, error) {
	args := []string{"--json"}
	if all {
		args = append(args, "--all")
	}
	var out bytes.Buffer
	err := f.Run(ctx, loc, Command{
		Name: "bsls", Args: append(args, Path(loc)),
		Stdout: &out, Stderr: stderr, Log: log,
	})
	if err != nil {
		return nil, err
	}
	return jsonl.ReadAll[snapshot.Snapshot](&out, "bsls on "+Host(loc))
}
