package test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/plan"
	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/lib/units"
	"github.com/buttersink/buttersink/test/harness"
)

// rsPoints returns the resume point at every command boundary of the one
// stream orig (offsets after its first command), and where the first
// command ends.
func rsPoints(t *testing.T, orig []byte) ([]resume.Point, int) {
	t.Helper()
	first := sendstream.HeaderLen + sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(orig[sendstream.HeaderLen:]))
	d, err := resume.NewDigester(orig[:sendstream.HeaderLen])
	if err != nil {
		t.Fatal(err)
	}
	pts := []resume.Point{d.Point()}
	for p := first; p < len(orig); {
		d.Command(orig[p:])
		p += sendstream.CmdHeaderLen + int(binary.LittleEndian.Uint32(orig[p:]))
		pts = append(pts, d.Point())
	}
	return pts, first
}

func rsArg(p resume.Point) string {
	return fmt.Sprintf("%d:%s", p.Offset, hex.EncodeToString(p.Digest[:]))
}

// bssend with a resume point writes the resumed stream when the kernel's
// stream is the one the point was taken from, and the whole stream with a
// warning when it is not. btrfs send's output is the same every time
// (also TestSendRecvSameBytesAsBtrfsSend, TestSendSameBytesAsBtrfsSendFlagTable):
// that is what makes a resume point of one send valid for the next.
func TestSendResumed(t *testing.T) {
	src := srSource(t, 300)
	env := []string{"SRC=" + src}
	harness.MustSh(t, `cd "$SRC"
		bssend --proto 2 -p s1 s2 > whole
		bssend --proto 2 -p s1 s2 > again
		cmp whole again  # deterministic
		btrfs send -q --proto 2 -p s1 s2 | cmp - whole`, env...)
	orig, err := os.ReadFile(src + "/whole")
	if err != nil {
		t.Fatal(err)
	}
	pts, first := rsPoints(t, orig)
	if len(pts) < 6 {
		t.Fatalf("only %d commands", len(pts))
	}
	resumed := func(p resume.Point) []byte {
		b, err := sendstream.AppendResumed(nil, orig[:first], sendstream.ResumeFrom{Offset: p.Offset, Digest: p.Digest})
		if err != nil {
			t.Fatal(err)
		}
		return append(b, orig[first+int(p.Offset):]...)
	}
	step := func(p resume.Point) string {
		return fmt.Sprintf(`{"op":"send","src":"%s/","dst":"/x/","snapshot":{"kind":"subvolume","path":"s2"},"parent":{"kind":"subvolume","path":"s1"},"clones":[],"resume":{"offset":%d,"digest":"%s"}}`,
			src, p.Offset, hex.EncodeToString(p.Digest[:]))
	}
	// Every point up to the start of END (the last one: the rest is END).
	for _, i := range []int{0, len(pts) / 2, len(pts) - 2} {
		p := pts[i]
		want := resumed(p)
		for name, script := range map[string]string{
			"argument":    `bssend --proto 2 --resume "$R" -p "$SRC/s1" "$SRC/s2"`,
			"step":        `printf '%s\n' "$STEP" | bssend --proto 2`,
			"step, piped": `printf '%s\n' "$STEP" | bssend --proto 2 | cat`,
			"verbose":     `bssend -v --proto 2 --resume "$R" -p "$SRC/s1" "$SRC/s2"`,
		} {
			out := filepath.Join(src, "out")
			r := harness.MustSh(t, script+` > "$OUT"`, append(env, "R="+rsArg(p), "STEP="+step(p), "OUT="+out)...)
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, point %d of %d (offset %d): %d bytes, want %d", name, i, len(pts), p.Offset, len(got), len(want))
			}
			if strings.Contains(r.Stderr, "warning") {
				t.Errorf("%s: %s", name, r.Stderr)
			}
		}
		// What bssend wrote reads as a resumed stream.
		s, err := sendstream.NewReader(bytes.NewReader(want)).Next()
		if err != nil || s.Resume == nil || s.Resume.Offset != p.Offset || s.Subvol.Path != "s2" {
			t.Fatalf("resumed stream: %v %+v", err, s)
		}
	}
	// An object store takes no resumed stream: stored, it would look
	// like a snapshot and restore none.
	if r := harness.Sh(t, `mkdir -p "$SRC/store" && { bss3put "file://$SRC/store/" < "$SRC/out" || { rc=$?; ls -A "$SRC/store"; exit $rc; }; }`, env...); r.Code != 1 ||
		!strings.Contains(r.Stderr, "bss3put: error: stdin: stream at byte 0: a resumed stream (the rest of s2 from byte") || r.Stdout != "" {
		t.Errorf("bss3put took a resumed stream: exit %d, %s%s", r.Code, r.Stdout, r.Stderr)
	}
	// btrfs receive refuses a resumed stream; so does bsrecv where no
	// partial receive of its stream is, leaving nothing behind.
	dst := harness.Btrfs(t, 300)
	if r := harness.Sh(t, `btrfs receive -q -f "$F" "$DST"`, "F="+filepath.Join(src, "out"), "DST="+dst); r.Code == 0 {
		t.Fatalf("btrfs receive took a resumed stream")
	}
	harness.MustSh(t, `bssend --proto 2 "$SRC/s1" | bsrecv -q "$DST/"`, "SRC="+src, "DST="+dst)
	if r := harness.Sh(t, `bsrecv "$DST/" < "$F"`, "F="+filepath.Join(src, "out"), "DST="+dst); r.Code != 1 || !strings.Contains(r.Stderr, "cannot resume: no partial receive there") {
		t.Fatalf("bsrecv took a resumed stream: exit %d, %s", r.Code, r.Stderr)
	}
	if left, _ := os.ReadDir(dst); len(left) != 1 || left[0].Name() != "s1" {
		t.Fatalf("bsrecv left %v", left)
	}

	// A point the stream does not have: the whole stream, with a warning.
	mid := pts[len(pts)/2]
	wrong := mid
	wrong.Digest[0] ^= 1
	inside := mid
	inside.Offset++
	beyond := pts[len(pts)-1]
	beyond.Offset += 10
	for name, p := range map[string]resume.Point{"wrong digest": wrong, "not a boundary": inside, "beyond the end": beyond, "other stream's": {Offset: 0},
		"after END": pts[len(pts)-1]} {
		for _, script := range []string{
			`bssend --proto 2 --resume "$R" -p "$SRC/s1" "$SRC/s2" > "$OUT"`,
			`bssend --proto 2 --resume "$R" -p "$SRC/s1" "$SRC/s2" | cat > "$OUT"`,
		} {
			out := filepath.Join(src, "out")
			r := harness.MustSh(t, script, append(env, "R="+rsArg(p), "OUT="+out)...)
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, orig) {
				t.Errorf("%s: %d bytes, want the whole %d", name, len(got), len(orig))
			}
			if !strings.Contains(r.Stderr, "bssend: warn: "+src+"/s2: the stream differs from the one partly received; sending it whole") {
				t.Errorf("%s: stderr %q", name, r.Stderr)
			}
		}
	}
	// --resume names one snapshot; a bad point is a usage error.
	for _, args := range []string{`--resume "$R" "$SRC/s1" "$SRC/s2"`, `--resume 12 "$SRC/s1"`, `--resume -1:` + strings.Repeat("0", 64) + ` "$SRC/s1"`} {
		if r := harness.Sh(t, `bssend `+args+` > /dev/null`, append(env, "R="+rsArg(mid))...); r.Code != 2 {
			t.Errorf("%s: exit %d, %s", args, r.Code, r.Stderr)
		}
	}
}

// rsMarker writes a receive marker for dir/name holding rec.
func rsMarker(t *testing.T, dir, name string, rec resume.Record) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, resume.MarkerName(name)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := resume.Stamp(f, 1); err != nil {
		t.Fatal(err)
	}
	w, err := resume.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	// The exact point, in this boot: the record's own.
	page, err := resume.MapProgress(f, rec.Subvol)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	d, err := rec.Digester()
	if err != nil {
		t.Fatal(err)
	}
	page.Set(d)
}

// bsls --all shows a partial receive's resume point from its marker, for
// that very subvolume only; bsplan gives the send of that very stream the
// point, and bssend then sends the resumed stream.
func TestPartialResumePoint(t *testing.T) {
	src := srSource(t, 300)
	dst := harness.Btrfs(t, 300)
	env := []string{"SRC=" + src, "DST=" + dst}
	harness.MustSh(t, `cd "$SRC" && bssend --proto 2 s1 > full && bssend --proto 2 -p s1 s2 > incr
		btrfs -q subvolume create "$DST/s1" && btrfs -q subvolume create "$DST/other" && btrfs -q subvolume create "$DST/plain"
		btrfs -q subvolume create "$DST/stale"`, env...)
	full, _ := os.ReadFile(src + "/full")
	pts, _ := rsPoints(t, full)
	p := pts[len(pts)/2]
	d, err := resume.NewDigester(full[:sendstream.HeaderLen])
	if err != nil {
		t.Fatal(err)
	}
	_, first := rsPoints(t, full)
	d.Write(full[first : first+int(p.Offset)])
	if d.Point() != p {
		t.Fatal("digests differ")
	}
	s1 := srInfo(t, src+"/s1")
	rec := resume.Record{Subvol: srInfo(t, dst+"/s1").UUID, UUID: s1.UUID, CTransID: s1.CTransID, Point: p, State: d.State(), Time: time.Now()}
	rsMarker(t, dst, "s1", rec)
	// A record for another subvolume than the one at the name: ignored.
	forged := rec
	forged.Subvol = s1.UUID
	rsMarker(t, dst, "other", forged)
	// A record whose progress page is of another boot: a partial receive
	// (a leftover), with no point to resume from.
	stale := rec
	stale.Subvol = srInfo(t, dst+"/stale").UUID
	rsMarker(t, dst, "stale", stale)
	harness.MustSh(t, `printf 'x' | dd of="$DST/.stale.bsrecv" bs=1 seek=4120 conv=notrunc status=none
		printf 'x' | dd of="$DST/.stale.bsrecv" bs=1 seek=4632 conv=notrunc status=none`, env...)

	r := harness.MustSh(t, `bsls --all --json "$DST/"`, env...)
	recs := map[string]snapshot.Snapshot{}
	for _, s := range srRecords(t, r.Stdout) {
		recs[s.Path] = s
	}
	got := recs["s1"]
	want := snapshot.Resume{Offset: p.Offset, Digest: p.Digest, UUID: s1.UUID, CTransID: s1.CTransID}
	if !got.Partial || got.Resume == nil || *got.Resume != want {
		t.Fatalf("s1: partial %v resume %+v, want %+v", got.Partial, got.Resume, want)
	}
	if o := recs["other"]; o.Resume != nil || o.Partial || recs["plain"].Partial {
		t.Errorf("other: %+v", o)
	}
	if o := recs["stale"]; o.Resume != nil || !o.Partial {
		t.Errorf("stale: partial %v resume %+v", o.Partial, o.Resume)
	}
	if r := harness.MustSh(t, `bsls --all --table "$DST/"`, env...); !strings.Contains(r.Stdout, "partial "+units.Bytes(p.Offset)) {
		t.Errorf("table: %s", r.Stdout)
	}
	// The one snapshot named.
	if r := harness.MustSh(t, `bsls --all --json "$DST/s1"`, env...); !strings.Contains(r.Stdout, `"resume":{"offset":`+fmt.Sprint(p.Offset)) {
		t.Errorf("named: %s", r.Stdout)
	}

	// bsplan: s1's send resumes; s2 (from s1) is whole. --no-resume: none.
	r = harness.MustSh(t, `bsplan -e "$SRC/" "$DST/"`, env...)
	var steps []plan.Step
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var st plan.Step
		if err := json.Unmarshal([]byte(line), &st); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, st)
	}
	if len(steps) != 2 || steps[0].Snapshot.Path != "s1" || steps[0].Resume == nil || steps[1].Resume != nil ||
		steps[0].Resume.Offset != p.Offset || [32]byte(steps[0].Resume.Digest) != p.Digest {
		t.Fatalf("steps %s", r.Stdout)
	}
	if r := harness.MustSh(t, `bsplan -e --no-resume "$SRC/" "$DST/"`, env...); strings.Contains(r.Stdout, `"resume"`) {
		t.Errorf("--no-resume: %s", r.Stdout)
	}
	// bssend sends what the plan says: s1 resumed, then s2 whole.
	r = harness.MustSh(t, `bsplan -e "$SRC/" "$DST/" | bssend --proto 2 > "$SRC/out"`, env...)
	out, _ := os.ReadFile(src + "/out")
	incr, _ := os.ReadFile(src + "/incr")
	head, err := sendstream.AppendResumed(nil, full[:first], sendstream.ResumeFrom{Offset: p.Offset, Digest: p.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append(head, full[first+int(p.Offset):]...), incr...); !bytes.Equal(out, want) {
		t.Errorf("plan's streams: %d bytes, want %d", len(out), len(want))
	}
}

// A pull resumes too: the remote bssend gets the step's resume point as
// --resume (through bs-ssh-filter's checks when it is the forced
// command), and a nested snapshot's stream, whose path the puller
// rewrites, has the same resume points as the remote's.
func TestSSHPullResumed(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	mnt := harness.Btrfs(t, 256)
	src := makeSnaps(t, mnt, 2, 512)
	mustSh(t, nil, `cd "$1" && mkdir snaps/nested && head -c 300000 /dev/urandom > vol/g && mkdir vol/d && touch vol/d/h &&
		btrfs -q subvolume snapshot -r vol snaps/nested/n1`, mnt)
	filter := filepath.Join(harness.Root(), "examples", "bs-ssh-filter")
	key := s.AddKey(t, `command="`+filter+` --read --path `+strings.TrimSuffix(src, "/")+`",no-pty`)
	for _, tc := range []struct{ snap, parent string }{{"s2", "s1"}, {"nested/n1", "s2"}} {
		env := []string{s.Env, "SNAP=" + tc.snap, "PARENT=" + tc.parent}
		// The stream as a local send of the step writes it.
		step := sendStep + `step() { send_step "$1" /x/ "$SNAP" "$PARENT" | jq -c "$RESUME"; }` + "\n"
		mustSh(t, append(env, "RESUME=."), step+`
			step "$1" | bssend > "$2"`, src, filepath.Join(mnt, "orig"))
		orig, _ := os.ReadFile(filepath.Join(mnt, "orig"))
		pts, first := rsPoints(t, orig)
		p := pts[(len(pts)-1)/2] // before END
		set := fmt.Sprintf(`.resume = {"offset":%d,"digest":"%s"}`, p.Offset, hex.EncodeToString(p.Digest[:]))
		want, err := sendstream.AppendResumed(nil, orig[:first], sendstream.ResumeFrom{Offset: p.Offset, Digest: p.Digest})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, orig[first+int(p.Offset):]...)
		for _, ssh := range []string{s.Env, "BS_SSH=" + key} {
			out := filepath.Join(mnt, "out")
			env := append(env, ssh, "RESUME="+set)
			if r := sh(t, env, step+`step "$1" | bssend -v > "$2"`, s.URL(src), out); r.Code != 0 {
				t.Fatalf("%s (%s): %s", tc.snap, ssh, r.Stderr)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
				t.Errorf("%s pulled resumed (%s): %d bytes, want %d", tc.snap, ssh, len(got), len(want))
			}
			// Another digest: the whole stream, and the remote's warning.
			other := p.Digest
			other[0] ^= 1
			bad := strings.Replace(set, hex.EncodeToString(p.Digest[:]), hex.EncodeToString(other[:]), 1)
			r := mustSh(t, append(env, "RESUME="+bad), step+`step "$1" | bssend > "$2"`, s.URL(src), out)
			if got, _ := os.ReadFile(out); !bytes.Equal(got, orig) || !strings.Contains(r.Stderr, "the stream differs from the one partly received; sending it whole") {
				t.Errorf("%s pulled with another digest: %d bytes, want %d; stderr %s", tc.snap, len(got), len(orig), r.Stderr)
			}
		}
	}
}
