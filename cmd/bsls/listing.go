// How bsls works: it lists the snapshots at a location and prints them as
// JSON Lines (for the next command in a pipe) or as an aligned table (for
// a person at a terminal).

package bsls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore/objopts"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/units"
)

// Format is how records are printed.
type Format int

// Formats.
const (
	// Auto is a table on a terminal, JSON Lines otherwise.
	Auto Format = iota
	JSON
	Table
)

// Options are bsls's arguments.
type Options struct {
	Location string
	Format   Format
	// All includes writable subvolumes and marks partial receives.
	All bool
	// Remote reaches ssh:// locations (lib/remote).
	Remote remote.Flags
	// Objects reaches s3:// locations (the S3 flags).
	Objects objopts.Options
}

// Run lists opts.Location and prints the records sorted by path.
func Run(ctx context.Context, env *cli.Env, opts Options) error {
	loc, err := location.Parse(opts.Location)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	recs, err := inventory.List(ctx, loc, inventory.Options{All: opts.All, Remote: opts.Remote, Objects: opts.Objects})
	if err != nil {
		return err
	}
	sortByPath(recs)
	if err := Output(env, recs, opts.Format); err != nil {
		return err
	}
	if env.Verbose > 0 {
		env.Log.Info(fmt.Sprintf("%d snapshots at %s", len(recs), loc))
	}
	return nil
}

// Output prints recs to env.Stdout in format (Auto: a table on a
// terminal, else JSON Lines). A reader that stopped early (bsls | head)
// makes it fail quietly.
func Output(env *cli.Env, recs []snapshot.Snapshot, format Format) error {
	if format == Auto {
		format = JSON
		if cli.IsTerminal(env.Stdout) {
			format = Table
		}
	}
	var err error
	if format == Table {
		err = WriteTable(env.Stdout, recs)
	} else {
		err = snapshot.WriteLines(env.Stdout, recs)
	}
	if errors.Is(err, syscall.EPIPE) {
		// The reader has all it wanted (bsls | head): no message, but
		// not success either, as nothing downstream saw the whole list.
		return &cli.ExitError{Code: cli.ExitFailure}
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// sortByPath orders records by path, keeping the order of equal paths;
// cheap for the already sorted lists most sources return.
func sortByPath(recs []snapshot.Snapshot) {
	for i := 1; i < len(recs); i++ {
		if recs[i-1].Path > recs[i].Path {
			sort.SliceStable(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
			return
		}
	}
}

// column is one table column: its heading, its cell for a record, and
// whether it is shown at all for this set of records.
type column struct {
	head string
	cell func(*snapshot.Snapshot) string
	used func(*snapshot.Snapshot) bool
}

var always = func(*snapshot.Snapshot) bool { return true }

var columns = []column{
	{"PATH", func(s *snapshot.Snapshot) string { return s.Path }, always},
	{"UUID", func(s *snapshot.Snapshot) string { return dash(s.UUID.String()) }, always},
	{"PARENT", func(s *snapshot.Snapshot) string { return dash(s.ParentUUID.String()) }, always},
	{"RECEIVED", func(s *snapshot.Snapshot) string { return dash(s.ReceivedUUID.String()) }, always},
	{"CTIME", func(s *snapshot.Snapshot) string { return tableTime(s.CTime) }, always},
	{"REFERENCED", func(s *snapshot.Snapshot) string { return sizeOf(s.Referenced) }, always},
	{"EXCLUSIVE", func(s *snapshot.Snapshot) string { return sizeOf(s.Exclusive) }, always},
	{"STATE", state, func(s *snapshot.Snapshot) bool { return !s.IsObject() && (!s.ReadOnly || s.Partial) }},
	{"KEY", func(s *snapshot.Snapshot) string { return dash(s.Key) }, func(s *snapshot.Snapshot) bool { return s.Key != "" }},
	{"SIZE", func(s *snapshot.Snapshot) string { return sizeOf64(s.Size) }, func(s *snapshot.Snapshot) bool { return s.Size != nil }},
	{"ENCODING", func(s *snapshot.Snapshot) string { return encoding(s) }, func(s *snapshot.Snapshot) bool { return s.IsObject() }},
}

// WriteTable prints the records as an aligned table, with the object
// columns (key, size, encoding) only when some record has them.
func WriteTable(w io.Writer, recs []snapshot.Snapshot) error {
	var cols []column
	for _, c := range columns {
		for i := range recs {
			if c.used(&recs[i]) {
				cols = append(cols, c)
				break
			}
		}
	}
	if len(recs) == 0 {
		cols = columns[:7]
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := make([]string, len(cols))
	for i, c := range cols {
		row[i] = c.head
	}
	fmt.Fprintln(tw, strings.Join(row, "\t"))
	for i := range recs {
		for j, c := range cols {
			row[j] = c.cell(&recs[i])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func state(s *snapshot.Snapshot) string {
	switch {
	case s.Resume != nil:
		// How far the receive got: it goes on from there.
		return "partial " + units.Short(uint64(max(s.Resume.Offset, 0)))
	case s.Partial:
		return "partial"
	case s.ReadOnly:
		return "ro"
	}
	return "rw"
}

func encoding(s *snapshot.Snapshot) string {
	if s.Encoding == "" {
		return "raw"
	}
	return s.Encoding
}

func sizeOf(n *uint64) string {
	if n == nil {
		return "-"
	}
	return units.Short(*n)
}

func sizeOf64(n *int64) string {
	if n == nil || *n < 0 {
		return "-"
	}
	return units.Short(uint64(*n))
}
