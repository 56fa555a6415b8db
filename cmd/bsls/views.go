package bsls

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/table"
)

// maxIndent caps the indentation of a chain in the tree table: chains of
// hundreds of incrementals are usual, and CHAIN gives the exact depth.
const maxIndent = 12

// treeTable is the restore chains for a person: each snapshot indented
// below the one it is restored on top of.
func treeTable(recs []snapshot.Snapshot, nodes []inventory.Node) *table.Table {
	t := &table.Table{Head: []string{"SNAPSHOT", "SIZE", "CHAIN", "RESTORE", "TIME", "KEY", "NOTE"}, Keep: 3,
		Whole: []string{"SIZE", "CHAIN", "RESTORE", "TIME"}}
	for _, n := range nodes {
		r := &recs[n.Rec]
		name := r.Path
		if n.Depth > 0 {
			name = strings.Repeat("  ", min(n.Depth, maxIndent)-1) + "└ " + name
		}
		t.Rows = append(t.Rows, []string{name, sizeOf64(r.Size), strconv.Itoa(n.Chain), sizeOf64(n.ChainSize),
			table.Time(inventory.Time(r)), r.Key, n.Broken})
	}
	return t
}

// treeRecord is one line of bsls --tree --json (buttersink-formats(5)).
type treeRecord struct {
	Snapshot  *snapshot.Snapshot `json:"snapshot"`
	Depth     int                `json:"depth"`
	Chain     int                `json:"chain"`
	ChainSize *int64             `json:"chain_size"`
	Children  int                `json:"children"`
	Broken    string             `json:"broken,omitempty"`
}

func writeTreeJSON(w io.Writer, recs []snapshot.Snapshot, nodes []inventory.Node) error {
	jw := jsonl.NewWriter(w)
	for _, n := range nodes {
		if err := jw.Write(treeRecord{&recs[n.Rec], n.Depth, n.Chain, n.ChainSize, n.Children, n.Broken}); err != nil {
			return err
		}
	}
	return nil
}

// inventoryTable is one line per prefix, the newest snapshot with its age.
func inventoryTable(prefixes []inventory.Prefix, now time.Time) *table.Table {
	t := &table.Table{Head: []string{"PREFIX", "SNAPSHOTS", "SIZE", "NEWEST", "TIME", "AGE"}, Keep: 4,
		Whole: []string{"SNAPSHOTS", "SIZE", "TIME", "AGE"}}
	for _, p := range prefixes {
		age := table.Empty
		if !p.Time.IsZero() {
			age = Age(now.Sub(p.Time))
		}
		t.Rows = append(t.Rows, []string{dash(p.Prefix), strconv.Itoa(p.Snapshots), sizeOf64(p.Size),
			strings.TrimPrefix(p.Newest, p.Prefix), table.Time(p.Time), age})
	}
	return t
}

// inventoryRecord is one line of bsls --inventory --json
// (buttersink-formats(5)).
type inventoryRecord struct {
	inventory.Prefix
	// AgeSeconds is the newest snapshot's age when listed; absent
	// without a time.
	AgeSeconds *int64 `json:"age_seconds,omitempty"`
}

func writeInventoryJSON(w io.Writer, prefixes []inventory.Prefix, now time.Time) error {
	jw := jsonl.NewWriter(w)
	for _, p := range prefixes {
		rec := inventoryRecord{Prefix: p}
		if !p.Time.IsZero() {
			age := int64(now.Sub(p.Time) / time.Second)
			rec.AgeSeconds = &age
		}
		if err := jw.Write(rec); err != nil {
			return err
		}
	}
	return nil
}

// Age writes a duration for people, to two units: "45s", "12m", "3h 20m",
// "4d 6h"; a time in the future (clocks apart) is "0s".
func Age(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + "s"
	case s < 3600:
		return strconv.FormatInt(s/60, 10) + "m"
	case s < 86400:
		return strconv.FormatInt(s/3600, 10) + "h " + strconv.FormatInt(s%3600/60, 10) + "m"
	}
	return strconv.FormatInt(s/86400, 10) + "d " + strconv.FormatInt(s%86400/3600, 10) + "h"
}
