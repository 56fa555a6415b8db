// How bsls works: it lists the snapshots at a location and prints them as
// JSON Lines (for the next command in a pipe) or as an aligned table (for
// a person at a terminal).

package bsls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"syscall"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore/objopts"
	"github.com/buttersink/buttersink/lib/remote"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/table"
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

// View is what is printed about the records.
type View int

// Views.
const (
	// Records is one line per snapshot; on a terminal (Auto format) an
	// object-store directory whose snapshots fall under more than one
	// prefix shows as its Inventory instead.
	Records View = iota
	// Tree is the snapshots as their restore chains.
	Tree
	// Inventory is one line per prefix: how many snapshots, their size,
	// and the newest with its age.
	Inventory
	// RecordsOnly is Records also on a terminal (--table).
	RecordsOnly
)

// Options are bsls's arguments.
type Options struct {
	Location string
	Format   Format
	View     View
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
	out := output{Stdout: env.Stdout, Format: opts.Format, View: opts.View, Now: time.Now()}
	if out.Format == Auto {
		out.Format = JSON
		if cli.IsTerminal(env.Stdout) {
			out.Format = Table
			out.Width = table.Width(env.Stdout)
			if out.View == Records && loc.IsObjectStore() && loc.Snapshot == "" && manyPrefixes(recs) {
				out.View = Inventory
			}
		}
	} else if out.Format == Table {
		out.Width = table.Width(env.Stdout)
	}
	if err := out.write(recs); err != nil {
		return err
	}
	if env.Verbose > 0 {
		env.Log.Info(fmt.Sprintf("%d snapshots at %s", len(recs), loc))
	}
	return nil
}

// manyPrefixes reports whether recs fall under more than one prefix (a
// bucket of many hosts).
func manyPrefixes(recs []snapshot.Snapshot) bool {
	for i := range recs {
		if inventory.PrefixOf(recs[i].Path) != inventory.PrefixOf(recs[0].Path) {
			return true
		}
	}
	return false
}

// output is where and how records are printed.
type output struct {
	Stdout io.Writer
	Format Format
	View   View
	// Width cuts a table to a terminal's width (0: no cut).
	Width int
	// Now is what ages are counted to.
	Now time.Time
}

// write prints recs. A reader that stopped early (bsls | head) makes it
// fail quietly.
func (o output) write(recs []snapshot.Snapshot) error {
	var err error
	switch {
	case o.View == Tree && o.Format == Table:
		err = treeTable(recs, inventory.Tree(recs)).Write(o.Stdout, o.Width)
	case o.View == Tree:
		err = writeTreeJSON(o.Stdout, recs, inventory.Tree(recs))
	case o.View == Inventory && o.Format == Table:
		err = inventoryTable(inventory.Summarize(recs), o.Now).Write(o.Stdout, o.Width)
	case o.View == Inventory:
		err = writeInventoryJSON(o.Stdout, inventory.Summarize(recs), o.Now)
	case o.Format == Table:
		err = recordTable(recs).Write(o.Stdout, o.Width)
	default:
		err = snapshot.WriteLines(o.Stdout, recs)
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

// column is one table column: its heading and its cell for a record.
type column struct {
	head string
	cell func(*snapshot.Snapshot) string
}

// columns are the record table's; columns empty for every record are
// left out (table.Write), the first seven shown even without records.
var columns = []column{
	{"PATH", func(s *snapshot.Snapshot) string { return s.Path }},
	{"UUID", func(s *snapshot.Snapshot) string { return dash(s.UUID.String()) }},
	{"PARENT", func(s *snapshot.Snapshot) string { return dash(s.ParentUUID.String()) }},
	{"RECEIVED", func(s *snapshot.Snapshot) string { return dash(s.ReceivedUUID.String()) }},
	{"CTIME", func(s *snapshot.Snapshot) string { return table.Time(s.CTime) }},
	{"REFERENCED", func(s *snapshot.Snapshot) string { return sizeOf(s.Referenced) }},
	{"EXCLUSIVE", func(s *snapshot.Snapshot) string { return sizeOf(s.Exclusive) }},
	{"STATE", state},
	{"KEY", func(s *snapshot.Snapshot) string { return dash(s.Key) }},
	{"SIZE", func(s *snapshot.Snapshot) string { return sizeOf64(s.Size) }},
	{"ENCODING", encoding},
	{"STORED", func(s *snapshot.Snapshot) string { return table.Time(s.Stored) }},
}

func recordTable(recs []snapshot.Snapshot) *table.Table {
	t := &table.Table{Keep: 7, Whole: []string{"CTIME", "REFERENCED", "EXCLUSIVE", "STATE", "SIZE", "ENCODING", "STORED"}}
	for _, c := range columns {
		t.Head = append(t.Head, c.head)
	}
	// STATE says "ro" only beside something that is not.
	showState := false
	for i := range recs {
		showState = showState || recs[i].Partial || !recs[i].IsObject() && !recs[i].ReadOnly
	}
	for i := range recs {
		row := make([]string, len(columns))
		for j, c := range columns {
			row[j] = c.cell(&recs[i])
		}
		if !showState {
			row[stateColumn] = ""
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// stateColumn is the index of STATE in columns.
const stateColumn = 7

func dash(s string) string {
	if s == "" {
		return table.Empty
	}
	return s
}

// state is shown for what is not a plain read-only snapshot: a writable
// subvolume or a partial receive, or the pieces of a stream whose set
// is not whole (bsls --all).
func state(s *snapshot.Snapshot) string {
	switch {
	case s.IsObject() && s.Partial:
		return "partial"
	case s.IsObject():
		return ""
	case s.Resume != nil:
		// How far the receive got: it goes on from there.
		return "partial " + units.Bytes(max(s.Resume.Offset, 0))
	case s.Partial:
		return "partial"
	case s.ReadOnly:
		return "ro"
	}
	return "rw"
}

func encoding(s *snapshot.Snapshot) string {
	switch {
	case !s.IsObject():
		return ""
	case s.Encoding == "":
		return "raw"
	}
	return s.Encoding
}

func sizeOf(n *uint64) string {
	if n == nil {
		return table.Empty
	}
	return units.Bytes(int64(min(*n, math.MaxInt64)))
}

func sizeOf64(n *int64) string {
	if n == nil || *n < 0 {
		return table.Empty
	}
	return units.Bytes(*n)
}
