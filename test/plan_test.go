package test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/test/harness"
)

// planSteps decodes bsplan output.
func planSteps(t *testing.T, out string) []plan.Step {
	t.Helper()
	var steps []plan.Step
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var s plan.Step
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("bad step %q: %v", l, err)
		}
		steps = append(steps, s)
	}
	return steps
}

// planSource makes a source filesystem with a subvolume "vol" and
// read-only snapshots snaps/s1, s2, s3 taken as it changes.
func planSource(t *testing.T) string {
	src := harness.Btrfs(t, 400)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol && mkdir snaps
		head -c 4000000 /dev/urandom > vol/a && mkdir vol/d && echo one > vol/d/f
		btrfs -q subvolume snapshot -r vol snaps/s1
		head -c 1000000 /dev/urandom > vol/b && echo two >> vol/d/f
		btrfs -q subvolume snapshot -r vol snaps/s2
		rm vol/a && head -c 500000 /dev/urandom > vol/c
		btrfs -q subvolume snapshot -r vol snaps/s3
	`, "SRC="+src)
	return src
}

func TestPlanSync(t *testing.T) {
	src := planSource(t)
	dst := harness.Btrfs(t, 400)
	env := []string{"SRC=" + src, "DST=" + dst}

	// First run: everything, s1 in full, then each from the one before,
	// with sizes measured by metadata-only sends.
	r := harness.MustSh(t, `bsplan "$SRC/snaps/" "$DST/" | tee "$DST/../plan"`, env...)
	steps := planSteps(t, r.Stdout)
	if len(steps) != 3 || steps[0].Parent != nil || steps[1].Parent == nil || steps[1].Parent.Path != "s1" || steps[2].Parent.Path != "s2" {
		t.Fatalf("first plan:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "3 to send: 1 full, 2 incremental") {
		t.Errorf("summary: %s", r.Stderr)
	}
	var planned int64
	for _, s := range steps {
		if !s.Exact || s.Size <= 0 {
			t.Errorf("step %s: size %d exact %v, want a measured size", s.Snapshot.Path, s.Size, s.Exact)
		}
		planned += s.Size
	}
	// The measured sizes match the real streams closely.
	r = harness.MustSh(t, `bssend < "$DST/../plan" | wc -c`, env...)
	real, _ := strconv.ParseInt(strings.TrimSpace(r.Stdout), 10, 64)
	if real <= 0 || planned < real*95/100 || planned > real*105/100 {
		t.Errorf("planned %d bytes, streams hold %d", planned, real)
	}
	harness.MustSh(t, `bssend < "$DST/../plan" | bsrecv "$DST/" > /dev/null`, env...)
	harness.MustSh(t, `for s in s1 s2 s3; do diff -r "$SRC/snaps/$s" "$DST/$s"; done`, env...)

	// Second run: nothing to do.
	r = harness.MustSh(t, `bsplan "$SRC/snaps/" "$DST/"`, env...)
	if r.Stdout != "" || !strings.Contains(r.Stderr, "0 to send") {
		t.Fatalf("second plan:\nstdout %s\nstderr %s", r.Stdout, r.Stderr)
	}

	// A middle snapshot deleted at the source: the next new one is still
	// sent incrementally, from the newest both sides have.
	harness.MustSh(t, `
		btrfs -q subvolume delete "$SRC/snaps/s2"
		echo three > "$SRC/vol/d/f" && btrfs -q subvolume snapshot -r "$SRC/vol" "$SRC/snaps/s4"
	`, env...)
	r = harness.MustSh(t, `bsplan "$SRC/snaps/" "$DST/" | tee "$DST/../plan2"`, env...)
	steps = planSteps(t, r.Stdout)
	if len(steps) != 1 || steps[0].Snapshot.Path != "s4" || steps[0].Parent == nil || steps[0].Parent.Path != "s3" {
		t.Fatalf("plan after deleting s2:\n%s", r.Stdout)
	}
	if steps[0].Size > 200000 {
		t.Errorf("incremental s4 measured %d bytes; a small change", steps[0].Size)
	}
	harness.MustSh(t, `bssend < "$DST/../plan2" | bsrecv "$DST/" > /dev/null && diff -r "$SRC/snaps/s4" "$DST/s4"`, env...)

	// -d: s2 is no longer at the source. bsrm refuses a location it was
	// not given and deletes nothing; given DST it deletes s2 only.
	r = harness.MustSh(t, `bsplan -d "$SRC/snaps/" "$DST/" | tee "$DST/../plan3"`, env...)
	steps = planSteps(t, r.Stdout)
	if len(steps) != 1 || steps[0].Op != plan.OpDelete || steps[0].Snapshot.Path != "s2" || steps[0].Reason != plan.ReasonNotInSource {
		t.Fatalf("delete plan:\n%s", r.Stdout)
	}
	r = harness.Sh(t, `bsrm "$SRC/snaps/" < "$DST/../plan3"`, env...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "bsrm: error: stdin line 1: refusing to delete "+dst+"/s2: not within "+src+"/snaps/") {
		t.Fatalf("foreign location: exit %d\n%s", r.Code, r.Stderr)
	}
	harness.MustSh(t, `test -d "$DST/s2"`, env...)
	r = harness.MustSh(t, `bsrm "$DST/" < "$DST/../plan3"`, env...)
	if !strings.Contains(r.Stdout, `"path":"s2"`) || !strings.Contains(r.Stdout, `"status":"deleted"`) {
		t.Errorf("bsrm output: %s", r.Stdout)
	}
	harness.MustSh(t, `test ! -e "$DST/s2" && test -d "$DST/s1" && test -d "$DST/s3" && test -d "$DST/s4"`, env...)
	r = harness.MustSh(t, `bsplan -d "$SRC/snaps/" "$DST/"`, env...)
	if r.Stdout != "" {
		t.Errorf("after bsrm, plan is not empty: %s", r.Stdout)
	}
}

// One snapshot (SRC/NAME) goes below DST under its name, from a parent the
// destination has; a saved listing plans the same as a live one.
func TestPlanOneSnapshotAndLists(t *testing.T) {
	src := planSource(t)
	dst := harness.Btrfs(t, 400)
	env := []string{"SRC=" + src, "DST=" + dst}
	harness.MustSh(t, `bssend "$SRC/snaps/s1" | bsrecv "$DST/" > /dev/null`, env...)
	r := harness.MustSh(t, `bsplan "$SRC/snaps/s3" "$DST/"`, env...)
	steps := planSteps(t, r.Stdout)
	if len(steps) != 1 || steps[0].Snapshot.Path != "s3" || steps[0].Parent == nil || steps[0].Parent.Path != "s1" {
		t.Fatalf("one snapshot plan:\n%s", r.Stdout)
	}
	r2 := harness.MustSh(t, `bsls "$SRC/snaps/" > "$DST/../src.jsonl" && bsls "$DST/" > "$DST/../dst.jsonl"
		bsplan -e --src-list "$DST/../src.jsonl" --dst-list "$DST/../dst.jsonl" "$SRC/snaps/s3" "$DST/"`, env...)
	steps2 := planSteps(t, r2.Stdout)
	if len(steps2) != 1 || steps2[0].Parent == nil || steps2[0].Parent.Path != "s1" || steps2[0].Exact {
		t.Fatalf("plan from lists:\n%s", r2.Stdout)
	}
	harness.MustSh(t, `bsplan "$SRC/snaps/s3" "$DST/" | bssend | bsrecv "$DST/" > /dev/null && diff -r "$SRC/snaps/s3" "$DST/s3"`, env...)
}

// Bad input gets one clear line and a documented exit code; bsrm deletes
// nothing it was not asked to, or that is not what the plan named.
func TestPlanFaults(t *testing.T) {
	src := planSource(t)
	dst := harness.Btrfs(t, 200)
	env := []string{"SRC=" + src, "DST=" + dst}
	harness.MustSh(t, `bsplan "$SRC/snaps/" "$DST/" | bssend | bsrecv "$DST/" > /dev/null
		printf '{"kind":"subvolume","path":"x"}\nnot json\n' > "$DST/../bad.jsonl"`, env...)
	tests := []struct {
		name, script, stderr string
		code                 int
	}{
		{"bad location", `bsplan "scp:/x" "$DST/"`, `bsplan: error: location "scp:/x": unknown form`, 2},
		{"no such snapshot", `bsplan "$SRC/snaps/nope" "$DST/"`, "bsplan: error: " + src + "/snaps/nope: no such snapshot", 1},
		{"bad list", `bsplan --src-list "$DST/../bad.jsonl" "$SRC/snaps/" "$DST/"`, "bad.jsonl line 2: not a JSON object", 1},
		{"same directory", `bsplan "$DST/" "$DST/"`, "bsplan: error: source and destination are the same directory", 2},
		{"prune without schedule", `bsplan --prune "$SRC/snaps/" "$DST/"`, "bsplan: error: --prune needs --schedule", 2},
		{"bad schedule", `bsplan --schedule 3x "$SRC/snaps/" "$DST/"`, `bsplan: error: schedule "3x": unknown unit`, 2},
		{"bad zone", `bsplan --schedule 1d --tz Mars/Base "$SRC/snaps/" "$DST/"`, `bsplan: error: time zone "Mars/Base"`, 2},
		{"escaping path", `echo '{"op":"delete","dst":"'"$DST"'/","snapshot":{"kind":"subvolume","path":"../x"}}' | bsrm "$DST/"`, `invalid snapshot name "../x": '..' component`, 1},
		{"unclean path", `echo '{"op":"delete","dst":"'"$DST"'/","snapshot":{"kind":"subvolume","path":"a/../../x"}}' | bsrm "$DST/"`, `invalid snapshot name "a/../../x": '..' component`, 1},
		{"outside", `echo '{"op":"delete","dst":"/","snapshot":{"kind":"subvolume","path":"etc"}}' | bsrm "$DST/"`, "refusing to delete /etc: not within " + dst + "/", 1},
		{"bad step", `echo '{"op":"delete",' | bsrm "$DST/"`, "bsrm: error: stdin line 1:", 1},
		{"unknown op", `echo '{"op":"format","dst":"'"$DST"'/","snapshot":{"path":"s1"}}' | bsrm "$DST/"`, `unknown op "format"`, 1},
		{"writable", `btrfs -q subvolume create "$DST/w" && bsrm "$DST/w"`, "bsrm: error: " + dst + "/w: no such read-only snapshot", 1},
		{"writable by step", `u=$(btrfs subvolume show "$DST/w" | awk '$1 == "UUID:" {print $2}')
			echo '{"op":"delete","dst":"'"$DST"'/","snapshot":{"kind":"subvolume","path":"w","uuid":"'"$u"'"}}' | bsrm "$DST/"`, "refusing to delete a writable subvolume", 1},
		{"no uuid", `echo '{"op":"delete","dst":"'"$DST"'/","snapshot":{"kind":"subvolume","path":"s1"}}' | bsrm "$DST/"`, dst + "/s1: step has no uuid", 1},
		{"symlink out", `u=$(btrfs subvolume show "$SRC/snaps/s1" | awk '$1 == "UUID:" {print $2}'); ln -s "$SRC/snaps" "$DST/link"
			echo '{"op":"delete","dst":"'"$DST"'/","snapshot":{"kind":"subvolume","path":"link/s1","uuid":"'"$u"'"}}' | bsrm "$DST/"`, dst + "/link: is a symbolic link", 1},
		{"replaced", `u=$(bsls "$DST/s2" | sed 's/.*"uuid":"\([^"]*\)".*/\1/'); btrfs -q subvolume delete "$DST/s2"; btrfs -q subvolume snapshot -r "$DST/s1" "$DST/s2"
			echo '{"op":"delete","dst":"'"$DST"'/","snapshot":{"kind":"subvolume","path":"s2","uuid":"'"$u"'"}}' | bsrm "$DST/"`, "not deleted", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.Sh(t, tc.script, env...)
			if r.Code != tc.code || !strings.Contains(r.Stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", r.Code, r.Stderr, tc.code, tc.stderr)
			}
		})
	}
	// Nothing was deleted by any of them.
	harness.MustSh(t, `test -d "$DST/s1" && test -d "$DST/s2" && test -d "$DST/s3" && test -d "$DST/w" && test -d "$SRC/snaps/s1"`, env...)
}

// Back up to an object store (file://) and restore from it, with plans
// both ways: the restore fetches each object's chain in order, and -d on
// the store spares objects a kept snapshot's chain needs.
func TestPlanObjectStore(t *testing.T) {
	m := harness.StartMinIO(t)
	t.Run("s3", func(t *testing.T) { planObjectStore(t, "s3://"+m.Bucket+"/plan/", m.Env()) })
	t.Run("file", func(t *testing.T) { planObjectStore(t, "file://"+t.TempDir()+"/", nil) })
}

func planObjectStore(t *testing.T, store string, storeEnv []string) {
	src := planSource(t)
	dst := harness.Btrfs(t, 400)
	env := append([]string{"SRC=" + src, "DST=" + dst, "STORE=" + store}, storeEnv...)

	r := harness.MustSh(t, `bsplan "$SRC/snaps/" "$STORE" | tee "$DST/../plan" | bssend | bss3put "$STORE" > /dev/null; cat "$DST/../plan"`, env...)
	steps := planSteps(t, r.Stdout)
	if len(steps) != 3 || steps[0].Chain != 1 || steps[1].Chain != 2 || steps[2].Chain == 0 {
		t.Fatalf("backup plan:\n%s", r.Stdout)
	}
	r = harness.MustSh(t, `bsplan "$SRC/snaps/" "$STORE"`, env...)
	if r.Stdout != "" {
		t.Fatalf("second backup plan not empty:\n%s", r.Stdout)
	}

	// Copy the store to another one, re-encoded (zstd and age there):
	// the same objects, each from the same parent; a second copy plans
	// nothing; a restore from the copy gives the same tree.
	copyDir := t.TempDir()
	env = append(env, "COPY=file://"+copyDir+"/", "KEYS="+t.TempDir())
	harness.MustSh(t, `age-keygen -o "$KEYS/id" 2>/dev/null
		bsplan -q "$STORE" "$COPY" | bss3get | bss3put --zstd --age-recipients-file <(age-keygen -y "$KEYS/id") "$COPY" > /dev/null
		[ -z "$(bsplan -q "$STORE" "$COPY")" ]
		btrfs -q subvolume create "$DST/copy" && bsplan -q "${COPY}s3" "$DST/copy/" | bss3get --age-identity "$KEYS/id" | bsrecv "$DST/copy/" > /dev/null
		diff -r "$SRC/snaps/s3" "$DST/copy/s3"
		btrfs -q subvolume delete "$DST"/copy/* && rmdir "$DST/copy"`, env...)
	orig := harness.MustSh(t, `bsls --json "$STORE" | jq -r '[.path, .uuid, .send_parent_uuid] | @tsv' | sort`, env...)
	copied := harness.MustSh(t, `bsls --json "$COPY" | jq -r 'select(.encoding == "zstd.age") | [.path, .uuid, .send_parent_uuid] | @tsv' | sort`, env...)
	if orig.Stdout != copied.Stdout || strings.Count(orig.Stdout, "\n") != 3 {
		t.Fatalf("copy holds other objects:\n%s\nthan the store:\n%s", copied.Stdout, orig.Stdout)
	}

	// Restore s3 alone: its chain comes along, parents first.
	r = harness.MustSh(t, `bsplan "${STORE}s3" "$DST/" | tee "$DST/../restore"`, env...)
	steps = planSteps(t, r.Stdout)
	if len(steps) != 3 || steps[0].Parent != nil || steps[2].Snapshot.Path != "s3" {
		t.Fatalf("restore plan:\n%s", r.Stdout)
	}
	for _, s := range steps {
		if s.Snapshot.Key == "" || !s.Exact {
			t.Errorf("restore step without key or exact size: %+v", s)
		}
		if s.Parent != nil && s.Parent.EffectiveUUID() != s.Snapshot.SendParentUUID {
			t.Errorf("restore step %s: parent %s is not the stream's parent %s", s.Snapshot.Path, s.Parent.EffectiveUUID(), s.Snapshot.SendParentUUID)
		}
	}
	harness.MustSh(t, `bss3get < "$DST/../restore" | bsrecv "$DST/" > /dev/null && diff -r "$SRC/snaps/s3" "$DST/s3"`, env...)
	r = harness.MustSh(t, `bsplan "${STORE}s3" "$DST/"`, env...)
	if r.Stdout != "" {
		t.Fatalf("restore again plans:\n%s", r.Stdout)
	}

	// s1 and s2 gone from the source: -d must not delete their objects,
	// which s3's stored chain needs.
	harness.MustSh(t, `btrfs -q subvolume delete "$SRC/snaps/s1" "$SRC/snaps/s2"`, env...)
	r = harness.MustSh(t, `bsplan -d "$SRC/snaps/" "$STORE"`, env...)
	if r.Stdout != "" {
		t.Fatalf("-d plans deleting a chain s3 needs:\n%s", r.Stdout)
	}
	// Named: s1's object is the full stream under s2 and s3: refused.
	r = harness.Sh(t, `bsrm "${STORE}s1"`, env...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "other stored snapshots are diffs from it") {
		t.Fatalf("bsrm of a needed object: exit %d\n%s", r.Code, r.Stderr)
	}
	// A new full snapshot frees the old chain once s3 is gone too.
	harness.MustSh(t, `btrfs -q subvolume delete "$SRC/snaps/s3"
		btrfs -q subvolume snapshot -r "$SRC/vol" "$SRC/snaps/s5"
		bsplan "$SRC/snaps/" "$STORE" | bssend | bss3put "$STORE" > /dev/null
		bsplan -d "$SRC/snaps/" "$STORE" | bsrm "$STORE" > "$DST/../rm5"`, env...)
	r = harness.MustSh(t, `cat "$DST/../rm5"; bsls "$STORE"`, env...)
	if strings.Count(r.Stdout, `"status":"deleted"`) != 3 || strings.Count(r.Stdout, `"kind":"object"`) != 1 {
		t.Fatalf("after pruning the old chain:\n%s", r.Stdout)
	}
}

// Schedule mode on a real filesystem: snapshots dated by their ctime,
// applied as at a given time; the summary names the zone.
func TestPlanSchedule(t *testing.T) {
	src := harness.Btrfs(t, 200)
	harness.MustSh(t, `
		cd "$SRC" && btrfs -q subvolume create vol && mkdir snaps
		head -c 4000000 /dev/urandom > vol/a
		for s in s1 s2 s3; do echo $s >> vol/log; btrfs -q subvolume snapshot -r vol snaps/$s; done
	`, "SRC="+src)
	store := t.TempDir()
	env := []string{"SRC=" + src, "STORE=file://" + store + "/"}
	r := harness.MustSh(t, `bsplan --schedule "1d 2h" --tz Europe/Berlin --prune "$SRC/snaps/" "$STORE"`, env...)
	steps := planSteps(t, r.Stdout)
	// All three were made within a second: s1 is the day's and the hour's
	// first, s3 the newest; s2 is kept by nothing.
	if len(steps) != 2 || steps[0].Snapshot.Path != "s1" || steps[0].Parent != nil || steps[1].Snapshot.Path != "s3" || steps[1].Parent.Path != "s1" {
		t.Fatalf("schedule plan:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, `schedule "1d 2h" in Europe/Berlin keeps 2`) {
		t.Errorf("summary: %s", r.Stderr)
	}
	r = harness.MustSh(t, `TZ=Asia/Tokyo bsplan -n --schedule 1y "$SRC/snaps/" "$STORE"`, env...)
	if !strings.Contains(r.Stderr, "in Asia/Tokyo") {
		t.Errorf("TZ not used: %s", r.Stderr)
	}
}
