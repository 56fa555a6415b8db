package snapshot

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/uuid"
)

// TestWriteLinesMatchesJSONL: WriteLines's bytes are the bytes lib/jsonl
// (encoding/json) writes for the same records, across write chunks.
func TestWriteLinesMatchesJSONL(t *testing.T) {
	var recs []Snapshot
	for i := range 3000 {
		ref := uint64(i) << 12
		size := int64(i) - 5
		u := uuid.UUID{byte(i), byte(i >> 8), 3: 0xff, 15: 1}
		r := Snapshot{
			Kind: KindSubvolume, Path: fmt.Sprintf("snaps/d%d/s%d\u2028<&>\"\\\x01\xff", i%20, i), ID: uint64(256 + i),
			UUID: u, CTransID: uint64(i), OTransID: uint64(i * 3), ReadOnly: i%3 != 0, Partial: i%7 == 0,
			CTime: time.Unix(int64(1764625318+i), int64(i*1000)).UTC(),
		}
		if i%2 == 0 {
			r.Referenced, r.Exclusive, r.ParentUUID = &ref, &ref, u
			r.OTime = r.CTime.Add(time.Duration(i))
		}
		if i%5 == 0 {
			r.Kind, r.Key, r.Size, r.Encoding, r.Format, r.SendParentUUID = KindObject, "host/"+r.Path+".bs", &size, "zstd", "buttersink", u
		}
		recs = append(recs, r)
	}
	for _, n := range []int{0, 1, 2, 200, len(recs)} {
		var want, got bytes.Buffer
		jw := jsonl.NewWriter(&want)
		for i := range recs[:n] {
			if err := jw.Write(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteLines(&got, recs[:n]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%d records: WriteLines differs from jsonl.Writer", n)
		}
	}
}
