package bssend

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/snapshot"
)

func TestStepJob(t *testing.T) {
	rec := func(p string) snapshot.Snapshot { return snapshot.Snapshot{Kind: snapshot.KindSubvolume, Path: p} }
	parent := rec("home/a")
	tests := []struct {
		name string
		step plan.Step
		want job
		err  string
		hint string
	}{
		{name: "top level full",
			step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a"), Size: 42},
			want: job{path: "/src/a", label: "a", size: 42}},
		{name: "nested incremental with clones",
			step: plan.Step{Op: "send", Src: "btrfs:///src/snaps/", Snapshot: rec("home/b"), Parent: &parent, Clones: []snapshot.Snapshot{rec("x"), rec("y/z")}},
			want: job{path: "/src/snaps/home/b", parent: "/src/snaps/home/a", clones: []string{"/src/snaps/x", "/src/snaps/y/z"}, label: "home/b", rename: "home/b"}},
		{name: "src without trailing slash is the directory too",
			step: plan.Step{Op: "send", Src: "/src/snaps", Snapshot: rec("a")},
			want: job{path: "/src/snaps/a", label: "a"}},
		{name: "unknown op", step: plan.Step{Op: "copy"}, err: `unknown op "copy"`},
		{name: "s3 source", step: plan.Step{Op: "send", Src: "s3://bucket/p/", Snapshot: rec("a")}, err: "source is an object store", hint: "bss3get"},
		{name: "file source", step: plan.Step{Op: "send", Src: "file:///st/", Snapshot: rec("a")}, err: "source is an object store", hint: "bss3get"},
		{name: "ssh source runs remotely", step: plan.Step{Op: "send", Src: "ssh://h/src/", Snapshot: rec("a")}, want: job{label: "a"}},
		{name: "bad location", step: plan.Step{Op: "send", Src: "ftp://x/", Snapshot: rec("a")}, err: "unknown scheme"},
		{name: "dotdot", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("../etc")}, err: "'..' component"},
		{name: "absolute", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("/etc")}, err: "absolute path"},
		{name: "empty", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("")}, err: "empty"},
		{name: "double slash", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a//b")}, err: "empty"},
		{name: "bad parent", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a"), Parent: &snapshot.Snapshot{Path: "a/../../b"}}, err: "parent: "},
		{name: "clones without a parent", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a"), Clones: []snapshot.Snapshot{rec("x")}},
			err: "snapshot a: clone sources without a parent", hint: "names its parent"},
		{name: "clones without a parent, pulled", step: plan.Step{Op: "send", Src: "ssh://h/src/", Snapshot: rec("a"), Clones: []snapshot.Snapshot{rec("x")}},
			err: "snapshot a: clone sources without a parent", hint: "names its parent"},
		{name: "pulled incremental with clones", step: plan.Step{Op: "send", Src: "ssh://h/src/", Snapshot: rec("b"), Parent: &parent, Clones: []snapshot.Snapshot{rec("x")}},
			want: job{label: "b"}},
		{name: "resumed", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a"), Resume: &plan.Resume{Offset: 7}},
			want: job{path: "/src/a", label: "a", resume: &plan.Resume{Offset: 7}}},
		{name: "negative resume offset", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a"), Resume: &plan.Resume{Offset: -1}}, err: "resume offset -1"},
		{name: "bad clone", step: plan.Step{Op: "send", Src: "/src/", Snapshot: rec("a"), Parent: &parent, Clones: []snapshot.Snapshot{rec(".")}}, err: "clone: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stepJob(tt.step)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if h := hint.Of(err); !strings.Contains(h, tt.hint) {
					t.Errorf("hint %q, want %q", h, tt.hint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.path != tt.want.path || got.parent != tt.want.parent || got.label != tt.want.label ||
				got.rename != tt.want.rename || got.size != tt.want.size || strings.Join(got.clones, ",") != strings.Join(tt.want.clones, ",") ||
				(got.resume == nil) != (tt.want.resume == nil) || got.resume != nil && *got.resume != *tt.want.resume {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPlanJobs(t *testing.T) {
	env := &cli.Env{Name: "bssend", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	in := `{"op":"send","src":"/s/","dst":"/d/","snapshot":{"kind":"subvolume","path":"a"}}

{"op":"delete","dst":"/d/","snapshot":{"kind":"subvolume","path":"old"}}
{"op":"send","src":"/s/","dst":"/d/","snapshot":{"kind":"subvolume","path":"b"}}
`
	jobs, err := planJobs(env, strings.NewReader(in))
	if err != nil || len(jobs) != 2 || jobs[0].label != "a" || jobs[1].label != "b" {
		t.Fatalf("delete steps are bsrm's: got %+v, %v", jobs, err)
	}
	if _, err := planJobs(env, strings.NewReader("not json\n")); err == nil || !strings.Contains(err.Error(), "stdin line 1") {
		t.Fatalf("error %v", err)
	}
	if _, err := planJobs(env, strings.NewReader(in+`{"op":"copy"}`+"\n")); err == nil || !strings.HasPrefix(err.Error(), "stdin line 5: unknown op") {
		t.Fatalf("error %v", err)
	}
	for _, bad := range []string{`"zz"`, `"` + strings.Repeat("0", 63) + `"`, `7`, `null`} {
		line := `{"op":"send","src":"/s/","dst":"/d/","snapshot":{"kind":"subvolume","path":"a"},"resume":{"offset":1,"digest":` + bad + `}}` + "\n"
		if _, err := planJobs(env, strings.NewReader(line)); err == nil && bad != "null" {
			t.Errorf("digest %s taken", bad)
		}
	}
	if jobs, err := planJobs(env, strings.NewReader("")); err != nil || len(jobs) != 0 {
		t.Fatalf("an empty plan is nothing to send: %v, %v", jobs, err)
	}
}
