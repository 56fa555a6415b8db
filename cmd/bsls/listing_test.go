package bsls

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

func TestWriteTable(t *testing.T) {
	u := uuid.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ref := uint64(3 << 20)
	size := int64(2048)
	ctime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	ro := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "a", UUID: u, CTime: ctime, ReadOnly: true, Referenced: &ref, Exclusive: &ref}
	rw := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "home", UUID: u}
	partial := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "recv/b", UUID: u, Partial: true}
	resumable := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: "recv/c", UUID: u, Partial: true, Resume: &snapshot.Resume{Offset: 1288490189, UUID: u}}
	obj := snapshot.Snapshot{Kind: snapshot.KindObject, Path: "a", Key: "host/a.bs", ReceivedUUID: u, Size: &size, Encoding: "zstd.age"}
	raw := snapshot.Snapshot{Kind: snapshot.KindObject, Path: "b", Key: "host/b.bs", Size: &size}
	tests := []struct {
		name   string
		recs   []snapshot.Snapshot
		header string
		rows   []string
	}{
		{"empty", nil, "PATH UUID PARENT RECEIVED CTIME REFERENCED EXCLUSIVE", nil},
		{"snapshots", []snapshot.Snapshot{ro}, "PATH UUID PARENT RECEIVED CTIME REFERENCED EXCLUSIVE",
			[]string{"a " + u.String() + " - - 2026-01-02 03:04:05 3.0MiB 3.0MiB"}},
		{"with writable and partial", []snapshot.Snapshot{ro, rw, partial}, "PATH UUID PARENT RECEIVED CTIME REFERENCED EXCLUSIVE STATE",
			[]string{"a " + u.String() + " - - 2026-01-02 03:04:05 3.0MiB 3.0MiB ro", "home " + u.String() + " - - - - - rw", "recv/b " + u.String() + " - - - - - partial"}},
		{"with a resume point", []snapshot.Snapshot{resumable}, "PATH UUID PARENT RECEIVED CTIME REFERENCED EXCLUSIVE STATE",
			[]string{"recv/c " + u.String() + " - - - - - partial 1.2GiB"}},
		{"objects", []snapshot.Snapshot{obj, raw}, "PATH UUID PARENT RECEIVED CTIME REFERENCED EXCLUSIVE KEY SIZE ENCODING",
			[]string{"a - - " + u.String() + " - - - host/a.bs 2.0KiB zstd.age", "b - - - - - - host/b.bs 2.0KiB raw"}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := WriteTable(&b, tt.recs); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if got := strings.Join(strings.Fields(lines[0]), " "); got != tt.header {
			t.Errorf("%s: header %q, want %q", tt.name, got, tt.header)
		}
		if len(lines)-1 != len(tt.rows) {
			t.Fatalf("%s: %d rows, want %d:\n%s", tt.name, len(lines)-1, len(tt.rows), b.String())
		}
		for i, want := range tt.rows {
			// Columns align: every row's second column starts where the header's does.
			if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
				t.Errorf("%s: row %d %q, want %q", tt.name, i, got, want)
			}
			if col := strings.Index(lines[0], "UUID"); !strings.HasPrefix(lines[i+1][col:], strings.Fields(want)[1]) {
				t.Errorf("%s: row %d not aligned: %q", tt.name, i, lines[i+1])
			}
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
