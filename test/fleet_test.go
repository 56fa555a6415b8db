package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/buttersink/buttersink/test/harness"
)

// fleetPrefixes are the hosts (and one host's snapshot directory) that
// back up to one store in the fleet tests.
var fleetPrefixes = []string{"host1/", "host2/", "host3/home/"}

// pushFleet stores the snapshots below each of fleetPrefixes of root
// (s3://bucket/ or file:///dir/), one prefix after the other.
func pushFleet(t *testing.T, env []string, snaps, root string) {
	t.Helper()
	for _, p := range fleetPrefixes {
		mustOsh(t, env, `bsplan "$1/" "$2" | bssend | bss3put "$2" >/dev/null`, snaps, root+p)
	}
}

type inventoryLine struct {
	Prefix     string    `json:"prefix"`
	Snapshots  int       `json:"snapshots"`
	Size       *int64    `json:"size"`
	Newest     string    `json:"newest"`
	Time       time.Time `json:"time"`
	AgeSeconds *int64    `json:"age_seconds"`
}

type treeLine struct {
	Snapshot struct {
		Path   string    `json:"path"`
		Key    string    `json:"key"`
		Stored time.Time `json:"stored"`
	} `json:"snapshot"`
	Depth     int    `json:"depth"`
	Chain     int    `json:"chain"`
	ChainSize *int64 `json:"chain_size"`
	Children  int    `json:"children"`
	Broken    string `json:"broken"`
}

func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var recs []T
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var r T
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkFleet lists a store of fleetPrefixes as an inventory and as trees.
func checkFleet(t *testing.T, env []string, root string, before time.Time) {
	t.Helper()
	inv := jsonLines[inventoryLine](t, mustOsh(t, env, `bsls --inventory --json "$1"`, root).Stdout)
	if len(inv) != len(fleetPrefixes) {
		t.Fatalf("inventory of %s: %+v, want one line per prefix %v", root, inv, fleetPrefixes)
	}
	for i, p := range inv {
		if p.Prefix != fleetPrefixes[i] || p.Snapshots != 3 || p.Newest != p.Prefix+"s3" || p.Size == nil || *p.Size <= 0 {
			t.Errorf("inventory line %+v, want prefix %s, 3 snapshots, newest s3", p, fleetPrefixes[i])
		}
		if p.Time.Before(before.Add(-2*time.Second)) || p.Time.After(time.Now().Add(2*time.Second)) || p.AgeSeconds == nil || *p.AgeSeconds > 600 {
			t.Errorf("inventory line %+v: time not when stored", p)
		}
	}
	// Every record carries its time stored.
	for _, r := range lsAs(t, env, root) {
		if r.Stored.Before(before.Add(-2*time.Second)) || r.Stored.After(time.Now().Add(2*time.Second)) {
			t.Errorf("%s: stored %v, want the time of the run", r.Key, r.Stored)
		}
	}
	tree := jsonLines[treeLine](t, mustOsh(t, env, `bsls --tree --json "$1"`, root+"host3/home/").Stdout)
	var got []string
	for _, n := range tree {
		got = append(got, n.Snapshot.Path)
		if n.Chain != n.Depth+1 || n.Broken != "" || n.ChainSize == nil {
			t.Errorf("tree node %+v", n)
		}
	}
	if strings.Join(got, " ") != "s1 s2 s3" || tree[2].Depth != 2 || tree[0].Children != 1 || *tree[2].ChainSize <= *tree[1].ChainSize {
		t.Errorf("tree of host3/home/: %+v, want the chain s1 → s2 → s3", tree)
	}
	// On a terminal: the inventory by default for the root, one table
	// line fitting the width; one prefix lists its snapshots.
	r := mustOsh(t, env, `script -qec "stty cols 70; bsls $1" /dev/null`, root)
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(r.Stdout, "\r", "")), "\n")
	if len(lines) != 1+len(fleetPrefixes) || !strings.HasPrefix(lines[0], "PREFIX") || !strings.Contains(lines[0], "AGE") {
		t.Errorf("bsls %s on a terminal:\n%s\nwant the inventory", root, r.Stdout)
	}
	r = mustOsh(t, env, `script -qec "stty cols 70; bsls --tree $1" /dev/null`, root+"host1/")
	lines = strings.Split(strings.TrimSpace(strings.ReplaceAll(r.Stdout, "\r", "")), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "└ s2") || !strings.Contains(lines[0], "CHAIN") {
		t.Errorf("bsls --tree %shost1/ on a terminal:\n%s", root, r.Stdout)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 70 {
			t.Errorf("line of %d characters on a terminal of 70: %q", n, l)
		}
	}
}

// TestBslsFleetFile: a file:// store that several hosts back up to.
func TestBslsFleetFile(t *testing.T) {
	harness.RequireCommand(t, "script")
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 3, 64)
	dir := t.TempDir()
	before := time.Now()
	pushFleet(t, nil, snaps, "file://"+dir+"/")
	checkFleet(t, nil, "file://"+dir+"/", before)
}

// TestBslsFleetS3: the same on MinIO.
func TestBslsFleetS3(t *testing.T) {
	harness.RequireCommand(t, "script")
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 3, 64)
	m := harness.StartMinIO(t)
	before := time.Now()
	pushFleet(t, m.Env(), snaps, "s3://"+m.Bucket+"/")
	checkFleet(t, m.Env(), "s3://"+m.Bucket+"/", before)
}

// TestBslsTreeBtrfs: received snapshots on btrfs are chained by their
// parent UUIDs (a full receive, then an incremental on top of it).
func TestBslsTreeBtrfs(t *testing.T) {
	mnt := bslsTree(t)
	tree := jsonLines[treeLine](t, harness.MustSh(t, `bsls --tree --json "$MNT/recv/"`, "MNT="+mnt).Stdout)
	if len(tree) != 2 || tree[0].Snapshot.Path != "a" || tree[1].Snapshot.Path != "b" || tree[1].Depth != 1 || tree[1].Chain != 2 {
		t.Errorf("tree of recv/: %+v, want b below a", tree)
	}
}
