package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/test/harness"
)

// srSource makes a source filesystem with a working subvolume "vol"
// holding every kind of file send must carry (data, holes, a directory,
// a symlink, a fifo, a hard link, xattrs, odd modes and owners) and
// read-only snapshots s1 (initial) and s2 (after changes).
func srSource(t *testing.T, sizeMiB int) string {
	t.Helper()
	src := harness.Btrfs(t, sizeMiB)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol
		cd vol
		head -c 3000000 /dev/urandom > data
		truncate -s 50M sparse && printf tail >> sparse
		mkdir -p dir/deeper && echo one > dir/f && chmod 0750 dir && chmod 4755 dir/f
		ln -s ../data dir/link && ln dir/f hardlink && mkfifo fifo
		setfattr -n user.note -v hello data && setfattr -n user.empty dir
		chown 1234:5678 dir/deeper && touch -d '2001-02-03 04:05:06' dir/deeper
		cd .. && btrfs -q subvolume snapshot -r vol s1
		echo two >> vol/dir/f && rm vol/dir/link && mv vol/data vol/dir/moved
		head -c 1000000 /dev/urandom > vol/new && setfattr -x user.note vol/dir/moved
		btrfs -q subvolume snapshot -r vol s2
	`, "SRC="+src)
	return src
}

// srSameTree fails unless trees a and b hold the same names, types,
// modes, owners, sizes, mtimes, link targets, xattrs and data.
func srSameTree(t *testing.T, a, b string) {
	t.Helper()
	ta, tb := srTree(t, a), srTree(t, b)
	if len(ta) != len(tb) {
		t.Errorf("%s has %d entries, %s has %d", a, len(ta), b, len(tb))
	}
	for p, ea := range ta {
		eb, ok := tb[p]
		if !ok {
			t.Errorf("%s: missing in %s", p, b)
			continue
		}
		if ea != eb {
			t.Errorf("%s differs:\n  %s: %s\n  %s: %s", p, a, ea, b, eb)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func srTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := []string{fi.Mode().String(), srItoa(st.Uid), srItoa(st.Gid), srItoa(st.Nlink)}
		if !fi.IsDir() {
			desc = append(desc, srItoa(st.Size))
		}
		desc = append(desc, srItoa(st.Mtim.Sec)+"."+srItoa(st.Mtim.Nsec))
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc = append(desc, "-> "+l)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			desc = append(desc, string(h.Sum(nil)[:8]))
		}
		desc = append(desc, srXattrs(t, p)...)
		out[rel] = strings.Join(desc, " ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func srItoa(v any) string { return fmt.Sprint(v) }

func srXattrs(t *testing.T, p string) []string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, name+"="+string(v[:m]))
	}
	sort.Strings(out)
	return out
}

// srRecords parses bsrecv's JSON Lines.
func srRecords(t *testing.T, stdout string) []snapshot.Snapshot {
	t.Helper()
	var out []snapshot.Snapshot
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var s snapshot.Snapshot
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("record %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// srSubvols lists every subvolume below dir, writable ones included.
func srSubvols(t *testing.T, dir string) []string {
	t.Helper()
	subs, err := btrfs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range subs {
		out = append(out, s.Path)
	}
	return out
}

// srPartial fails unless dst/snap is a partial receive: writable, not
// marked received, listed by bsls --all as partial with a resume point.
func srPartial(t *testing.T, dst, snap string) snapshot.Resume {
	t.Helper()
	if got := srInfo(t, dst+"/"+snap); got.ReadOnly || !got.ReceivedUUID.IsZero() {
		t.Fatalf("%s: a partial receive that looks complete: ro %v received %s", snap, got.ReadOnly, got.ReceivedUUID.Canonical())
	}
	r := harness.MustSh(t, `bsls --all --json "$P"`, "P="+dst+"/"+snap)
	recs := srRecords(t, r.Stdout)
	if len(recs) != 1 || !recs[0].Partial || recs[0].Resume == nil {
		t.Fatalf("%s: bsls --all: %s", snap, r.Stdout)
	}
	return *recs[0].Resume
}

func srInfo(t *testing.T, p string) btrfs.Subvol {
	t.Helper()
	s, err := btrfs.Info(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// srComplete fails unless p is a completely received copy of src.
func srComplete(t *testing.T, p, src string) {
	t.Helper()
	got, want := srInfo(t, p), srInfo(t, src)
	eff := want.ReceivedUUID
	if eff.IsZero() {
		eff = want.UUID
	}
	if !got.ReadOnly || got.ReceivedUUID != eff || got.STransID != want.CTransID {
		t.Fatalf("%s: not a complete receive of %s: ro %v received %s stransid %d", p, src, got.ReadOnly, got.ReceivedUUID.Canonical(), got.STransID)
	}
}

// Same bytes as btrfs send, for every combination bssend passes on.
func TestSendRecvSameBytesAsBtrfsSend(t *testing.T) {
	src := srSource(t, 300)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create other && cp --reflink=always s1/data other/copy
		btrfs -q subvolume snapshot -r other o1
		check() { cmp <(bssend "$@") <(btrfs send -q "$@") || { echo "differs: $*" >&2; exit 1; }; }
		check --proto 1 s1
		check --proto 2 s1
		check --proto 1 -p s1 s2
		check --proto 2 -p s1 -c o1 s2
		check --proto 2 --compressed-data s1
		check --proto 1 --no-data s2
		check --proto 1 s1 s2 o1
		# Through the counting, spliced path (-v) the bytes are the same.
		cmp <(bssend -v --proto 2 -p s1 s2 2>/dev/null) <(btrfs send -q --proto 2 -p s1 s2)
		# Into a regular file through that path, drained at a pace
		# (nobody waits on a file): the same.
		bssend -v --proto 2 -p s1 s2 > "$SRC/paced" 2>/dev/null
		cmp "$SRC/paced" <(btrfs send -q --proto 2 -p s1 s2)
		# Into /dev/null (the kernel cannot write there itself; spliced
		# away at a pace): every byte goes.
		n=$(btrfs send -q --proto 2 s1 s2 | wc -c)
		got=$(bssend -v --proto 2 s1 s2 2>&1 >/dev/null | sed -n 's/.* bytes=\([0-9]*\)$/\1/p' | awk '{ s += $1 } END { print s }')
		[ "$got" = "$n" ] || { echo "/dev/null: $got bytes sent, btrfs send writes $n" >&2; exit 1; }
		# Into a file opened for appending (no splice): still the same.
		bssend --proto 1 s1 >> "$SRC/out" && bssend -v --proto 1 s1 >> "$SRC/out" 2>/dev/null
		cmp "$SRC/out" <(btrfs send -q --proto 1 s1; btrfs send -q --proto 1 s1)
	`, "SRC="+src)
}

func TestSendRecvFullAndIncremental(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	r := harness.MustSh(t, `bssend "$SRC/s1" | bsrecv "$DST/"`, "SRC="+src, "DST="+dst)
	recs := srRecords(t, r.Stdout)
	if len(recs) != 1 || recs[0].Path != "s1" || !recs[0].ReadOnly || recs[0].ReceivedUUID != srInfo(t, src+"/s1").UUID {
		t.Fatalf("records %+v", recs)
	}
	srComplete(t, dst+"/s1", src+"/s1")
	srSameTree(t, src+"/s1", dst+"/s1")

	r = harness.MustSh(t, `bssend -p "$SRC/s1" "$SRC/s2" | bsrecv "$DST/"`, "SRC="+src, "DST="+dst)
	if recs := srRecords(t, r.Stdout); len(recs) != 1 || recs[0].Path != "s2" {
		t.Fatalf("records %+v", recs)
	}
	srComplete(t, dst+"/s2", src+"/s2")
	srSameTree(t, src+"/s2", dst+"/s2")
	if got := srInfo(t, dst+"/s2").ParentUUID; got != srInfo(t, dst+"/s1").UUID {
		t.Errorf("s2 was not received as a snapshot of s1 (parent uuid %s)", got.Canonical())
	}

	// A rerun finds both complete: skipped, still reported, nothing changed.
	before := srInfo(t, dst+"/s2")
	r = harness.MustSh(t, `bssend "$SRC/s1" "$SRC/s2" | bsrecv "$DST/"`, "SRC="+src, "DST="+dst)
	if recs := srRecords(t, r.Stdout); len(recs) != 2 || recs[0].Path != "s1" || recs[1].Path != "s2" {
		t.Fatalf("records %+v", recs)
	}
	if !strings.Contains(r.Stderr, "s1: already received, skipped") {
		t.Errorf("no skip report in %q", r.Stderr)
	}
	if after := srInfo(t, dst+"/s2"); after.ID != before.ID || after.CTransID != before.CTransID {
		t.Errorf("skipped snapshot was touched")
	}
}

func TestSendRecvCloneSources(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create other && head -c 8000000 /dev/urandom > other/big
		btrfs -q subvolume snapshot -r other o1
		cp --reflink=always o1/big vol/reflinked
		btrfs -q subvolume snapshot -r vol s3
		bssend o1 s1 | bsrecv "$DST/" >/dev/null
		bssend -p s1 -c o1 s3 > "$SRC/s3.stream"
		bsrecv "$DST/" < "$SRC/s3.stream" >/dev/null
	`, "SRC="+src, "DST="+dst)
	srSameTree(t, src+"/s3", dst+"/s3")
	f, err := os.Open(src + "/s3.stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var clones, written int64
	err = sendstream.Walk(f, func(s *sendstream.Stream, c *sendstream.Command) error {
		if c.Type == sendstream.CmdClone {
			clones++
		}
		written += c.DataLen()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if clones == 0 || written > 4000000 {
		t.Errorf("the reflinked 8 MB file was not sent as clones: %d CLONE commands, %d data bytes", clones, written)
	}
}

func TestSendRecvProtocols(t *testing.T) {
	src := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		mount -o remount,compress=zstd "$SRC"
		cd "$SRC" && btrfs -q subvolume create vol
		head -c 20000000 < <(yes 'compressible line of text') > vol/text
		head -c 2000000 /dev/urandom > vol/random && sync
		btrfs -q subvolume snapshot -r vol c1
	`, "SRC="+src)
	for _, args := range []string{"--proto 1", "--proto 2", "--proto 2 --compressed-data"} {
		t.Run(strings.ReplaceAll(args, " ", ""), func(t *testing.T) {
			dst := harness.Btrfs(t, 300)
			harness.MustSh(t, `bssend `+args+` "$SRC/c1" > "$DST/stream" && bsrecv "$DST/" < "$DST/stream" >/dev/null`, "SRC="+src, "DST="+dst)
			srComplete(t, dst+"/c1", src+"/c1")
			srSameTree(t, src+"/c1", dst+"/c1")
			f, err := os.Open(dst + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var encoded int
			var version uint32
			sendstream.Walk(f, func(s *sendstream.Stream, c *sendstream.Command) error {
				version = c.Version
				if c.Type == sendstream.CmdEncodedWrite {
					encoded++
				}
				return nil
			})
			fi, _ := f.Stat()
			if compressed := strings.Contains(args, "compressed"); compressed != (encoded > 0) || (compressed && fi.Size() > 5000000) {
				t.Errorf("%d ENCODED_WRITE commands, stream of %d bytes", encoded, fi.Size())
			}
			if want := args[8] - '0'; version != uint32(want) {
				t.Errorf("stream version %d, want %d", version, want)
			}
		})
	}
}

// A chain of five snapshots in one pipe, from plan steps with nested
// paths: bsrecv makes the directories and receives each incrementally.
func TestSendRecvChainFromPlan(t *testing.T) {
	src := harness.Btrfs(t, 300)
	dst := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		cd "$SRC" && btrfs -q subvolume create vol && mkdir -p snaps/home
		for i in 1 2 3 4 5; do
			head -c 500000 /dev/urandom > vol/f$i
			btrfs -q subvolume snapshot -r vol snaps/home/n$i
		done
	`, "SRC="+src)
	var plan bytes.Buffer
	for i := 1; i <= 5; i++ {
		step := map[string]any{"op": "send", "src": src + "/snaps/", "dst": dst + "/",
			"snapshot": map[string]any{"kind": "subvolume", "path": "home/n" + srItoa(i)}, "clones": []any{}}
		if i > 1 {
			step["parent"] = map[string]any{"kind": "subvolume", "path": "home/n" + srItoa(i-1)}
		}
		b, _ := json.Marshal(step)
		plan.Write(append(b, '\n'))
	}
	if err := os.WriteFile(dst+"/plan", plan.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := harness.MustSh(t, `bssend < "$DST/plan" | bsrecv "$DST/"`, "DST="+dst)
	recs := srRecords(t, r.Stdout)
	if len(recs) != 5 {
		t.Fatalf("%d records: %s", len(recs), r.Stdout)
	}
	for i, rec := range recs {
		name := "home/n" + srItoa(i+1)
		if rec.Path != name {
			t.Errorf("record %d: path %q, want %q", i, rec.Path, name)
		}
		srComplete(t, dst+"/"+name, src+"/snaps/"+name)
	}
	srSameTree(t, src+"/snaps/home/n5", dst+"/home/n5")
	// The nested path travels in the stream's first command. (Through a
	// file: bssend would race a reader that quits after one line.)
	r = harness.MustSh(t, `head -1 "$DST/plan" | bssend > "$DST/n1.stream"
		btrfs receive --dump < "$DST/n1.stream" > "$DST/n1.dump"; head -1 "$DST/n1.dump"`, "DST="+dst)
	if !strings.Contains(r.Stdout, "home/n1") {
		t.Errorf("first command does not carry the nested path: %q", r.Stdout)
	}
	// Top-level steps stay byte-identical to btrfs send.
	harness.MustSh(t, `
		printf '{"op":"send","src":"%s/snaps/home/","dst":"/x/","snapshot":{"kind":"subvolume","path":"n1"},"parent":null,"clones":[]}\n' "$SRC" > "$DST/plan1"
		cmp <(bssend --proto 2 < "$DST/plan1") <(btrfs send -q --proto 2 "$SRC/snaps/home/n1")
	`, "SRC="+src, "DST="+dst)
}

// bssend and bsrecv each pair with the btrfs-progs peer.
func TestSendRecvInteropWithBtrfsProgs(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		mkdir "$DST/a" "$DST/b"
		bssend "$SRC/s1" | btrfs receive -q "$DST/a"
		bssend -p "$SRC/s1" "$SRC/s2" | btrfs receive -q "$DST/a"
		btrfs send -q "$SRC/s1" "$SRC/s2" | bsrecv "$DST/b/" >/dev/null
	`, "SRC="+src, "DST="+dst)
	for _, d := range []string{"a", "b"} {
		srComplete(t, dst+"/"+d+"/s2", src+"/s2")
		srSameTree(t, src+"/s2", dst+"/"+d+"/s2")
	}
}

// Refusals that leave everything as it was.
func TestSendRecvRefusals(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	tests := []struct {
		name, script, stderr string
		code                 int
	}{
		{"writable source", `bssend "$SRC/vol" > /dev/null`, "bssend: error: " + src + "/vol: not read-only; send needs a read-only snapshot", 1},
		{"writable parent", `bssend -p "$SRC/vol" "$SRC/s1" > /dev/null`, "not read-only", 1},
		{"not a subvolume", `bssend "$SRC/vol/dir" > /dev/null`, "not a btrfs subvolume", 1},
		{"object store step", `echo '{"op":"send","src":"s3://bucket/p/","dst":"/x/","snapshot":{"kind":"object","path":"s1"}}' | bssend > /dev/null`, "bssend: hint: use bss3get", 1},
		{"dotdot step", `echo '{"op":"send","src":"/x/","dst":"/y/","snapshot":{"kind":"subvolume","path":"../s1"}}' | bssend > /dev/null`, "'..' component", 1},
		{"step through a symbolic link out of src", `mkdir -p "$SRC/other"; [ -e "$SRC/other/s1" ] || btrfs -q subvolume snapshot -r "$SRC/s1" "$SRC/other/s1"; d=$(mktemp -d); ln -s "$SRC/other/s1" "$d/s1"; rc=0; printf '{"op":"send","src":"%s/","dst":"/x/","snapshot":{"kind":"subvolume","path":"s1"}}\n' "$d" | bssend > /dev/null || rc=$?; rm -r "$d"; exit $rc`, "leads out of", 1},
		{"step naming another snapshot's uuid", `printf '{"op":"send","src":"%s/","dst":"/x/","snapshot":{"kind":"subvolume","path":"s2","uuid":"%s"}}\n' "$SRC" "$(btrfs subvolume show "$SRC/s1" | awk '/^[[:space:]]*UUID:/{print $2}')" | bssend > /dev/null`, "as the plan step says", 1},
		{"compressed proto 1", `bssend --proto 1 --compressed-data "$SRC/s1" > /dev/null`, "needs --proto 2", 2},
		{"missing parent", `bssend -p "$SRC/s1" "$SRC/s2" | bsrecv "$DST/"`, "bsrecv: error: " + dst + "/s2: parent " + srInfo(t, src+"/s1").UUID.Canonical() + " is not at the destination", 1},
		{"not a stream", `echo hello | bsrecv "$DST/"`, "bad magic, not a btrfs send stream", 1},
		{"object store dest", `bsrecv s3://bucket/p/ < /dev/null`, "bsrecv: hint: use bss3put", 1},
		{"name taken by a file", `touch "$DST/s1"; rc=0; bssend "$SRC/s1" | bsrecv "$DST/" || rc=$?; rm "$DST/s1"; exit $rc`, dst + "/s1: already exists and is not a subvolume", 1},
		{"symbolic link on a nested path", `mkdir -p "$SRC/sub"; [ -e "$SRC/sub/s1" ] || btrfs -q subvolume snapshot -r "$SRC/s1" "$SRC/sub/s1"; ln -s /tmp "$DST/sub"; rc=0; printf '{"op":"send","src":"%s/","dst":"/x/","snapshot":{"kind":"subvolume","path":"sub/s1"}}\n' "$SRC" | bssend | bsrecv "$DST/" || rc=$?; rm "$DST/sub"; exit $rc`, dst + "/sub: not a directory (symbolic links are not followed below the destination)", 1},
		{"name taken by another snapshot", `btrfs -q subvolume create "$DST/s1"; btrfs property set "$DST/s1" ro true; rc=0; bssend "$SRC/s1" | bsrecv "$DST/" || rc=$?; btrfs -q subvolume delete "$DST/s1"; exit $rc`, dst + "/s1: already exists and is another snapshot", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := harness.Sh(t, tt.script, "SRC="+src, "DST="+dst)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.Code, r.Stderr, tt.code, tt.stderr)
			}
			// bssend upstream of a failed bsrecv reports the broken pipe too.
			if strings.Count(r.Stderr, "error:")-strings.Count(r.Stderr, "bssend: error: output closed (broken pipe)") != 1 {
				t.Errorf("want one error line: %q", r.Stderr)
			}
			if subs := srSubvols(t, dst); len(subs) != 0 {
				t.Errorf("destination holds %v", subs)
			}
		})
	}
	if info := srInfo(t, src+"/vol"); info.ReadOnly {
		t.Errorf("source flag changed")
	}
}

// A sync with nothing left to do is a success: the empty plan flows
// through every stage, and a delete step passes bssend by.
func TestSendRecvEmptyPlan(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	store := t.TempDir()
	sync := `bsplan -q "$SRC/" "$DST/" | bssend | bsrecv "$DST/"`
	harness.MustSh(t, sync, "SRC="+src, "DST="+dst)
	before := srSubvols(t, dst)
	r := harness.MustSh(t, `plan=$(bsplan -q "$SRC/" "$DST/"); [ -z "$plan" ] || { echo "plan: $plan"; exit 1; }
		`+sync+`
		bssend < /dev/null | bss3put "file://$STORE/"
		echo '{"op":"delete","dst":"/x/","snapshot":{"kind":"subvolume","path":"s1"}}' | bssend | bsrecv "$DST/"`,
		"SRC="+src, "DST="+dst, "STORE="+store)
	if r.Stdout != "" || r.Stderr != "" {
		t.Fatalf("an empty plan printed: %q %q", r.Stdout, r.Stderr)
	}
	if after := srSubvols(t, dst); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("destination changed from %v to %v", before, after)
	}
	if ents, _ := os.ReadDir(store); len(ents) != 0 {
		t.Fatalf("store holds %v", ents)
	}
}

// A leftover of an interrupted bsrecv (its receive marker left unlocked)
// is replaced; a writable subvolume without a marker, or one whose marker
// a live receive holds, is an error and stays.
func TestSendRecvReplacesLeftover(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	harness.MustSh(t, `bssend "$SRC/s1" > "$DST/../s1.stream"`, "SRC="+src, "DST="+dst)
	// btrfs receive's own leftover: no marker.
	r := harness.Sh(t, `
		head -c 2000000 "$DST/../s1.stream" | btrfs receive "$DST/" 2>/dev/null || true
		btrfs subvolume show "$DST/s1" >/dev/null
		bsrecv "$DST/" < "$DST/../s1.stream"`, "SRC="+src, "DST="+dst)
	if r.Code != 1 || !strings.Contains(r.Stderr, dst+"/s1: already exists and is a writable subvolume that no bsrecv left") {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	harness.MustSh(t, `btrfs subvolume show "$DST/s1" >/dev/null; [ ! -e "$DST/.s1.bsrecv" ]; btrfs -q subvolume delete "$DST/s1"`, "DST="+dst)
	// bsrecv killed mid-stream: its partial subvolume and unlocked marker stay.
	harness.MustSh(t, `
		{ head -c 2000000 "$DST/../s1.stream"; sleep 4; } | bsrecv "$DST/" & pid=$!
		for i in $(seq 50); do [ -e "$DST/.s1.bsrecv" ] && break; sleep 0.1; done
		sleep 1; kill -9 $pid; wait $pid || true
		btrfs subvolume show "$DST/s1" >/dev/null; [ -f "$DST/.s1.bsrecv" ]`, "DST="+dst)
	// The marker held by a live receive (flock(1) stands in for it).
	r = harness.Sh(t, `
		flock "$DST/.s1.bsrecv" sleep 3 & sleep 0.5
		rc=0; bsrecv "$DST/" < "$DST/../s1.stream" || rc=$?; wait; exit $rc`, "DST="+dst)
	if r.Code != 1 || !strings.Contains(r.Stderr, dst+"/s1: being received by another bsrecv") {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
	}
	// Unlocked: the leftover is deleted and received again.
	r = harness.MustSh(t, `bsrecv "$DST/" < "$DST/../s1.stream"; [ ! -e "$DST/.s1.bsrecv" ]`, "DST="+dst)
	if !strings.Contains(r.Stderr, "deleting the leftover of an interrupted receive") {
		t.Errorf("stderr %q", r.Stderr)
	}
	srComplete(t, dst+"/s1", src+"/s1")
	srSameTree(t, src+"/s1", dst+"/s1")
}

// srFault runs a failing receive and checks the aftermath: one error
// line, a non-zero exit, no subvolume left at the destination, the source
// as it was; then a clean rerun succeeds.
func srFault(t *testing.T, src, dst, snap, script, wantErr string, env ...string) {
	t.Helper()
	srFailed(t, src, dst, snap, script, wantErr, false, env...)
}

// srCut runs script, a receive of snap cut short (its input cut, or
// interrupted), and checks that it fails with wantErr and keeps at most
// its partial subvolume, never looking complete and resumable from the
// point its marker records.
func srCut(t *testing.T, src, dst, snap, script, wantErr string, env ...string) {
	t.Helper()
	srFailed(t, src, dst, snap, script, wantErr, true, env...)
}

func srFailed(t *testing.T, src, dst, snap, script, wantErr string, cut bool, env ...string) {
	t.Helper()
	before := srInfo(t, src+"/"+snap)
	env = append(env, "SRC="+src, "DST="+dst)
	r := harness.Sh(t, script, env...)
	if r.Code == 0 {
		t.Fatalf("exit 0; stderr %q", r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	var errs []string
	for _, l := range lines {
		if strings.HasPrefix(l, "bsrecv: error: ") {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], wantErr) {
		t.Fatalf("want one bsrecv error line with %q; stderr:\n%s", wantErr, r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("stdout %q", r.Stdout)
	}
	subs := srSubvols(t, dst)
	if cut && len(subs) == 1 && subs[0] == snap {
		srPartial(t, dst, snap)
	} else if len(subs) != 0 {
		t.Fatalf("destination holds %v after the fault", subs)
	}
	after := srInfo(t, src+"/"+snap)
	if after.UUID != before.UUID || after.CTransID != before.CTransID || !after.ReadOnly || after.ReceivedUUID != before.ReceivedUUID {
		t.Fatalf("source changed: %+v -> %+v", before, after)
	}
}

func TestSendRecvFaults(t *testing.T) {
	src := harness.Btrfs(t, 600)
	harness.MustSh(t, `
		cd "$SRC" && btrfs -q subvolume create vol
		head -c 64000000 /dev/urandom > vol/big && mkdir vol/d && echo x > vol/d/small
		btrfs -q subvolume snapshot -r vol s1
		btrfs -q subvolume create vol2 && head -c 300000000 /dev/urandom > vol2/huge
		btrfs -q subvolume snapshot -r vol2 h1
		bssend s1 > "$SRC/s1.stream"
	`, "SRC="+src)
	rerun := func(t *testing.T, dst string) {
		harness.MustSh(t, `bsrecv "$DST/" < "$SRC/s1.stream" >/dev/null`, "SRC="+src, "DST="+dst)
		srComplete(t, dst+"/s1", src+"/s1")
		srSameTree(t, src+"/s1", dst+"/s1")
	}
	t.Run("flipped byte", func(t *testing.T) {
		dst := harness.Btrfs(t, 300)
		b, err := os.ReadFile(src + "/s1.stream")
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int{len(b) / 2, len(b) - 3} { // in a WRITE; in END's crc
			bad := append([]byte{}, b...)
			bad[off] ^= 0x20
			if err := os.WriteFile(dst+"/bad.stream", bad, 0o644); err != nil {
				t.Fatal(err)
			}
			srFault(t, src, dst, "s1", `bsrecv "$DST/" < "$DST/bad.stream"`, "crc mismatch")
		}
		os.Remove(dst + "/bad.stream")
		rerun(t, dst)
	})
	t.Run("truncated", func(t *testing.T) {
		dst := harness.Btrfs(t, 300)
		for _, n := range []string{"30000000", "100"} {
			srCut(t, src, dst, "s1", `head -c `+n+` "$SRC/s1.stream" | bsrecv "$DST/"`, "truncated")
		}
		srCut(t, src, dst, "s1", `head -c -10 "$SRC/s1.stream" | bsrecv "$DST/"`, "stream ends without END command")
		rerun(t, dst)
	})
	t.Run("sender killed", func(t *testing.T) {
		dst := harness.Btrfs(t, 300)
		// pv slows the pipe so that the kill lands mid-stream.
		harness.RequireCommand(t, "pv")
		srCut(t, src, dst, "s1", `
			mkfifo "$DST/fifo"
			bsrecv "$DST/" < "$DST/fifo" & rpid=$!
			bash -c 'echo $$ > "$DST/pid"; exec bssend "$SRC/s1"' | pv -q -L 20m > "$DST/fifo" &
			sleep 1; kill -9 $(cat "$DST/pid")
			rc=0; wait $rpid || rc=$?; rm "$DST/fifo" "$DST/pid"; exit $rc`, "truncated")
		rerun(t, dst)
	})
	t.Run("destination full", func(t *testing.T) {
		dst := harness.Btrfs(t, 200)
		srFault(t, src, dst, "h1", `bssend "$SRC/h1" | bsrecv "$DST/"`, ": no space left on device")
		// Space of a deleted subvolume comes back asynchronously.
		harness.MustSh(t, `btrfs subvolume sync "$DST"`, "DST="+dst)
		rerun(t, dst)
	})
	t.Run("interrupted", func(t *testing.T) {
		dst := harness.Btrfs(t, 300)
		before := srInfo(t, src+"/s1")
		r := harness.Sh(t, `
			mkfifo "$DST/fifo"
			bsrecv "$DST/" < "$DST/fifo" & rpid=$!
			{ head -c 20000000 "$SRC/s1.stream"; exec sleep 30; } > "$DST/fifo" & feeder=$!
			sleep 2; kill -INT $rpid
			rc=0; wait $rpid || rc=$?; kill $feeder; rm "$DST/fifo"; exit $rc`, "SRC="+src, "DST="+dst)
		if r.Code != 130 || !strings.Contains(r.Stderr, "bsrecv: error: interrupted") {
			t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		// The partial stays, to be resumed (TestResumeKilled); a whole
		// stream replaces it.
		if subs := srSubvols(t, dst); len(subs) != 1 || subs[0] != "s1" {
			t.Fatalf("destination holds %v", subs)
		}
		srPartial(t, dst, "s1")
		if after := srInfo(t, src+"/s1"); after != before {
			t.Fatalf("source changed")
		}
		rerun(t, dst)
		// Between streams, waiting on a silent stdin: ends at once, the
		// complete snapshot stays.
		r = harness.Sh(t, `
			btrfs -q subvolume delete "$DST/s1"
			mkfifo "$DST/fifo"
			bsrecv "$DST/" < "$DST/fifo" & rpid=$!
			{ cat "$SRC/s1.stream"; exec sleep 30; } > "$DST/fifo" & feeder=$!
			for i in $(seq 100); do [ -e "$DST/s1" ] && btrfs property get "$DST/s1" ro | grep -q true && break; sleep 0.1; done
			sleep 0.5; kill -INT $rpid
			rc=0; wait $rpid || rc=$?; kill $feeder; rm "$DST/fifo"; exit $rc`, "SRC="+src, "DST="+dst)
		if r.Code != 130 || !strings.Contains(r.Stderr, "bsrecv: error: interrupted") {
			t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		srComplete(t, dst+"/s1", src+"/s1")
	})
}

func TestSendBrokenPipeAndInterrupt(t *testing.T) {
	src := harness.Btrfs(t, 300)
	harness.MustSh(t, `
		cd "$SRC" && btrfs -q subvolume create vol && head -c 50000000 /dev/urandom > vol/big
		btrfs -q subvolume snapshot -r vol s1`, "SRC="+src)
	harness.RequireCommand(t, "script")
	harness.RequireCommand(t, "pv")
	// On a terminal: no stream, and a progress line on stderr unless -q.
	r := harness.Sh(t, `script -qec 'bssend "$SRC/s1"' /dev/null`, "SRC="+src)
	if r.Code != 1 || !strings.Contains(r.Stdout, "bssend: error: stdout is a terminal") || strings.Contains(r.Stdout, "btrfs-stream") {
		t.Errorf("terminal stdout: exit %d, output %q", r.Code, r.Stdout)
	}
	r = harness.MustSh(t, `script -qec 'bssend -v "$SRC/s1" | pv -q -L 20m > /dev/null' /dev/null`, "SRC="+src)
	if !strings.Contains(r.Stdout, "bssend: 1/1 "+src+"/s1 ") || !strings.Contains(r.Stdout, "MiB/s") || !strings.Contains(r.Stdout, "bssend: sent 1 snapshot, ") {
		t.Errorf("no progress line or summary on the terminal: %q", r.Stdout)
	}
	r = harness.MustSh(t, `script -qec 'bssend -q "$SRC/s1" | pv -q -L 50m > /dev/null' /dev/null`, "SRC="+src)
	if strings.Contains(r.Stdout, "bssend") {
		t.Errorf("-q still printed: %q", r.Stdout)
	}
	for _, flags := range []string{"", "-v"} {
		r := harness.Sh(t, `bssend `+flags+` "$SRC/s1" | head -c 1000 > /dev/null`, "SRC="+src)
		if r.Code != 1 || !strings.Contains(r.Stderr, "bssend: error: output closed (broken pipe) while sending "+src+"/s1") {
			t.Errorf("bssend %s: exit %d, stderr %q", flags, r.Code, r.Stderr)
		}
		// A reader that never reads: bssend blocks on a full pipe until
		// SIGINT, then ends with 130, leaving nothing running.
		r = harness.Sh(t, `
			mkfifo "$SRC/fifo"; (exec sleep 20) < "$SRC/fifo" & reader=$!
			bssend `+flags+` "$SRC/s1" > "$SRC/fifo" & pid=$!
			sleep 1; kill -INT $pid; rc=0; wait $pid || rc=$?
			kill $reader; rm "$SRC/fifo"; exit $rc`, "SRC="+src)
		if r.Code != 130 || !strings.Contains(r.Stderr, "bssend: error: interrupted") {
			t.Errorf("bssend %s after SIGINT: exit %d, stderr %q", flags, r.Code, r.Stderr)
		}
	}
}
