package plan

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/uuid"
)

// A short notation for inventories in tests.
//
// Source: space-separated tokens [dir/]name[@ctransid][<parent][=orig][#bytes]
//   - ctransid defaults to the token's position; the snapshot's ctime is
//     epoch + ctransid hours;
//   - every snapshot is a snapshot of its directory's live subvolume
//     (parent_uuid = uuid("live:dir")) unless <parent names another token
//     (a snapshot of a snapshot) or <- (no parent);
//   - =orig gives it received_uuid uuid(orig): a received copy of orig;
//   - #bytes is its qgroup referenced size.
//
// Destination, btrfs: name is a received copy of the source snapshot name;
// name! is a snapshot native to the destination (uuid(name)); name? an
// unrelated one that only has the same name.
// Destination, objects: name is a full stream of name, name<p a diff from
// p; #bytes is the object size.
//
// Plans print as "+b<a" (send b from a), "+a" (full) and "-x" (delete).

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func uid(s string) uuid.UUID {
	h := sha256.Sum256([]byte(s))
	var u uuid.UUID
	copy(u[:], h[:16])
	return u
}

func u64(n uint64) *uint64 { return &n }
func i64(n int64) *int64   { return &n }

func parseSrc(t testing.TB, s string) []snapshot.Snapshot {
	t.Helper()
	var out []snapshot.Snapshot
	for i, tok := range strings.Fields(s) {
		r := snapshot.Snapshot{Kind: snapshot.KindSubvolume, ReadOnly: true, CTransID: uint64(i + 1)}
		name, rest := splitName(tok)
		r.Path = name
		r.UUID = uid(name)
		dir := "."
		if j := strings.LastIndexByte(name, '/'); j >= 0 {
			dir = name[:j]
		}
		r.ParentUUID = uid("live:" + dir)
		for rest != "" {
			op := rest[0]
			val, next := splitVal(rest[1:])
			rest = next
			switch op {
			case '@':
				r.CTransID = mustUint(t, val)
			case '<':
				if val == "-" {
					r.ParentUUID = uuid.Zero
				} else {
					r.ParentUUID = uid(val)
				}
			case '=':
				r.ReceivedUUID = uid(val)
			case '#':
				r.Referenced = u64(mustUint(t, val))
			default:
				t.Fatalf("bad token %q", tok)
			}
		}
		r.OTransID = r.CTransID
		r.CTime = epoch.Add(time.Duration(r.CTransID) * time.Hour)
		r.OTime = r.CTime
		out = append(out, r)
	}
	return out
}

func parseDst(t testing.TB, s string, src []snapshot.Snapshot, objects bool) []snapshot.Snapshot {
	t.Helper()
	eff := func(name string) uuid.UUID {
		for i := range src {
			if src[i].Path == name {
				return src[i].EffectiveUUID()
			}
		}
		return uid(name)
	}
	var out []snapshot.Snapshot
	for _, tok := range strings.Fields(s) {
		name, rest := splitName(tok)
		if objects {
			r := snapshot.Snapshot{Kind: snapshot.KindObject, Path: name, UUID: eff(name), Size: i64(1000), Key: name + "_full"}
			if c := findSrc(src, name); c != nil {
				r.CTransID, r.CTime = c.CTransID, c.CTime
			}
			for rest != "" {
				op := rest[0]
				val, next := splitVal(rest[1:])
				rest = next
				switch op {
				case '<':
					r.SendParentUUID = eff(val)
					r.Key = name + "_" + val
				case '#':
					r.Size = i64(int64(mustUint(t, val)))
				default:
					t.Fatalf("bad token %q", tok)
				}
			}
			out = append(out, r)
			continue
		}
		r := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: name, ReadOnly: true}
		if rest == "!" {
			r.UUID = uid(name)
		} else if rest == "?" {
			r.UUID = uid("other:" + name)
		} else if rest == "" {
			r.UUID = uid("dst:" + name)
			r.ReceivedUUID = eff(name)
		} else {
			t.Fatalf("bad token %q", tok)
		}
		if c := findSrc(src, name); c != nil {
			r.CTransID, r.CTime = c.CTransID, c.CTime
		}
		out = append(out, r)
	}
	return out
}

func findSrc(src []snapshot.Snapshot, name string) *snapshot.Snapshot {
	for i := range src {
		if src[i].Path == name {
			return &src[i]
		}
	}
	return nil
}

func splitName(tok string) (string, string) {
	i := strings.IndexAny(tok, "@<=#!?")
	if i < 0 {
		return tok, ""
	}
	return tok[:i], tok[i:]
}

func splitVal(s string) (string, string) {
	i := strings.IndexAny(s, "@<=#!?")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func mustUint(t testing.TB, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

// render writes a plan in the notation.
func render(steps []Step) string {
	var parts []string
	for _, s := range steps {
		name := s.Snapshot.Path
		if s.Op == OpDelete {
			if s.Snapshot.IsObject() {
				name = s.Snapshot.Key
			}
			parts = append(parts, "-"+name)
			continue
		}
		if s.Parent != nil {
			name += "<" + s.Parent.Path
		}
		parts = append(parts, "+"+name)
	}
	return strings.Join(parts, " ")
}

func mustLoc(t testing.TB, s string) location.Location {
	t.Helper()
	l, err := location.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var _ = fmt.Sprint
