package receive

import (
	"errors"
	"testing"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/uuid"
)

// A parent or clone source is a read-only subvolume below the
// destination whose received UUID and stransid, else UUID and ctransid,
// are the stream's; copies elsewhere are passed over, and the error says
// the most useful thing: a changed copy below, else one outside.
func TestChooseSource(t *testing.T) {
	u := uuid.UUID{1, 2, 3}
	below := map[uint64]btrfs.Subvol{
		300: {ID: 300, Path: "a", ReadOnly: true, ReceivedUUID: u, STransID: 10, CTransID: 99},
		301: {ID: 301, Path: "b", ReadOnly: false, ReceivedUUID: u, STransID: 10},
		302: {ID: 302, Path: "c", ReadOnly: true, ReceivedUUID: u, STransID: 11},
		303: {ID: 303, Path: "d", ReadOnly: true, UUID: u, CTransID: 10},
		304: {ID: 304, Path: "e", ReadOnly: true, UUID: u, CTransID: 12},
	}
	tests := []struct {
		name             string
		received, others []uint64
		want             uint64 // 0: an error
		changed          string
		outside          []uint64
	}{
		{"received below", []uint64{300}, nil, 300, "", nil},
		{"older copy outside first", []uint64{7, 300}, []uint64{8}, 300, "", nil},
		{"writable passed over", []uint64{301, 300}, nil, 300, "", nil},
		{"received before uuid", []uint64{300}, []uint64{303}, 300, "", nil},
		{"uuid by ctransid", []uint64{302}, []uint64{304, 303}, 303, "", nil},
		{"only writable", []uint64{301}, nil, 0, "b", nil},
		{"other transid", []uint64{302}, []uint64{304}, 0, "c", nil},
		{"changed beats outside", []uint64{7}, []uint64{304}, 0, "e", []uint64{7}},
		{"only outside", []uint64{7}, []uint64{8}, 0, "", []uint64{7, 8}},
		{"nowhere", nil, nil, 0, "", nil},
	}
	for _, tt := range tests {
		got, err := choose(u, 10, tt.received, tt.others, below)
		if tt.want != 0 {
			if err != nil || got.ID != tt.want {
				t.Errorf("%s: %d, %v; want %d", tt.name, got.ID, err, tt.want)
			}
			continue
		}
		var se *SourceError
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want a SourceError", tt.name, err)
			continue
		}
		if (se.Changed == nil) != (tt.changed == "") || (se.Changed != nil && se.Changed.Path != tt.changed) || len(se.Outside) != len(tt.outside) {
			t.Errorf("%s: %+v", tt.name, se)
		}
		for i := range tt.outside {
			if i < len(se.Outside) && se.Outside[i] != tt.outside[i] {
				t.Errorf("%s: outside %v, want %v", tt.name, se.Outside, tt.outside)
			}
		}
	}
}
