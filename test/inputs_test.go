package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// Issue 12, items 4 and 5: failures are visible, odd names never stop a
// backup.

// inputsSource makes a source filesystem with a writable subvolume "vol",
// read-only snapshots snaps/a and snaps/c, and a writable one snaps/rw.
func inputsSource(t *testing.T) string {
	src := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol && mkdir snaps
		echo one > vol/f
		btrfs -q subvolume snapshot -r vol snaps/a
		echo two >> vol/f
		btrfs -q subvolume snapshot -r vol snaps/c
		btrfs -q subvolume snapshot vol snaps/rw
	`, "SRC="+src)
	return src
}

// lines counts the stderr lines that start with prefix.
func lines(stderr, prefix string) int {
	n := 0
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestMissingSource: a source that is not there (an unmounted disk, a
// typo, a missing bucket) is an error, never an empty store, and -d with
// an empty source is refused unless asked for. Only a destination store
// may be missing.
func TestMissingSource(t *testing.T) {
	src := inputsSource(t)
	dst := harness.Btrfs(t, 300)
	m := harness.StartMinIO(t)
	tmp := t.TempDir()
	env := append(m.Env(), "SRC="+src, "DST="+dst, "T="+tmp)
	harness.MustSh(t, `bsplan "$SRC/snaps/" "$DST/" | bssend | bsrecv "$DST/" >/dev/null
		bsplan "$SRC/snaps/" "file://$T/store/" | bssend | bss3put "file://$T/store/" >/dev/null
		mkdir "$SRC/empty" "$T/emptystore"`, env...)

	for _, tc := range []struct {
		name, script, want string
	}{
		{"file source missing", `bsplan "file://$T/unmounted/" "$DST/"`, "no such store directory"},
		{"file source missing, -d", `bsplan -d "file://$T/unmounted/" "$DST/"`, "no such store directory"},
		{"file source missing, bsls", `bsls "file://$T/unmounted/"`, "no such store directory"},
		{"file source missing, buttersink -d", `buttersink -d "file://$T/unmounted/" "$DST/"`, "no such store directory"},
		{"btrfs source missing, -d", `bsplan -d "$SRC/nonexistent/" "$DST/"`, "no such file or directory"},
		{"bucket missing", `bsplan -d "s3://no-such-bucket-here/x/" "$DST/"`, "does not exist"},
		{"bucket missing, bsls", `bsls "s3://no-such-bucket-here/"`, "does not exist"},
		{"empty btrfs source, -d", `bsplan -d "$SRC/empty/" "$DST/"`, "--allow-empty-source"},
		{"empty file source, -d", `bsplan -d "file://$T/emptystore/" "file://$T/store/"`, "--allow-empty-source"},
		{"empty s3 prefix, -d", `bsplan -d "s3://$BUCKET/nothing/" "$DST/"`, "--allow-empty-source"},
		{"empty source list, -d", `bsplan -d --src-list /dev/null "$SRC/snaps/" "$DST/"`, "--allow-empty-source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.Sh(t, tc.script, env...)
			if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("%s: exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", tc.script, r.Code, tc.want, r.Stdout, r.Stderr)
			}
		})
	}
	// Nothing was deleted by any of them.
	if r := harness.MustSh(t, `bsls "$DST/" | grep -c .`, env...); strings.TrimSpace(r.Stdout) != "2" {
		t.Fatalf("destination lost snapshots: %s", r.Stdout)
	}

	// Asked for, the empty source deletes.
	r := harness.MustSh(t, `bsplan -d --allow-empty-source "$SRC/empty/" "$DST/"`, env...)
	if steps := planSteps(t, r.Stdout); len(steps) != 2 || steps[0].Op != "delete" {
		t.Errorf("--allow-empty-source: %s", r.Stdout)
	}
	// A destination store may be missing: it is created by the first write.
	r = harness.MustSh(t, `bsplan "$SRC/snaps/" "file://$T/new/"; bsplan "$SRC/snaps/" "s3://$BUCKET/new/"`, env...)
	if steps := planSteps(t, r.Stdout); len(steps) != 4 {
		t.Errorf("plans to new stores:\n%s\n%s", r.Stdout, r.Stderr)
	}
	// -d with an empty source and nothing at the destination: nothing to refuse.
	harness.MustSh(t, `bsplan -d "$SRC/empty/" "file://$T/new/"`, env...)
}

// TestSkippedNamed: bsplan names the writable subvolumes it skips, with
// the hint to snapshot them read-only; naming one gets the hint, not "no
// such snapshot". bsls s3://bucket/prefix without the slash hints at it.
func TestSkippedNamed(t *testing.T) {
	src := inputsSource(t)
	dst := harness.Btrfs(t, 300)
	env := []string{"SRC=" + src, "DST=" + dst}

	r := harness.MustSh(t, `bsplan "$SRC/snaps/" "$DST/"`, env...)
	if len(planSteps(t, r.Stdout)) != 2 || !strings.Contains(r.Stderr, src+"/snaps/rw: skipped: a writable subvolume") ||
		!strings.Contains(r.Stderr, "btrfs subvolume snapshot -r") {
		t.Errorf("writable snaps/rw not named:\n%s", r.Stderr)
	}
	// From the pool's root: the live subvolume is named too, but -q
	// quiets it; the writable snapshot still warns.
	r = harness.MustSh(t, `bsplan "$SRC/" "$DST/" >/dev/null`, env...)
	if !strings.Contains(r.Stderr, src+"/vol: skipped") || !strings.Contains(r.Stderr, src+"/snaps/rw: skipped") {
		t.Errorf("bsplan SRC/:\n%s", r.Stderr)
	}
	r = harness.MustSh(t, `bsplan -q "$SRC/" "$DST/" >/dev/null`, env...)
	if strings.Contains(r.Stderr, src+"/vol: skipped") || !strings.Contains(r.Stderr, src+"/snaps/rw: skipped") {
		t.Errorf("bsplan -q SRC/:\n%s", r.Stderr)
	}
	for _, name := range []string{"vol", "snaps/rw"} {
		r = harness.Sh(t, `bsplan "$SRC/`+name+`" "$DST/"`, env...)
		if r.Code != 1 || strings.Contains(r.Stderr, "no such snapshot") || !strings.Contains(r.Stderr, "writable subvolume") ||
			!strings.Contains(r.Stderr, "bsplan: hint: snapshot it read-only") {
			t.Errorf("bsplan SRC/%s: exit %d\n%s", name, r.Code, r.Stderr)
		}
	}

	m := harness.StartMinIO(t)
	menv := append(m.Env(), env...)
	harness.MustSh(t, `bsplan "$SRC/snaps/" "s3://$BUCKET/host/" | bssend | bss3put "s3://$BUCKET/host/" >/dev/null`, menv...)
	for _, loc := range []string{"s3://$BUCKET/host", "file://" + t.TempDir() + "/store"} {
		if strings.HasPrefix(loc, "file://") {
			harness.MustSh(t, `bsplan "$SRC/snaps/" "`+loc+`/" | bssend | bss3put "`+loc+`/" >/dev/null`, menv...)
		}
		r = harness.Sh(t, `bsls "`+loc+`"`, menv...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "bsls: hint: to list the snapshots below a directory, end it with a slash") {
			t.Errorf("bsls %s: exit %d\n%s", loc, r.Code, r.Stderr)
		}
		if r = harness.MustSh(t, `bsls "`+loc+`/a" | grep -c .`, menv...); strings.TrimSpace(r.Stdout) != "1" {
			t.Errorf("bsls %s/a: %s", loc, r.Stdout)
		}
	}
}

// TestNotRoot: every command that needs btrfs ioctls only root may use
// says so in one line, not as a stream parse error.
func TestNotRoot(t *testing.T) {
	harness.RequireCommand(t, "setpriv")
	src := inputsSource(t)
	dst := harness.Btrfs(t, 300)
	stream := filepath.Join(t.TempDir(), "a.stream")
	harness.MustSh(t, `bssend "$SRC/snaps/a" > "$STREAM"; bsrecv "$DST/" < "$STREAM" >/dev/null; mkdir -m 777 "$DST/in"
		chmod 644 "$STREAM"`, "SRC="+src, "DST="+dst, "STREAM="+stream)
	// Let nobody reach the commands, the mounts and the stream.
	for _, d := range []string{harness.Bin(t), filepath.Dir(src), filepath.Dir(dst), filepath.Dir(stream)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"SRC=" + src, "DST=" + dst, "STREAM=" + stream}
	const nobody = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
	for _, c := range []struct{ name, cmd string }{
		{"bsplan", `bsplan "$SRC/snaps/" "$DST/in/"`},
		{"bssend", `bssend "$SRC/snaps/a" >/dev/null`},
		{"bssend", `bsplan -e "$SRC/snaps/" "$DST/in/" | ` + nobody + `bssend >/dev/null`},
		{"bsrecv", `bsrecv "$DST/in/" < "$STREAM"`},
		{"bsrm", `bsrm "$DST/a"`},
	} {
		r := harness.Sh(t, nobody+c.cmd, env...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "needs root (CAP_SYS_ADMIN)") || lines(r.Stderr, c.name+": error: ") != 1 ||
			strings.Contains(r.Stderr, "stream") {
			t.Errorf("%s as nobody: exit %d\n%s", c.cmd, r.Code, r.Stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "a")); err != nil {
		t.Errorf("bsrm as nobody: %v", err)
	}
}

// TestOddNames: a snapshot name that is not UTF-8 travels exactly, to
// btrfs and through object stores; one too long for a key once escaped is
// named by bsplan and the rest of the backup proceeds.
func TestOddNames(t *testing.T) {
	src := harness.Btrfs(t, 300)
	odd := "b\xff\xfe"
	long := strings.Repeat("ü", 50) // 100 bytes, 300 in a key
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol && mkdir snaps
		echo one > vol/f; btrfs -q subvolume snapshot -r vol snaps/a
		echo two > vol/f; btrfs -q subvolume snapshot -r vol "snaps/$ODD"
		echo three > vol/f; btrfs -q subvolume snapshot -r vol "snaps/$LONG"
		echo four > vol/f; btrfs -q subvolume snapshot -r vol snaps/c
	`, "SRC="+src, "ODD="+odd, "LONG="+long)
	names := func(dir string) string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return strings.Join(n, "|")
	}
	check := func(dir, want string) {
		t.Helper()
		if got := names(dir); got != want {
			t.Errorf("%s holds %q, want %q", dir, got, want)
		}
		for _, n := range strings.Split(want, "|") {
			if b, err := os.ReadFile(filepath.Join(dir, n, "f")); err != nil || len(b) == 0 {
				t.Errorf("%s/%q: %v", dir, n, err)
			}
		}
	}

	// btrfs to btrfs: every name, exactly.
	dst := harness.Btrfs(t, 300)
	harness.MustSh(t, `buttersink "$SRC/snaps/" "$DST/"`, "SRC="+src, "DST="+dst)
	check(dst, "a|"+odd+"|c|"+long)
	// A delete step names it exactly too: gone from the source, -d
	// deletes it at the destination, and only it.
	harness.MustSh(t, `btrfs -q subvolume delete "$SRC/snaps/$ODD"; buttersink -d "$SRC/snaps/" "$DST/"
		btrfs -q subvolume snapshot -r "$SRC/vol" "$SRC/snaps/$ODD"`, "SRC="+src, "DST="+dst, "ODD="+odd)
	check(dst, "a|c|"+long)

	m := harness.StartMinIO(t)
	for _, store := range []string{"s3://" + m.Bucket + "/odd/", "file://" + t.TempDir() + "/odd/"} {
		env := append(m.Env(), "SRC="+src, "STORE="+store)
		r := harness.MustSh(t, `buttersink "$SRC/snaps/" "$STORE"`, env...)
		if !strings.Contains(r.Stderr, "skipped: cannot be stored at "+store) || !strings.Contains(r.Stderr, "300 bytes") {
			t.Errorf("%s: the unstorable name is not reported:\n%s", store, r.Stderr)
		}
		back := harness.Btrfs(t, 300)
		env = append(env, "BACK="+back)
		harness.MustSh(t, `buttersink "$STORE" "$BACK/"`, env...)
		check(back, "a|"+odd+"|c")
		// A second run has nothing to do: the odd name matches itself.
		r = harness.MustSh(t, `bsplan "$SRC/snaps/" "$STORE"; bsplan "$STORE" "$BACK/"`, env...)
		if r.Stdout != "" {
			t.Errorf("%s: second run plans\n%s", store, r.Stdout)
		}
	}
}
