package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/test/harness"
)

// bslsTree builds a filesystem with every kind of subvolume bsls must
// describe: a writable working subvolume with a nested one, read-only
// snapshots in nested directories, a snapshot of a snapshot, and full and
// incremental snapshots received with btrfs send | btrfs receive.
func bslsTree(t *testing.T) string {
	t.Helper()
	mnt := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		cd "$MNT"
		btrfs -q subvolume create vol
		head -c 200000 /dev/urandom > vol/data
		mkdir -p vol/dir && echo one > vol/dir/f
		btrfs -q subvolume create vol/nested
		mkdir -p snaps/2026/01 snaps/2026/02 recv
		btrfs -q subvolume snapshot -r vol snaps/2026/01/a
		echo two >> vol/dir/f
		btrfs -q subvolume snapshot -r vol snaps/2026/02/b
		btrfs -q subvolume snapshot -r snaps/2026/01/a snaps/a-of-a
		btrfs send -q snaps/2026/01/a | btrfs receive -q recv
		btrfs send -q -p snaps/2026/01/a snaps/2026/02/b | btrfs receive -q recv
		btrfs -q subvolume snapshot vol rw-clone
		btrfs filesystem sync .
	`, "MNT="+mnt)
	return mnt
}

func bslsJSON(t *testing.T, args string) []snapshot.Snapshot {
	t.Helper()
	r := harness.MustSh(t, "bsls "+args)
	var out []snapshot.Snapshot
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if line == "" {
			continue
		}
		var s snapshot.Snapshot
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("bsls %s: line %q: %v", args, line, err)
		}
		out = append(out, s)
	}
	return out
}

func paths(recs []snapshot.Snapshot) string {
	var p []string
	for _, r := range recs {
		p = append(p, r.Path)
	}
	return strings.Join(p, " ")
}

// showFields parses `btrfs subvolume show` (in tests only) into name→value.
func showFields(t *testing.T, p string) map[string]string {
	t.Helper()
	out, err := exec.Command("btrfs", "subvolume", "show", p).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs subvolume show %s: %v: %s", p, err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// rootItems parses `btrfs inspect-internal dump-tree -t 1` (in tests only):
// the root items as written on disk, keyed by subvolume id.
func rootItems(t *testing.T, mnt string) map[uint64]map[string]string {
	t.Helper()
	src, err := exec.Command("findmnt", "-n", "-o", "SOURCE", mnt).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", mnt, err)
	}
	out, err := exec.Command("btrfs", "inspect-internal", "dump-tree", "-t", "1", strings.TrimSpace(string(src))).Output()
	if err != nil {
		t.Fatalf("dump-tree: %v", err)
	}
	items := map[uint64]map[string]string{}
	keyRE := regexp.MustCompile(`^item \d+ key \((\d+) ROOT_ITEM \d+\)`)
	fieldRE := regexp.MustCompile(`(flags|uuid|parent_uuid|received_uuid|ctransid|otransid|stransid|rtransid|ctime|otime|stime|rtime|generation) (\S+)`)
	var cur map[string]string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "item ") {
			cur = nil
			if m := keyRE.FindStringSubmatch(line); m != nil {
				id, _ := strconv.ParseUint(m[1], 10, 64)
				cur = map[string]string{}
				items[id] = cur
			}
			continue
		}
		if cur == nil {
			continue
		}
		for _, m := range fieldRE.FindAllStringSubmatch(line, -1) {
			if _, seen := cur[m[1]]; !seen {
				cur[m[1]] = m[2]
			}
		}
	}
	return items
}

// dumpTime reads dump-tree's "SEC.NSEC" (NSEC printed unpadded).
func dumpTime(t *testing.T, s string) time.Time {
	sec, nsec, _ := strings.Cut(s, ".")
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(nsec, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("dump-tree time %q", s)
	}
	if a == 0 && b == 0 {
		return time.Time{}
	}
	return time.Unix(a, b)
}

func uuidOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// TestBslsMatchesKernel cross-checks every field bsls prints against what
// btrfs-progs reads: `btrfs subvolume show` (ioctls) and dump-tree (the
// root items on disk), and checks Info (GET_SUBVOL_INFO) against List
// (tree search) for every subvolume.
func TestBslsMatchesKernel(t *testing.T) {
	mnt := bslsTree(t)
	all := bslsJSON(t, "--all --json "+mnt+"/")
	if got, want := paths(all), "recv/a recv/b rw-clone snaps/2026/01/a snaps/2026/02/b snaps/a-of-a vol vol/nested"; got != want {
		t.Fatalf("bsls --all paths:\n got %s\nwant %s", got, want)
	}
	ro := bslsJSON(t, mnt+"/")
	if got, want := paths(ro), "recv/a recv/b snaps/2026/01/a snaps/2026/02/b snaps/a-of-a"; got != want {
		t.Fatalf("bsls paths:\n got %s\nwant %s", got, want)
	}

	// The subvolume set and paths agree with btrfs subvolume list.
	out := harness.MustSh(t, `btrfs subvolume list -u "$MNT"`, "MNT="+mnt).Stdout
	listRE := regexp.MustCompile(`^ID (\d+) .* uuid (\S+) path (\S+)$`)
	var progs []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := listRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("btrfs subvolume list line %q", line)
		}
		progs = append(progs, m[3]+"="+m[1]+"="+m[2])
	}
	var ours []string
	for _, r := range all {
		ours = append(ours, fmt.Sprintf("%s=%d=%s", r.Path, r.ID, r.UUID))
	}
	sort.Strings(progs)
	sort.Strings(ours)
	if strings.Join(progs, "\n") != strings.Join(ours, "\n") {
		t.Errorf("btrfs subvolume list:\n%s\nbsls:\n%s", strings.Join(progs, "\n"), strings.Join(ours, "\n"))
	}

	items := rootItems(t, mnt)
	byPath := map[string]snapshot.Snapshot{}
	for _, r := range all {
		byPath[r.Path] = r
		p := filepath.Join(mnt, r.Path)
		show := showFields(t, p)
		checks := []struct{ field, got, want string }{
			{"UUID", r.UUID.String(), show["UUID"]},
			{"Parent UUID", uuidOrDash(r.ParentUUID.String()), show["Parent UUID"]},
			{"Received UUID", uuidOrDash(r.ReceivedUUID.String()), show["Received UUID"]},
			{"Subvolume ID", strconv.FormatUint(r.ID, 10), show["Subvolume ID"]},
			{"Gen at creation", strconv.FormatUint(r.OTransID, 10), show["Gen at creation"]},
			{"Send transid", strconv.FormatUint(r.STransID, 10), show["Send transid"]},
			{"Receive transid", strconv.FormatUint(r.RTransID, 10), show["Receive transid"]},
			{"Flags readonly", strconv.FormatBool(r.ReadOnly), strconv.FormatBool(show["Flags"] == "readonly")},
			{"Creation time", r.OTime.Local().Format("2006-01-02 15:04:05 -0700"), show["Creation time"]},
		}
		it := items[r.ID]
		if it == nil {
			t.Fatalf("%s: no root item %d in dump-tree", r.Path, r.ID)
		}
		checks = append(checks, []struct{ field, got, want string }{
			{"root uuid", r.UUID.Canonical(), it["uuid"]},
			{"root parent_uuid", r.ParentUUID.Canonical(), it["parent_uuid"]},
			{"root received_uuid", r.ReceivedUUID.Canonical(), it["received_uuid"]},
			{"root ctransid", strconv.FormatUint(r.CTransID, 10), it["ctransid"]},
			{"root otransid", strconv.FormatUint(r.OTransID, 10), it["otransid"]},
			{"root stransid", strconv.FormatUint(r.STransID, 10), it["stransid"]},
			{"root rtransid", strconv.FormatUint(r.RTransID, 10), it["rtransid"]},
			{"root ctime", r.CTime.UTC().String(), dumpTime(t, it["ctime"]).UTC().String()},
			{"root otime", r.OTime.UTC().String(), dumpTime(t, it["otime"]).UTC().String()},
			{"root flags RDONLY", strconv.FormatBool(r.ReadOnly), strconv.FormatBool(strings.Contains(it["flags"], "RDONLY"))},
		}...)
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: %s: bsls %q, btrfs-progs %q", r.Path, c.field, c.got, c.want)
			}
		}

		// GET_SUBVOL_INFO (live) against the tree search (committed,
		// synced above): the same subvolume field for field.
		info, err := btrfs.Info(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != r.ID || info.UUID != r.UUID || info.ParentUUID != r.ParentUUID || info.ReceivedUUID != r.ReceivedUUID ||
			info.CTransID != r.CTransID || info.OTransID != r.OTransID || info.STransID != r.STransID || info.RTransID != r.RTransID ||
			!info.CTime.Equal(r.CTime) || !info.OTime.Equal(r.OTime) || info.ReadOnly != r.ReadOnly {
			t.Errorf("%s: Info %+v differs from bsls %+v", r.Path, info, r)
		}
		if !info.STime.Equal(dumpTime(t, it["stime"])) || !info.RTime.Equal(dumpTime(t, it["rtime"])) {
			t.Errorf("%s: Info stime/rtime %v/%v, root item %s/%s", r.Path, info.STime, info.RTime, it["stime"], it["rtime"])
		}
	}

	// What the fields must mean, not only match.
	a, b, aa, ra, rb := byPath["snaps/2026/01/a"], byPath["snaps/2026/02/b"], byPath["snaps/a-of-a"], byPath["recv/a"], byPath["recv/b"]
	vol := byPath["vol"]
	switch {
	case a.ParentUUID != vol.UUID || b.ParentUUID != vol.UUID:
		t.Errorf("snapshots of vol: parent uuids %s %s, want %s", a.ParentUUID, b.ParentUUID, vol.UUID)
	case aa.ParentUUID != a.UUID:
		t.Errorf("snapshot of a snapshot: parent uuid %s, want %s", aa.ParentUUID, a.UUID)
	case ra.ReceivedUUID != a.UUID || rb.ReceivedUUID != b.UUID:
		t.Errorf("received uuids %s %s, want %s %s", ra.ReceivedUUID, rb.ReceivedUUID, a.UUID, b.UUID)
	case rb.ParentUUID != ra.UUID:
		t.Errorf("incremental receive: parent uuid %s, want %s", rb.ParentUUID, ra.UUID)
	case ra.STransID != a.CTransID:
		t.Errorf("received stransid %d, sender ctransid %d", ra.STransID, a.CTransID)
	case vol.ReadOnly || !a.ReadOnly || vol.Partial || byPath["rw-clone"].Partial:
		t.Errorf("readonly/partial wrong: vol %+v a %+v", vol, a)
	}

	// One named snapshot and a subdirectory give the same records,
	// paths relative to their directory.
	one := bslsJSON(t, mnt+"/snaps/2026/01/a")
	want := a
	want.Path = "a"
	if len(one) != 1 || fmt.Sprint(one[0]) != fmt.Sprint(want) {
		t.Errorf("bsls DIR/a = %+v, want %+v", one, want)
	}
	sub := bslsJSON(t, "btrfs://"+mnt+"/snaps/")
	if got := paths(sub); got != "2026/01/a 2026/02/b a-of-a" {
		t.Errorf("bsls snaps/ paths %q", got)
	}
	if got := paths(bslsJSON(t, "--all "+mnt+"/vol/")); got != "nested" {
		t.Errorf("bsls vol/ paths %q, want nested", got)
	}
}

// TestBslsUnprivileged lists as nobody: the GET_SUBVOL_ROOTREF walk must
// give what the privileged tree search gives, and an unreadable directory
// is one clear error.
func TestBslsUnprivileged(t *testing.T) {
	harness.RequireCommand(t, "setpriv")
	mnt := bslsTree(t)
	// MkdirTemp made the loop mount's parent and the bin dir 0700.
	bin := t.TempDir()
	os.Chmod(bin, 0o755)
	harness.MustSh(t, `cp "$(command -v bsls)" "$BIN/" && chmod 755 "$BIN/bsls" && chmod 755 "$(dirname "$MNT")"`, "BIN="+bin, "MNT="+mnt)
	asNobody := func(args string) harness.Result {
		return harness.Sh(t, `setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/bsls" `+args, "BIN="+bin)
	}
	for _, args := range []string{"--all --json " + mnt + "/", "--json " + mnt + "/snaps/", "--json " + mnt + "/recv/b"} {
		root := harness.MustSh(t, "bsls "+args)
		nobody := asNobody(args)
		if nobody.Code != 0 || nobody.Stdout != root.Stdout || root.Stdout == "" {
			t.Errorf("bsls %s as nobody: exit %d, stderr %q\n got %s\nwant %s", args, nobody.Code, nobody.Stderr, nobody.Stdout, root.Stdout)
		}
	}
	harness.MustSh(t, `chmod 700 "$MNT/snaps"`, "MNT="+mnt)
	r := asNobody(mnt + "/snaps/")
	if r.Code != 1 || r.Stdout != "" || r.Stderr != "bsls: error: "+mnt+"/snaps: permission denied\n" {
		t.Errorf("unreadable dir as nobody: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

// TestBslsQuotas: sizes are null with quotas off and bsls leaves them off;
// with quotas on they are the qgroup sizes.
func TestBslsQuotas(t *testing.T) {
	mnt := bslsTree(t)
	fi, err := btrfs.GetFSInfo(mnt)
	if err != nil {
		t.Fatal(err)
	}
	sysfs := "/sys/fs/btrfs/" + fi.FSID.Canonical() + "/qgroups"
	if _, err := os.Stat("/sys/fs/btrfs/" + fi.FSID.Canonical()); err != nil {
		t.Fatalf("sysfs dir of the filesystem: %v", err)
	}
	for _, r := range bslsJSON(t, "--all "+mnt+"/") {
		if r.Referenced != nil || r.Exclusive != nil {
			t.Errorf("%s: sizes with quotas off: %v %v", r.Path, *r.Referenced, *r.Exclusive)
		}
	}
	harness.MustSh(t, `bsls --table "$MNT/" >/dev/null`, "MNT="+mnt)
	if _, err := os.Stat(sysfs); !os.IsNotExist(err) {
		t.Fatalf("quotas are on after bsls: %v", err)
	}
	if r := harness.Sh(t, `btrfs qgroup show "$MNT"`, "MNT="+mnt); r.Code == 0 {
		t.Fatalf("btrfs qgroup show works after bsls: quotas were enabled:\n%s", r.Stdout)
	}

	harness.MustSh(t, `btrfs quota enable "$MNT" && btrfs quota rescan -w "$MNT" >/dev/null && btrfs filesystem sync "$MNT"`, "MNT="+mnt)
	out := harness.MustSh(t, `btrfs qgroup show --raw --sync "$MNT"`, "MNT="+mnt).Stdout
	want := map[uint64][2]uint64{}
	re := regexp.MustCompile(`(?m)^0/(\d+)\s+(\d+)\s+(\d+)`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		id, _ := strconv.ParseUint(m[1], 10, 64)
		rf, _ := strconv.ParseUint(m[2], 10, 64)
		ex, _ := strconv.ParseUint(m[3], 10, 64)
		want[id] = [2]uint64{rf, ex}
	}
	recs := bslsJSON(t, "--all "+mnt+"/")
	big := false
	for _, r := range recs {
		if r.Referenced == nil || r.Exclusive == nil {
			t.Errorf("%s: null sizes with quotas on", r.Path)
			continue
		}
		w, ok := want[r.ID]
		if !ok || *r.Referenced != w[0] || *r.Exclusive != w[1] {
			t.Errorf("%s: referenced/exclusive %d/%d, btrfs qgroup show %v", r.Path, *r.Referenced, *r.Exclusive, w)
		}
		big = big || *r.Referenced > 200000
	}
	if !big {
		t.Errorf("no snapshot references its 200 kB file: sizes are not real")
	}
}

// TestBslsPartial: the leftovers of a cut receive are marked partial; a
// working subvolume is not.
func TestBslsPartial(t *testing.T) {
	mnt := bslsTree(t)
	// A receive cut mid-stream into recv/, next to received snapshots; and
	// a receive cut between setting the received UUID and read-only
	// (simulated with the same ioctls on a fresh subvolume).
	harness.MustSh(t, `
		cd "$MNT"
		btrfs -q subvolume snapshot -r vol snaps/c
		! btrfs send -q snaps/c | head -c 150000 | btrfs receive -q recv 2>/dev/null
		test -d recv/c
		btrfs -q subvolume create recv/d
	`, "MNT="+mnt)
	if err := btrfs.SetReceived(mnt+"/recv/d", byPathOf(t, mnt, "snaps/c").UUID, 7); err != nil {
		t.Fatal(err)
	}
	harness.MustSh(t, `btrfs -q subvolume create "$MNT/snaps/work" && btrfs filesystem sync "$MNT"`, "MNT="+mnt)
	recs := bslsJSON(t, "--all "+mnt+"/")
	got := map[string]bool{}
	for _, r := range recs {
		got[r.Path] = r.Partial
	}
	for p, want := range map[string]bool{"recv/c": true, "recv/d": true, "vol": false, "vol/nested": false, "rw-clone": false, "snaps/work": false, "recv/a": false} {
		if v, ok := got[p]; !ok || v != want {
			t.Errorf("%s: partial=%v (listed %v), want %v", p, v, ok, want)
		}
	}
	if one := bslsJSON(t, "--all "+mnt+"/recv/c"); len(one) != 1 || !one[0].Partial {
		t.Errorf("bsls --all recv/c = %+v, want partial", one)
	}
	if p := paths(bslsJSON(t, mnt+"/recv/")); p != "a b" {
		t.Errorf("default listing shows %q, want only the complete a b", p)
	}
	r := harness.Sh(t, `bsls "$MNT/recv/c"`, "MNT="+mnt)
	if r.Code != 1 || !strings.Contains(r.Stderr, "not read-only") {
		t.Errorf("bsls on a partial without --all: exit %d, %q", r.Code, r.Stderr)
	}
}

func byPathOf(t *testing.T, mnt, p string) btrfs.Subvol {
	t.Helper()
	s, err := btrfs.Info(filepath.Join(mnt, p))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBslsTable: a person gets aligned columns with "-" for unknowns and
// none that are empty in every row.
func TestBslsTable(t *testing.T) {
	mnt := bslsTree(t)
	out := harness.MustSh(t, `bsls --table "$MNT/"`, "MNT="+mnt).Stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("table has %d lines, want header + 5:\n%s", len(lines), out)
	}
	head := strings.Fields(lines[0])
	if strings.Join(head, " ") != "PATH UUID PARENT RECEIVED CTIME" { // no quotas: no sizes
		t.Errorf("table header %q", lines[0])
	}
	col := strings.Index(lines[0], "UUID")
	a := byPathOf(t, mnt, "snaps/2026/01/a")
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "snaps/2026/01/a ") && l[col:col+36] != a.UUID.String() {
			t.Errorf("UUID column not aligned: %q", l)
		}
	}
	if all := harness.MustSh(t, `bsls --table --all "$MNT/"`, "MNT="+mnt).Stdout; !strings.Contains(all, "STATE") || !regexp.MustCompile(`(?m)^vol .* rw$`).MatchString(all) {
		t.Errorf("--all table lacks the STATE column:\n%s", all)
	}
	if r := harness.Sh(t, `bsls --table --json "$MNT/"`, "MNT="+mnt); r.Code != 2 {
		t.Errorf("--table --json: exit %d, want 2", r.Code)
	}
}

// TestBslsBadInput: each fault is one "bsls: error:" line, exit 1 (2 for
// usage), nothing on stdout.
func TestBslsBadInput(t *testing.T) {
	mnt := bslsTree(t)
	harness.MustSh(t, `touch "$MNT/vol/file"`, "MNT="+mnt)
	tmpfs := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "tmpfs", tmpfs).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { harness.Unmount(t, tmpfs) })
	tests := []struct {
		name, args string
		code       int
		stderr     string // a substring of the error line
		hint       string
	}{
		{"nonexistent", mnt + "/nope/", 1, mnt + "/nope: no such file or directory", ""},
		{"nonexistent snapshot", mnt + "/snaps/nope", 1, mnt + "/snaps/nope: no such file or directory", ""},
		{"regular file", mnt + "/vol/file/", 1, mnt + "/vol/file: not a directory", ""},
		{"regular file named", mnt + "/vol/file", 1, mnt + "/vol/file: not a directory", ""},
		{"proc", "/proc/", 1, "/proc: not on a btrfs filesystem", "s3://"},
		{"tmpfs", tmpfs + "/", 1, tmpfs + ": not on a btrfs filesystem", "file://"},
		{"plain directory named", mnt + "/snaps", 1, mnt + "/snaps: not a btrfs subvolume", mnt + "/snaps/"},
		{"directory inside a subvolume named", mnt + "/vol/dir", 1, mnt + "/vol/dir: not a btrfs subvolume", ""},
		{"writable named", mnt + "/vol", 1, mnt + "/vol: not read-only", "--all"},
		{"malformed location", "host:/dir", 2, `location "host:/dir"`, ""},
		{"unknown scheme", "ftp://x/y/", 2, `unknown scheme "ftp"`, ""},
		{"unknown flag", "--frobnicate " + mnt + "/", 2, "unknown flag --frobnicate", "--help"},
		{"no location", "", 2, "expected \"<location>\"", ""},
		{"two locations", mnt + "/ " + mnt + "/", 2, "unexpected argument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := harness.Sh(t, "bsls "+tt.args)
			lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
			if r.Code != tt.code || r.Stdout != "" || !strings.HasPrefix(lines[0], "bsls: error: ") || !strings.Contains(lines[0], tt.stderr) {
				t.Fatalf("bsls %s: exit %d (want %d)\nstdout %q\nstderr %q (want %q)", tt.args, r.Code, tt.code, r.Stdout, r.Stderr, tt.stderr)
			}
			errLines := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "bsls: error: ") {
					errLines++
				} else if !strings.HasPrefix(l, "bsls: hint: ") {
					t.Errorf("stray stderr line %q", l)
				}
			}
			if errLines != 1 {
				t.Errorf("%d error lines in %q", errLines, r.Stderr)
			}
			if tt.hint != "" && (len(lines) != 2 || !strings.Contains(lines[1], tt.hint)) {
				t.Errorf("hint: stderr %q, want a hint with %q", r.Stderr, tt.hint)
			}
		})
	}
	for _, args := range []string{"--version", "-V", "--help"} {
		r := harness.Sh(t, "bsls "+args)
		if r.Code != 0 || !strings.Contains(r.Stdout, "bsls") {
			t.Errorf("bsls %s: exit %d, stdout %q stderr %q", args, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// TestBslsObjects: bsls lists s3:// and file:// stores through bss3ls
// (bsls does not link the AWS SDK), honouring the S3 flags bss3put takes,
// and prints the same records as bss3ls, as a failure its error line.
func TestBslsObjects(t *testing.T) {
	mnt := bslsTree(t)
	for _, st := range stores(t) {
		t.Run(st.name, func(t *testing.T) {
			var env []string
			flags := ""
			for _, kv := range st.env {
				if strings.HasPrefix(kv, "AWS_ENDPOINT_URL=") {
					// The flag, not the environment, must reach bss3ls.
					flags = "--endpoint-url=" + strings.TrimPrefix(kv, "AWS_ENDPOINT_URL=") + " "
					continue
				}
				env = append(env, kv)
			}
			env = append(env, "MNT="+mnt, "URL="+st.url, "F="+flags)
			harness.MustSh(t, `btrfs send -q "$MNT/snaps/2026/01/a" | bss3put $F "$URL"
				btrfs send -q -p "$MNT/snaps/2026/01/a" "$MNT/snaps/2026/02/b" | bss3put $F "$URL"`, env...)
			got := harness.MustSh(t, `bsls --json $F "$URL"`, env...).Stdout
			want := harness.MustSh(t, `bss3ls $F "$URL"`, env...).Stdout
			if got != want || strings.Count(got, `"kind":"object"`) != 2 {
				t.Errorf("bsls:\n%s\nbss3ls:\n%s", got, want)
			}
			one := harness.MustSh(t, `bsls --json $F "${URL}b"`, env...).Stdout
			if strings.Count(one, "\n") != 1 || !strings.Contains(one, `"path":"b"`) || !strings.Contains(one, `"send_parent_uuid":"`) {
				t.Errorf("bsls URL/b:\n%s", one)
			}
			if tab := harness.MustSh(t, `bsls --table $F "$URL"`, env...).Stdout; !strings.Contains(tab, "KEY") || strings.Count(tab, "\n") != 3 {
				t.Errorf("bsls --table:\n%s", tab)
			}
			if st.m == nil {
				return
			}
			r := harness.Sh(t, `bsls --endpoint-url=http://127.0.0.1:1 "$URL"`, env...)
			if r.Code != 1 || r.Stdout != "" || !strings.HasPrefix(r.Stderr, "bsls: error: ") || strings.Contains(r.Stderr, "bss3ls") {
				t.Errorf("bsls with a dead endpoint: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
			}
		})
	}
}

// TestBslsNoSDK: the AWS SDK's package initialisation would cost bsls
// more CPU than listing thousands of btrfs snapshots (test/bench/bsls.sh);
// the commands that never reach S3 themselves (bsls runs bss3ls for it)
// do not link it, nor the S3 store, and neither does bs, the multi-call
// binary they run as (the others are in bs-s3). lib/stage and the store
// family but s3store link neither it nor the CLI kit's kong.
func TestBslsNoSDK(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "github.com/buttersink/buttersink/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v: %s", err, out)
		}
		return strings.Fields(string(out))
	}
	sdk := func(p string) bool {
		return strings.Contains(p, "aws-sdk-go") || strings.Contains(p, "/aws/smithy-go") ||
			strings.HasSuffix(p, "/lib/objstore/s3store") || p == "net/http"
	}
	for _, cmd := range []string{"bs", "bsls", "bssend", "bsrecv", "checksumdir"} {
		for _, p := range deps("cmd/" + cmd) {
			if sdk(p) {
				t.Errorf("cmd/%s links %s", cmd, p)
			}
		}
	}
	// Only s3store links the SDK; the stage and the store contract link
	// neither it nor kong.
	for _, pkg := range []string{"lib/stage", "lib/objstore", "lib/objstore/objkey", "lib/objstore/filestore", "lib/inventory"} {
		for _, p := range deps(pkg) {
			if sdk(p) || strings.Contains(p, "alecthomas/kong") {
				t.Errorf("%s links %s", pkg, p)
			}
		}
	}
}
