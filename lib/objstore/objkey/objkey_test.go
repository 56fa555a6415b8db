package objkey

import (
	"reflect"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/uuid"
)

const (
	u1 = "3f2a1b4c-0d5e-4f60-8a7b-9c0d1e2f3a4b"
	u2 = "a1b2c3d4-e5f6-4711-8899-aabbccddeeff"
	u3 = "0f0e0d0c-0b0a-4908-8706-050403020100"
	z  = "00000000-0000-0000-0000-000000000000"
)

func mustUUID(s string) uuid.UUID {
	u, err := uuid.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		key  string
		want *Key // nil: must be rejected
	}{
		{"home/" + u1 + ".full.ct42.bs1", &Key{Path: "home", UUID: mustUUID(u1), CTransID: 42, Format: FormatBS1}},
		{"a/b/c/" + u1 + "." + u2 + ".ct7.bs1.zst.age.f-gpg", &Key{Path: "a/b/c", UUID: mustUUID(u1), Parent: mustUUID(u2), CTransID: 7,
			Stages: []string{"zstd", "age", "f-gpg"}, Format: FormatBS1}},
		{"sp%20ace%25/" + u1 + ".full.ct0.bs1", &Key{Path: "sp ace%", UUID: mustUUID(u1), Format: FormatBS1}},
		{".snapshots/12/snapshot/" + u1 + ".full.ct3.bs1.f-xz.f-gpg", &Key{Path: ".snapshots/12/snapshot", UUID: mustUUID(u1), CTransID: 3,
			Stages: []string{"f-xz", "f-gpg"}, Format: FormatBS1}},
		// bs1: malformed.
		{u1 + ".full.ct42.bs1", nil},                             // no path
		{"home/" + u1 + ".full.ct042.bs1", nil},                  // leading zero
		{"home/" + u1 + ".full.ct.bs1", nil},                     // no number
		{"home/" + u1 + ".full.42.bs1", nil},                     // no ct
		{"home/" + u1 + ".none.ct42.bs1", nil},                   // bad parent
		{"home/" + z + ".full.ct42.bs1", nil},                    // zero uuid
		{"home/" + strings.ToUpper(u1) + ".full.ct42.bs1", nil},  // not canonical
		{"home/" + u1 + ".full.ct42.bs1.gz", nil},                // unknown stage
		{"home/" + u1 + ".full.ct42.bs1.zst.zst", nil},           // stage twice
		{"home/" + u1 + ".full.ct42.bs1.f-", nil},                // empty filter name
		{"home/" + u1 + ".full.ct42.bs1.f-GPG", nil},             // filter name case
		{"home/" + u1 + ".full.ct42.bs2", nil},                   // unknown version
		{"home/." + u1 + ".full.ct42.bs1.partial-0a1b", nil},     // file store temp
		{"ho%41me/" + u1 + ".full.ct42.bs1", nil},                // needless escape
		{"ho%2fme/" + u1 + ".full.ct42.bs1", nil},                // lowercase escape
		{"ho me/" + u1 + ".full.ct42.bs1", nil},                  // unescaped space
		{"a//b/" + u1 + ".full.ct42.bs1", nil},                   // empty component
		{"a/../" + u1 + ".full.ct42.bs1", nil},                   // dot-dot
		{"home/" + u1 + ".full.ct99999999999999999999.bs1", nil}, // overflow
		{"", nil},
		{"home/", nil},
		// The original ButterSink.
		{"home/2024-01-01/" + u1 + "_" + u2, &Key{Path: "home/2024-01-01", UUID: mustUUID(u1), Parent: mustUUID(u2), Format: FormatV0}},
		{"snap/" + u1 + "_None", &Key{Path: "snap", UUID: mustUUID(u1), Format: FormatV0}},
		{u1 + "_None", nil},
		{"snap/" + u1 + "_none", nil},
		{"snap.bs", nil}, // its sidecar
		// btrfs2s3.
		{"home.ctim2024-01-01T00:00:00+00:00.ctid12.uuid" + u1 + ".sndp" + z + ".prnt" + u3 + ".mdvn1.seqn0",
			&Key{Path: "home.2024-01-01T00:00:00+00:00.12", UUID: mustUUID(u1), CTransID: 12, SourceUUID: mustUUID(u3), Format: FormatBtrfs2s3}},
		{"pre/my.vol.seqn0.mdvn1.prnt" + u3 + ".sndp" + u2 + ".uuid" + u1 + ".ctid9.ctim2024-01-01T00:00:00.5+01:00.extra1",
			&Key{Path: "pre/my.vol.2024-01-01T00:00:00.5+01:00.9", UUID: mustUUID(u1), Parent: mustUUID(u2), CTransID: 9, SourceUUID: mustUUID(u3), Format: FormatBtrfs2s3}},
		{"home.ctim2024.ctid12.uuid" + u1 + ".mdvn1.seqn0", nil},               // no sndp
		{"home.ctim2024.ctid12.uuid" + u1 + ".sndp" + z + ".mdvn2.seqn0", nil}, // unknown version
		{"home.ctim2024.ctid12.uuid" + u1 + ".sndp" + z + ".mdvn1.seqn1", nil}, // split object
		{"home.ctim2024.uuid" + u1 + ".sndp" + z, nil},                         // no ctid
		{".ctim2024.ctid1.uuid" + u1 + ".sndp" + z, nil},                       // no name
		{"home.ctid1.ctid2.uuid" + u1 + ".sndp" + z, nil},                      // tag twice
		{"random/object.txt", nil},
	}
	for _, tc := range tests {
		got, err := ParseKey(tc.key)
		if tc.want == nil {
			if err == nil {
				t.Errorf("ParseKey(%q) = %+v, want an error", tc.key, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKey(%q): %v", tc.key, err)
			continue
		}
		if !reflect.DeepEqual(got, *tc.want) {
			t.Errorf("ParseKey(%q)\n got %+v\nwant %+v", tc.key, got, *tc.want)
		}
		if got.Format == FormatBS1 && got.String() != tc.key {
			t.Errorf("String() = %q, want %q", got.String(), tc.key)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	paths := []string{"home", "a/b/c", "with space/ü-ñ", "100%/x", ".snapshots/1/snapshot", "tab\there"}
	stages := [][]string{nil, {"zstd"}, {"age"}, {"zstd", "age", "f-gpg"}, {"f-a", "f-a"}}
	for _, p := range paths {
		for _, s := range stages {
			for _, parent := range []uuid.UUID{uuid.Zero, mustUUID(u2)} {
				k, err := NewKey(p, mustUUID(u1), parent, 1234, s)
				if err != nil {
					t.Fatalf("NewKey(%q): %v", p, err)
				}
				got, err := ParseKey(k.String())
				if err != nil {
					t.Fatalf("ParseKey(%q): %v", k.String(), err)
				}
				if !reflect.DeepEqual(got, k) {
					t.Errorf("round trip of %q: got %+v want %+v", k.String(), got, k)
				}
				for _, c := range []byte(k.String()) {
					if !safe(c) && c != '%' {
						t.Errorf("key %q holds unsafe byte %q", k.String(), c)
					}
				}
			}
		}
	}
}

func TestNewKeyRejects(t *testing.T) {
	for _, tc := range []struct {
		path   string
		id     uuid.UUID
		stages []string
	}{
		{"", mustUUID(u1), nil},
		{"a/../b", mustUUID(u1), nil},
		{"/abs", mustUUID(u1), nil},
		{"ok", uuid.Zero, nil},
		{"ok", mustUUID(u1), []string{"gzip"}},
		{"ok", mustUUID(u1), []string{"f-Bad"}},
	} {
		if _, err := NewKey(tc.path, tc.id, uuid.Zero, 1, tc.stages); err == nil {
			t.Errorf("NewKey(%q, %v, %v) accepted", tc.path, tc.id, tc.stages)
		}
	}
}

// FuzzParseKey: keys come from whoever can write to the bucket. Parsing
// must never panic, and whatever parses as ours must print back the same.
func FuzzParseKey(f *testing.F) {
	f.Add("home/" + u1 + ".full.ct42.bs1.zst.age")
	f.Add("a%20b/" + u1 + "." + u2 + ".ct7.bs1.f-gpg")
	f.Add("home/" + u1 + "_None")
	f.Add("home.ctim2024-01-01T00:00:00+00:00.ctid12.uuid" + u1 + ".sndp" + z + ".prnt" + u3 + ".mdvn1.seqn0")
	f.Add("%")
	f.Add("home/" + u1 + ".full.ct42.bs1.zst.age.p2")
	f.Add("home/" + u1 + ".full.ct42.bs1.p10000")
	f.Add("home/" + u1 + ".full.ct42.bs1.p02")
	f.Add("home/" + u1 + ".full.ct42.bs1.p2.zst")
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(key)
		if err != nil {
			return
		}
		if k.UUID.IsZero() {
			t.Fatalf("%q parsed with a zero uuid", key)
		}
		if checkPath(k.Path) != nil {
			t.Fatalf("%q parsed to invalid path %q", key, k.Path)
		}
		if k.Format == FormatBS1 && k.String() != key {
			t.Fatalf("%q parsed, prints as %q", key, k.String())
		}
		if k.Piece != 0 && (k.Format != FormatBS1 || k.Piece < 2 || k.Piece > MaxPieces) {
			t.Fatalf("%q parsed with piece %d", key, k.Piece)
		}
		if k.Piece != 0 && k.Head().PieceKey(k.Piece) != key {
			t.Fatalf("%q: piece %d of its head is %q", key, k.Piece, k.Head().PieceKey(k.Piece))
		}
	})
}

// TestPieceKey: the suffix of a stream's later pieces, and the spellings
// that are refused (a piece is named one way only).
func TestPieceKey(t *testing.T) {
	head := "home/" + u1 + ".full.ct42.bs1.zst.age"
	k, err := ParseKey(head)
	if err != nil {
		t.Fatal(err)
	}
	if k.PieceKey(1) != head || k.PieceKey(3) != head+".p3" {
		t.Fatalf("piece keys %q %q", k.PieceKey(1), k.PieceKey(3))
	}
	p, err := ParseKey(head + ".p3")
	if err != nil || p.Piece != 3 || p.Head().String() != head {
		t.Fatalf("parse piece: %+v %v", p, err)
	}
	for _, bad := range []string{".p0", ".p1", ".p02", ".p10001", ".p", ".p-2", ".p2.p3", ".px"} {
		if _, err := ParseKey(head + bad); err == nil {
			t.Errorf("%q accepted", head+bad)
		}
	}
	if _, err := ParseKey("home/" + u1 + ".full.ct42.bs1.p2.zst"); err == nil {
		t.Error("piece suffix before a stage accepted")
	}
}

// TestStorable: lengths are counted as the key spells the path, escaped.
func TestStorable(t *testing.T) {
	u50 := strings.Repeat("ü", 50) // 100 bytes, 300 escaped
	u42 := strings.Repeat("ü", 42) // 84 bytes, 252 escaped
	for _, tc := range []struct {
		path      string
		prefixLen int
		ok        bool
	}{
		{"home.1", 0, true},
		{u42, 0, true},
		{u50, 0, false},
		{"d/" + u50 + "/x", 0, false},
		{strings.Repeat("a", 255), 0, true},
		{strings.Repeat("a", 256), 0, false},
		{"b\xff\xfe", 0, true},
		{strings.Repeat("\xff", 85), 0, true},
		{strings.Repeat("\xff", 86), 0, false},
		{strings.Repeat("a/", 300) + "a", 0, true}, // 601 bytes: fits 1024 with the name
		{strings.Repeat("a/", 300) + "a", 300, false},
		{strings.Repeat("é/", 150) + "a", 0, false}, // 451 bytes, 1051 escaped
		{"a/../b", 0, false},
		{"", 0, false},
	} {
		err := Storable(tc.path, tc.prefixLen)
		if (err == nil) != tc.ok {
			t.Errorf("Storable(%.40q…, %d) = %v, want ok %v", tc.path, tc.prefixLen, err, tc.ok)
		}
		if _, kerr := NewKey(tc.path, mustUUID(u1), mustUUID(u2), 1<<63, []string{"zstd", "age", "f-" + strings.Repeat("x", 32)}); tc.prefixLen == 0 && (kerr == nil) != tc.ok {
			t.Errorf("NewKey(%.40q…) = %v, want ok %v", tc.path, kerr, tc.ok)
		} else if kerr == nil {
			k, _ := NewKey(tc.path, mustUUID(u1), mustUUID(u2), 1<<63, []string{"zstd", "age", "f-" + strings.Repeat("x", 32)})
			if err := names.Key(k.String(), tc.prefixLen); tc.ok && err != nil {
				t.Errorf("storable %.40q… makes key %.60q…, refused: %v", tc.path, k.String(), err)
			}
		}
	}
}

// The writers' lock (lib/lock) lives under the store's directory as
// lock.Name: never a stream key, at any depth, so listings skip it.
func TestLockNameIsNoKey(t *testing.T) {
	for _, k := range []string{lock.Name, "a/" + lock.Name, "a/b/" + lock.Name} {
		if got, err := ParseKey(k); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want an error", k, got)
		}
	}
}
