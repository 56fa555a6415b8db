package remote

import (
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/snapshot"
)

func TestSendArgs(t *testing.T) {
	rec := func(p string) *snapshot.Snapshot { return &snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: p} }
	recs := func(ps ...string) []snapshot.Snapshot {
		var out []snapshot.Snapshot
		for _, p := range ps {
			out = append(out, *rec(p))
		}
		return out
	}
	tests := []struct {
		name string
		step plan.Step
		want string
		err  string
	}{
		{name: "full", step: plan.Step{Snapshot: *rec("a")}, want: "--proto 2 /src/a"},
		{name: "incremental", step: plan.Step{Snapshot: *rec("b"), Parent: rec("a")}, want: "--proto 2 -p /src/a /src/b"},
		{name: "incremental with clones", step: plan.Step{Snapshot: *rec("h/b"), Parent: rec("h/a"), Clones: recs("x", "y/z")},
			want: "--proto 2 -p /src/h/a -c /src/x -c /src/y/z /src/h/b"},
		// bssend -c without -p would pick a parent: not what the step
		// says, and bssend refuses the step locally.
		{name: "clones without a parent", step: plan.Step{Snapshot: *rec("b"), Clones: recs("a")}, err: "step for b: clone sources without a parent"},
		{name: "bad parent", step: plan.Step{Snapshot: *rec("b"), Parent: rec("../a")}, err: `bad snapshot path "../a"`},
		{name: "bad clone", step: plan.Step{Snapshot: *rec("b"), Parent: rec("a"), Clones: recs("/etc")}, err: `bad snapshot path "/etc"`},
		{name: "bad snapshot", step: plan.Step{Snapshot: *rec("a/../../b")}, err: "bad snapshot path"},
		{name: "resumed", step: plan.Step{Snapshot: *rec("b"), Parent: rec("a"), Resume: &plan.Resume{Offset: 4096, Digest: snapshot.Digest{0xab}}},
			want: "--proto 2 --resume 4096:ab" + strings.Repeat("0", 62) + " -p /src/a /src/b"},
		{name: "bad resume offset", step: plan.Step{Snapshot: *rec("b"), Resume: &plan.Resume{Offset: -1}}, err: "bad resume offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sendArgs(tt.step, "/src", []string{"--proto", "2"})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
