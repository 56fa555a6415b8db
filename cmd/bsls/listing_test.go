package bsls

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/inventory"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// cells splits a table's lines at runs of two spaces or more.
func cells(s string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		var row []string
		for _, c := range strings.Split(l, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				row = append(row, c)
			}
		}
		out = append(out, row)
	}
	return out
}

func TestRecordTable(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	u := uuid.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ref := uint64(3 << 20)
	size := int64(2048)
	ctime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ro := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "a", UUID: u, CTime: ctime, ReadOnly: true, Referenced: &ref, Exclusive: &ref}
	rw := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "home", UUID: u}
	partial := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "recv/b", UUID: u, Partial: true}
	resumable := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "recv/c", UUID: u, Partial: true, Resume: &snapshot.Resume{Offset: 1288490189, UUID: u}}
	obj := snapshot.Snapshot{Kind: snapshot.KindObject, Path: "a", Key: "host/a.bs", UUID: u, Size: &size, Encoding: "zstd.age", Stored: ctime}
	raw := snapshot.Snapshot{Kind: snapshot.KindObject, Path: "b", Key: "host/b.bs", UUID: u, Size: &size, Stored: ctime}
	us := u.String()
	tests := []struct {
		name string
		recs []snapshot.Snapshot
		want [][]string
	}{
		{"empty", nil, [][]string{{"PATH", "UUID", "PARENT", "RECEIVED", "CTIME", "REFERENCED", "EXCLUSIVE"}}},
		{"snapshots", []snapshot.Snapshot{ro}, [][]string{
			{"PATH", "UUID", "CTIME", "REFERENCED", "EXCLUSIVE"},
			{"a", us, "2026-01-02 03:04:05 UTC", "3.0 MiB", "3.0 MiB"}}},
		{"with writable and partial", []snapshot.Snapshot{ro, rw, partial}, [][]string{
			{"PATH", "UUID", "CTIME", "REFERENCED", "EXCLUSIVE", "STATE"},
			{"a", us, "2026-01-02 03:04:05 UTC", "3.0 MiB", "3.0 MiB", "ro"},
			{"home", us, "-", "-", "-", "rw"},
			{"recv/b", us, "-", "-", "-", "partial"}}},
		{"with a resume point", []snapshot.Snapshot{resumable}, [][]string{
			{"PATH", "UUID", "STATE"}, {"recv/c", us, "partial 1.2 GiB"}}},
		{"objects", []snapshot.Snapshot{obj, raw}, [][]string{
			{"PATH", "UUID", "KEY", "SIZE", "ENCODING", "STORED"},
			{"a", us, "host/a.bs", "2.0 KiB", "zstd.age", "2026-01-02 03:04:05 UTC"},
			{"b", us, "host/b.bs", "2.0 KiB", "raw", "2026-01-02 03:04:05 UTC"}}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := recordTable(tt.recs).Write(&b, 0); err != nil {
			t.Fatal(err)
		}
		got := cells(b.String())
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", tt.name, len(got), len(tt.want), b.String())
		}
		for i := range got {
			if strings.Join(got[i], "|") != strings.Join(tt.want[i], "|") {
				t.Errorf("%s: line %d %q, want %q", tt.name, i, got[i], tt.want[i])
			}
		}
		// Columns align: every row's second column starts where the heading's does.
		lines := strings.Split(b.String(), "\n")
		col := strings.Index(lines[0], tt.want[0][1])
		for i, row := range tt.want[1:] {
			if !strings.HasPrefix(lines[i+1][col:], row[1]) {
				t.Errorf("%s: row %d not aligned: %q", tt.name, i, lines[i+1])
			}
		}
	}
}

func TestTreeTable(t *testing.T) {
	s1, s2 := int64(1<<20), int64(1024)
	id := func(n byte) uuid.UUID { return uuid.UUID{n, 15: 1} }
	recs := []snapshot.Snapshot{
		{Kind: snapshot.KindObject, Path: "h/a", UUID: id(1), Size: &s1, Key: "h/a/k1"},
		{Kind: snapshot.KindObject, Path: "h/b", UUID: id(2), SendParentUUID: id(1), Size: &s2, Key: "h/b/k2"},
		{Kind: snapshot.KindObject, Path: "h/c", UUID: id(3), SendParentUUID: id(9), Size: &s2, Key: "h/c/k3"},
	}
	var b bytes.Buffer
	if err := treeTable(recs, inventory.Tree(recs)).Write(&b, 0); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"SNAPSHOT", "SIZE", "CHAIN", "RESTORE", "KEY", "NOTE"},
		{"h/a", "1.0 MiB", "1", "1.0 MiB", "h/a/k1"},
		{"└ h/b", "1.0 KiB", "2", "1.0 MiB", "h/b/k2"},
		{"h/c", "1.0 KiB", "1", "1.0 KiB", "h/c/k3", "missing parent"},
	}
	got := cells(b.String())
	for i := range want {
		if i >= len(got) || strings.Join(got[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("tree table:\n%s\nline %d, want %q", b.String(), i, want[i])
		}
	}
}

func TestInventoryTable(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	size := int64(5 << 30)
	prefixes := []inventory.Prefix{
		{Prefix: "host1/", Snapshots: 30, Size: &size, Newest: "host1/home.2026-12-02", Time: now.Add(-90 * time.Minute)},
		{Prefix: "host2/", Snapshots: 2, Size: &size, Newest: "host2/x", Time: now.Add(-50 * time.Hour)},
	}
	var b bytes.Buffer
	if err := inventoryTable(prefixes, now).Write(&b, 0); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"PREFIX", "SNAPSHOTS", "SIZE", "NEWEST", "TIME", "AGE"},
		{"host1/", "30", "5.0 GiB", "home.2026-12-02", "2026-12-02 10:30:00 UTC", "1h 30m"},
		{"host2/", "2", "5.0 GiB", "x", "2026-11-30 10:00:00 UTC", "2d 2h"},
	}
	got := cells(b.String())
	for i := range want {
		if i >= len(got) || strings.Join(got[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("inventory table:\n%s\nline %d, want %q", b.String(), i, want[i])
		}
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Hour, "0s"}, {0, "0s"}, {59 * time.Second, "59s"}, {61 * time.Second, "1m"},
		{3*time.Hour + 20*time.Minute, "3h 20m"}, {4*24*time.Hour + 6*time.Hour + 5*time.Minute, "4d 6h"},
	}
	for _, tt := range tests {
		if got := Age(tt.d); got != tt.want {
			t.Errorf("Age(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestSortByPath(t *testing.T) {
	recs := []snapshot.Snapshot{{Path: "b"}, {Path: "a", Key: "1"}, {Path: "c"}, {Path: "a", Key: "2"}}
	sortByPath(recs)
	var got []string
	for _, r := range recs {
		got = append(got, r.Path+r.Key)
	}
	if strings.Join(got, " ") != "a1 a2 b c" {
		t.Errorf("sorted %v, want stable by path", got)
	}
}
