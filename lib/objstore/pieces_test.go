package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
)

const setHead = "h/5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a.full.ct7.bs1.zst"

func pieceMeta(n int, b []byte) objstore.Meta {
	return objstore.Meta{Encoding: "zstd", Piece: n, PieceCRC32C: fmt.Sprintf("%08x", crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))}
}

// putSet stores pieces of 3 bytes each under setHead, the last with the
// digest; edit may change each piece's key and metadata first.
func putSet(t *testing.T, n int, edit func(i int, key *string, m *objstore.Meta)) objstore.Store {
	t.Helper()
	ctx := context.Background()
	loc, _ := location.Parse("file://" + t.TempDir() + "/s/")
	st, err := filestore.Open(ctx, loc, objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		key := setHead
		if i > 1 {
			key = fmt.Sprintf("%s.p%d", setHead, i)
		}
		b := []byte{byte(i), byte(i), byte(i)}
		m := pieceMeta(i, b)
		if i == n {
			m.StreamSHA256, m.StreamSize, m.Pieces, m.SetSize = string(bytes.Repeat([]byte("a"), 64)), 99, n, int64(3*n)
		}
		if edit != nil {
			edit(i, &key, &m)
		}
		if key == "" {
			continue
		}
		if _, err := objkey.ParseKey(key); err != nil {
			// No store writes it: a hostile hand did.
			if err := os.WriteFile(filepath.Join(loc.Dir, key), b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p, err := st.Create(ctx, key, objstore.Meta{Encoding: "zstd"}, objstore.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Write(b)
		if _, err := p.Close(m); err != nil {
			t.Fatal(err)
		}
	}
	// An unrelated stream beside the set.
	p, _ := st.Create(ctx, "h/6a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a.full.ct7.bs1", objstore.Meta{}, objstore.PutOptions{})
	p.Write([]byte("x"))
	p.Close(objstore.Meta{StreamSHA256: string(bytes.Repeat([]byte("b"), 64)), StreamSize: 1})
	return st
}

// TestSets: a whole set is one stream; a set whose pieces skip, claim
// another place, encoding, count or size is none, and bss3get's reader
// never starts on it; bsrm's keys are only the set's.
func TestSets(t *testing.T) {
	ctx := context.Background()
	st := putSet(t, 3, nil)
	head, err := st.Stat(ctx, setHead)
	if err != nil {
		t.Fatal(err)
	}
	set, err := objstore.ResolveSet(ctx, st, setHead, head)
	if err != nil || set.Size != 9 || len(set.Pieces) != 3 || set.Meta.EncodedSize != 9 {
		t.Fatalf("whole set: %+v %v", set, err)
	}
	first, _, _ := st.Open(ctx, setHead, objstore.GetOptions{})
	rc, obj := objstore.OpenSet(ctx, st, set, first, objstore.GetOptions{})
	b, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(b, []byte{1, 1, 1, 2, 2, 2, 3, 3, 3}) || obj.Size != 9 {
		t.Fatalf("read %v %v %d", b, err, obj.Size)
	}
	recs, err := objstore.ListStreams(ctx, st, st.Location())
	if err != nil || len(recs) != 2 || recs[0].Key != setHead || *recs[0].Size != 9 || *recs[0].StreamSize != 99 {
		t.Fatalf("listing %+v %v", recs, err)
	}
	keys, _ := objstore.SetKeys(ctx, st, setHead)
	if !slices.Equal(keys, []string{setHead + ".p3", setHead + ".p2"}) {
		t.Fatalf("set keys %v", keys)
	}
	if sets, err := objstore.IncompleteSets(ctx, st, 0); err != nil || len(sets) != 0 {
		t.Fatalf("incomplete sets of a whole one: %+v %v", sets, err)
	}

	for name, edit := range map[string]func(i int, key *string, m *objstore.Meta){
		"skips": func(i int, key *string, m *objstore.Meta) { *key = map[bool]string{true: "", false: *key}[i == 2] },
		"place": func(i int, key *string, m *objstore.Meta) { m.Piece = map[bool]int{true: 3, false: m.Piece}[i == 2] },
		"encoding": func(i int, key *string, m *objstore.Meta) {
			m.Encoding = map[bool]string{true: "", false: m.Encoding}[i == 2]
		},
		"count": func(i int, key *string, m *objstore.Meta) { m.Pieces = map[bool]int{true: 4, false: m.Pieces}[i == 3] },
		"size": func(i int, key *string, m *objstore.Meta) {
			m.SetSize = map[bool]int64{true: 8, false: m.SetSize}[i == 3]
		},
		"no digest": func(i int, key *string, m *objstore.Meta) {
			m.StreamSHA256 = map[bool]string{true: "", false: m.StreamSHA256}[i == 3]
		},
		"no last":    func(i int, key *string, m *objstore.Meta) { m.Pieces = 0 },
		"early last": func(i int, key *string, m *objstore.Meta) { m.Pieces = map[bool]int{true: 2, false: m.Pieces}[i == 2] },
		"bad crc": func(i int, key *string, m *objstore.Meta) {
			m.PieceCRC32C = map[bool]string{true: "zz", false: m.PieceCRC32C}[i == 2]
		},
		"odd key": func(i int, key *string, m *objstore.Meta) {
			*key = map[bool]string{true: setHead + ".p02", false: *key}[i == 2]
		},
		"head is whole": func(i int, key *string, m *objstore.Meta) { m.Piece = map[bool]int{true: 0, false: m.Piece}[i == 1] },
	} {
		t.Run(name, func(t *testing.T) {
			st := putSet(t, 3, edit)
			head, err := st.Stat(ctx, setHead)
			if err != nil {
				t.Fatal(err)
			}
			if set, err := objstore.ResolveSet(ctx, st, setHead, head); !errors.Is(err, objstore.ErrNotWhole) {
				t.Fatalf("resolved: %+v %v", set, err)
			}
			recs, err := objstore.ListStreams(ctx, st, st.Location())
			if err != nil {
				t.Fatal(err)
			}
			listed := false
			for _, r := range recs {
				if r.Key == setHead {
					listed = true
					if r.Size == nil || *r.Size != 3 || name != "head is whole" {
						t.Errorf("listed as a stream: %+v", r)
					}
				}
			}
			if name == "head is whole" && !listed {
				t.Error("a stream stored whole is hidden by stray pieces")
			}
			sets, err := objstore.IncompleteSets(ctx, st, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sets {
				for _, k := range s.Keys {
					if k != setHead && (len(k) != len(setHead)+3 || k[:len(setHead)+2] != setHead+".p") {
						t.Errorf("incomplete set names %q", k)
					}
				}
			}
		})
	}
}
