package plan

import (
	"context"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/snapshot"
)

// parsePartials reads partial receives at the destination in the test
// notation: name (a full stream of source snapshot name), name<p (an
// incremental one from p), name@ctransid (another ctransid than the
// source's), name=other (received as another snapshot's stream), name!
// (no resume point: a partial that cannot be resumed).
func parsePartials(t *testing.T, s string, src []snapshot.Snapshot) []snapshot.Snapshot {
	var out []snapshot.Snapshot
	for _, tok := range strings.Fields(s) {
		name, rest := splitName(tok)
		r := snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: name, UUID: uid("partial:" + name), Partial: true}
		c := findSrc(src, name)
		res := &snapshot.Resume{Offset: 4096, Digest: snapshot.Digest{1}, UUID: c.EffectiveUUID(), CTransID: c.CTransID}
		for rest != "" {
			op := rest[0]
			val, next := splitVal(rest[1:])
			rest = next
			switch op {
			case '<':
				p := findSrc(src, val)
				res.ParentUUID, res.ParentCTransID = p.EffectiveUUID(), p.CTransID
			case '@':
				res.CTransID = mustUint(t, val)
			case '=':
				res.UUID = findSrc(src, val).EffectiveUUID()
			case '!':
				res = nil
			default:
				t.Fatalf("bad token %q", tok)
			}
		}
		r.Resume = res
		out = append(out, r)
	}
	return out
}

func TestPlanResume(t *testing.T) {
	tests := []struct {
		name                   string
		src, dst, partials, to string
		want                   string // "~" marks a resumed send
	}{
		{name: "full send resumed", src: "a", partials: "a", want: "+a~"},
		{name: "incremental resumed", src: "a b", dst: "a", partials: "b<a", want: "+b<a~"},
		{name: "received source: its received uuid is the stream's", src: "a=z b", dst: "z", partials: "b<a", want: "+b<a~"},
		{name: "other parent", src: "a b c", dst: "a b", partials: "c<a", want: "+c<b"},
		{name: "was full, now incremental", src: "a b", dst: "a", partials: "b", want: "+b<a"},
		{name: "parent sent first in the same plan", src: "a b", partials: "b<a", want: "+a +b<a~"},
		{name: "was incremental, now full", src: "a<- b<-", partials: "b<a", want: "+a +b"},
		{name: "another ctransid", src: "a", partials: "a@99", want: "+a"},
		{name: "another snapshot's stream at the name", src: "a b", dst: "a", partials: "b=a", want: "+b<a"},
		{name: "no resume point", src: "a", partials: "a!", want: "+a"},
		{name: "only the partial one", src: "a b c", partials: "b<a", want: "+a +b<a~ +c<b"},
		{name: "object-store destination never resumes", src: "a", partials: "a", to: "s3://bkt/d/", want: "+a"},
		{name: "nested path", src: "h/a h/b", dst: "h/a", partials: "h/b<h/a", want: "+h/b<h/a~"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := parseSrc(t, tc.src)
			to := tc.to
			if to == "" {
				to = "/dst/"
			}
			objects := strings.HasPrefix(to, "s3:")
			dst := parseDst(t, tc.dst, src, objects)
			opts := Options{Src: mustLoc(t, "/src/"), Dst: mustLoc(t, to), Partials: parsePartials(t, tc.partials, src)}
			res, err := Plan(context.Background(), src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for i, p := range strings.Fields(render(res.Steps)) {
				if r := res.Steps[i].Resume; r != nil {
					if r.Offset != 4096 || r.Digest != (snapshot.Digest{1}) {
						t.Errorf("resume %+v", r)
					}
					p += "~"
				}
				parts = append(parts, p)
			}
			if got := strings.Join(parts, " "); got != tc.want {
				t.Errorf("plan\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseResume(t *testing.T) {
	r := Resume{Offset: 123, Digest: snapshot.Digest{0xff, 1}}
	if got, err := ParseResume(r.String()); err != nil || got != r {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "123", ":" + strings.Repeat("0", 64), "-1:" + strings.Repeat("0", 64), "+1:" + strings.Repeat("0", 64),
		"01:" + strings.Repeat("0", 64), "1:" + strings.Repeat("0", 63), "1:" + strings.Repeat("g", 64), "1:" + strings.Repeat("0", 65), "99999999999999999999:" + strings.Repeat("0", 64)} {
		if _, err := ParseResume(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSummaryResumed(t *testing.T) {
	r := &Result{Steps: []Step{
		{Op: OpSend, Size: 3 << 20, Exact: true, Resume: &Resume{Offset: 1 << 20}},
		{Op: OpSend, Size: 1 << 20, Exact: true, Parent: &snapshot.Snapshot{}},
	}}
	if got, want := r.Summary(), "2 to send: 1 full, 1 incremental, 4.0 MiB (1 resumed, 1.0 MiB of it already received); 0 to delete"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
