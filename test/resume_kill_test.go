package test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/resume"
	"github.com/buttersink/buttersink/test/harness"
)

// killSlack is what a resumed send may carry again beyond the part not
// yet received: the bound.
const killSlack = 64 << 20

// envInt is the integer in the environment variable name, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// killSource makes a snapshot of about mib MiB of file data (a few big
// files of cheaply generated, not repeating data) and a few thousand small
// files, below mnt/snaps; it returns that directory.
func killSource(t *testing.T, mnt string, mib int) string {
	harness.MustSh(t, `btrfs -q subvolume create "$M/vol" && mkdir "$M/snaps" "$M/vol/small"`, "M="+mnt)
	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewSource(1))
	rng.Read(block)
	const per = 256
	for f := 0; f*per < mib; f++ {
		out, err := os.Create(filepath.Join(mnt, "vol", fmt.Sprintf("big%d", f)))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < per && f*per+i < mib; i++ {
			// Each MiB differs from the others by its first bytes.
			copy(block, fmt.Sprintf("%d-%d-", f, i))
			if _, err := out.Write(block); err != nil {
				t.Fatal(err)
			}
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3000; i++ {
		d := filepath.Join(mnt, "vol", "small", strconv.Itoa(i%30))
		os.MkdirAll(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, strconv.Itoa(i)), block[i:i+1+i%5000], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	harness.MustSh(t, `btrfs -q subvolume snapshot -r "$M/vol" "$M/snaps/s1"`, "M="+mnt)
	return filepath.Join(mnt, "snaps")
}

// killRun runs `bsplan SRC/ DEST | bssend | bsrecv RECV` once, being
// itself the pipe between bssend and bsrecv, and counts the bytes on it.
// With killAt > 0, it kills bsrecv (with its ssh, when it has one) and
// the sender with SIGKILL once that many bytes went through.
func killRun(t *testing.T, env []string, src, dest, recv string, killAt int64) (n int64, killed bool) {
	t.Helper()
	send := exec.Command("sh", "-c", `bsplan "$SRC/" "$DEST" | bssend`)
	send.Env = append(env, "SRC="+src, "DEST="+dest)
	send.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var sendErr, recvErr bytes.Buffer
	send.Stderr = &sendErr
	out, err := send.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	rc := exec.Command(filepath.Join(harness.Bin(t), "bsrecv"), "--wait", recv)
	rc.Env = env
	rc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	rc.Stderr = &recvErr
	in, err := rc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for {
		k, rerr := out.Read(buf)
		if k > 0 {
			if killAt > 0 && n+int64(k) >= killAt {
				k = int(killAt - n)
			}
			if _, err := in.Write(buf[:k]); err != nil {
				t.Fatalf("writing to bsrecv: %v; stderr %s", err, recvErr.String())
			}
			n += int64(k)
			if killAt > 0 && n >= killAt {
				syscall.Kill(-rc.Process.Pid, syscall.SIGKILL)
				syscall.Kill(-send.Process.Pid, syscall.SIGKILL)
				killed = true
				break
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
	}
	in.Close()
	serr, rerr := send.Wait(), rc.Wait()
	if !killed && (serr != nil || rerr != nil) {
		t.Fatalf("send: %v %s\nbsrecv: %v %s", serr, sendErr.String(), rerr, recvErr.String())
	}
	return n, killed
}

// waitMarker waits until no process holds the receive marker of snap in
// dir (a remote bsrecv whose connection was cut finishes on its own).
func waitMarker(t *testing.T, dir, snap string) {
	p := filepath.Join(dir, resume.MarkerName(snap))
	for i := 0; i < 600; i++ {
		f, err := os.Open(p)
		if err != nil {
			return
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		f.Close()
		if err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still locked", p)
}

// A receive of a large snapshot killed at random points, over and over:
// each rerun of the same plan resumes where the last one left off and
// carries at most the part not yet received plus 64 MiB; the last one
// completes the same snapshot. RESUME_KILL_MIB (default 2048) sets the
// size, RESUME_KILLS (default 5) the number of kills.
func TestResumeKilled(t *testing.T) {
	mib := envInt("RESUME_KILL_MIB", 2048)
	kills := envInt("RESUME_KILLS", 5)
	mnt := harness.Btrfs(t, mib+mib/4+300)
	dst := harness.Btrfs(t, mib+mib/4+300)
	src := killSource(t, mnt, mib)
	env := append(os.Environ(), "PATH="+harness.Bin(t)+":"+os.Getenv("PATH"))
	size, err := strconv.ParseInt(strings.TrimSpace(harness.MustSh(t, `bssend "$SRC/s1" | wc -c`, "SRC="+src).Stdout), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(dir string) string {
		return strings.Fields(harness.MustSh(t, `cd "$(mktemp -d)" && checksumdir --full --stdout "$D"`, "D="+dir).Stdout)[0]
	}
	want := sum(src + "/s1")
	ssh := harness.StartSSHD(t, harness.SSHDOptions{})
	for _, tc := range []struct{ name, recv string }{
		{"local", dst + "/local/"},
		{"ssh", ssh.URL(dst+"/ssh") + "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(dst, tc.name)
			os.Mkdir(dir, 0o755)
			env := append(env, ssh.Env)
			rng := rand.New(rand.NewSource(14))
			var reached int64 // of the whole stream, when the last run was killed
			var start int64   // where this run's stream starts in the whole one
			for run := 0; run <= kills; run++ {
				killAt := int64(0)
				if run < kills {
					// Past what the last run reached, so that each run
					// resumes one that got further.
					killAt = reached - start + 1 + int64(float64(size-reached)*(0.1+0.6*rng.Float64()))
				}
				n, killed := killRun(t, env, src, dir+"/", tc.recv, killAt)
				if run > 0 && n > size-reached+killSlack {
					t.Errorf("run %d: %d bytes on the pipe; %d of %d were received before: over the bound by %d", run, n, reached, size, n-(size-reached+killSlack))
				}
				t.Logf("run %d: from %d, %d bytes on the pipe (killed %v)", run, start, n, killed)
				if run == kills {
					break
				}
				if !killed {
					// Near the end (make soak's many kills), the rest
					// went through before the kill point.
					t.Logf("run %d completed before its kill point %d", run, killAt)
					break
				}
				reached = start + n
				waitMarker(t, dir, "s1")
				r := srPartial(t, dir, "s1")
				if r.Offset < start || r.Offset > reached {
					t.Fatalf("run %d: resume point %d, outside [%d, %d]", run, r.Offset, start, reached)
				}
				start = r.Offset
			}
			srComplete(t, dir+"/s1", src+"/s1")
			if got := sum(dir + "/s1"); got != want {
				t.Errorf("checksumdir %s, want %s", got, want)
			}
			harness.MustSh(t, `btrfs -q subvolume delete "$D/s1" && btrfs -q subvolume sync "$D"`, "D="+dir)
		})
	}
}

// The cases of a resumed receive: a cut full or incremental receive
// resumes (also from the older record when the newer slot is torn, and
// after an interrupt); a resumed stream is refused, leaving everything as
// it was, when no partial receive is there or the record there belongs to
// another subvolume.
func TestResumeCases(t *testing.T) {
	src := harness.Btrfs(t, 700)
	dst := harness.Btrfs(t, 700)
	env := []string{"SRC=" + src + "/snaps", "DST=" + dst}
	harness.MustSh(t, `cd "$M" && mkdir snaps && btrfs -q subvolume create vol
		head -c 90000000 /dev/urandom > vol/a && mkdir vol/d && for i in $(seq 200); do echo $i > vol/d/$i; done
		btrfs -q subvolume snapshot -r vol snaps/s1
		head -c 90000000 /dev/urandom > vol/b && mv vol/d vol/e && rm vol/e/7 && mv vol/a vol/e/a
		btrfs -q subvolume snapshot -r vol snaps/s2
		bssend snaps/s1 > s1.stream && bssend -p snaps/s1 snaps/s2 > s2.stream`, append(env, "M="+src)...)
	sizeOf := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// resumeAll runs the plan, which must resume snap and carry less than
	// the whole streams it plans (whole bytes), and checks what it
	// received.
	resumeAll := func(t *testing.T, snap string, whole int64) {
		t.Helper()
		r := harness.MustSh(t, `bsplan "$SRC/" "$DST/" | bssend | tee "$DST/../resumed" | bsrecv "$DST/" > /dev/null; wc -c < "$DST/../resumed"`, env...)
		if n, _ := strconv.ParseInt(strings.TrimSpace(r.Stdout), 10, 64); n >= whole || n == 0 {
			t.Errorf("%s: %d bytes sent for a stream of %d", snap, n, whole)
		}
		srComplete(t, dst+"/"+snap, src+"/snaps/"+snap)
		srSameTree(t, src+"/snaps/"+snap, dst+"/"+snap)
		if _, err := os.Stat(filepath.Join(dst, resume.MarkerName(snap))); err == nil {
			t.Errorf("%s: marker left", snap)
		}
	}
	s1 := sizeOf(src + "/s1.stream")

	t.Run("torn progress", func(t *testing.T) {
		srCut(t, src+"/snaps", dst, "s1", `head -c 70000000 "$SRC/../s1.stream" | bsrecv "$DST/"`, "truncated", env...)
		newer := srPartial(t, dst, "s1")
		p := filepath.Join(dst, resume.MarkerName("s1"))
		b, err := os.ReadFile(p)
		if err != nil || len(b) < resume.ProgressOff+resume.ProgressLen {
			t.Fatalf("marker of %d bytes: %v", len(b), err)
		}
		// Tear the progress slot written last (as a kill mid-store
		// would): the other one, a command earlier, is the point, and
		// the command after it, already applied, is applied again.
		slot := func(i int) []byte { return b[resume.ProgressOff+i*512 : resume.ProgressOff+(i+1)*512] }
		last := 0
		if binary.LittleEndian.Uint64(slot(1)[16:]) > binary.LittleEndian.Uint64(slot(0)[16:]) {
			last = 1
		}
		slot(last)[70] ^= 1
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if older := srPartial(t, dst, "s1"); older.Offset >= newer.Offset {
			t.Fatalf("resume point %d after tearing the one at %d", older.Offset, newer.Offset)
		}
		resumeAll(t, "s1", s1+sizeOf(src+"/s2.stream"))
	})
	t.Run("incremental interrupted", func(t *testing.T) {
		r := harness.Sh(t, `
			btrfs -q subvolume delete "$DST/s2"
			mkfifo "$DST/../fifo"
			bsrecv "$DST/" < "$DST/../fifo" & rpid=$!
			{ head -c 50000000 "$SRC/../s2.stream"; exec sleep 30; } > "$DST/../fifo" & feeder=$!
			sleep 3; kill -INT $rpid
			rc=0; wait $rpid || rc=$?; kill $feeder; rm "$DST/../fifo"; exit $rc`, env...)
		if r.Code != 130 || !strings.Contains(r.Stderr, "bsrecv: error: interrupted") {
			t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		srPartial(t, dst, "s2")
		resumeAll(t, "s2", sizeOf(src+"/s2.stream"))
	})
	t.Run("forged progress", func(t *testing.T) {
		// A progress page claiming another point than the one the
		// partial holds.
		harness.MustSh(t, `btrfs -q subvolume delete "$DST/s2" "$DST/s1"; btrfs -q subvolume sync "$DST"
			head -c 70000000 "$SRC/../s1.stream" | bsrecv "$DST/" 2>/dev/null || true`, env...)
		p := filepath.Join(dst, resume.MarkerName("s1"))
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 4096+1024 {
			t.Fatalf("marker of %d bytes: %v", len(b), err)
		}
		forge := func(b []byte) {
			for i := 0; i < 2; i++ {
				slot := b[4096+i*512 : 4096+(i+1)*512]
				off := binary.LittleEndian.Uint64(slot[56:])
				binary.LittleEndian.PutUint64(slot[56:], off-1000)
				binary.LittleEndian.PutUint32(slot[508:], crc32.Checksum(slot[:508], crc32.MakeTable(crc32.Castagnoli)))
			}
		}
		forge(b)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// The plan's point is the forged one, which the kernel's stream
		// does not have: bssend warns and sends it whole, and the
		// partial, whose content is unknown, is received anew.
		r := harness.Sh(t, `bsplan "$SRC/" "$DST/" | bssend | bsrecv "$DST/" >/dev/null`, env...)
		if r.Code != 0 || !strings.Contains(r.Stderr, "sending it whole") {
			t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		srComplete(t, dst+"/s1", src+"/snaps/s1")
		srSameTree(t, src+"/snaps/s1", dst+"/s1")
		// A stream resumed from the record's start is read up to the
		// forged point without being applied, and refused there.
		harness.MustSh(t, `btrfs -q subvolume delete "$DST"/s*; btrfs -q subvolume sync "$DST"
			head -c 70000000 "$SRC/../s1.stream" | bsrecv "$DST/" 2>/dev/null || true`, env...)
		if b, err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
		forge(b)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s1b, err := os.ReadFile(src + "/s1.stream")
		if err != nil {
			t.Fatal(err)
		}
		start := resume.Start(binary.LittleEndian.Uint32(s1b[13:17])).Point()
		r = harness.Sh(t, `bssend --resume "0:$D" "$SRC/s1" | bsrecv "$DST/"`, append(env, "D="+hex.EncodeToString(start.Digest[:]))...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "the stream differs from what the partial receive applied") {
			t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
		}
		if subs := srSubvols(t, dst); len(subs) != 0 {
			t.Fatalf("destination holds %v", subs)
		}
	})
	t.Run("refused", func(t *testing.T) {
		harness.MustSh(t, `btrfs -q subvolume delete "$DST"/s* 2>/dev/null || true; btrfs -q subvolume sync "$DST"
			head -c 70000000 "$SRC/../s1.stream" | bsrecv "$DST/" 2>/dev/null || true
			bsplan "$SRC/" "$DST/" | bssend > "$DST/../resumed"`, env...)
		p := filepath.Join(dst, resume.MarkerName("s1"))
		before, _ := os.ReadFile(p)
		info := srInfo(t, dst+"/s1")
		check := func(t *testing.T, what, want, hint string) {
			t.Helper()
			r := harness.Sh(t, `bsrecv "$DST/" < "$DST/../resumed"`, env...)
			if r.Code != 1 || !strings.Contains(r.Stderr, "bsrecv: error: ") || !strings.Contains(r.Stderr, want) ||
				!strings.Contains(r.Stderr, hint) {
				t.Fatalf("%s: exit %d, stderr %q", what, r.Code, r.Stderr)
			}
		}
		// The record names another subvolume: the partial is left as it is.
		rec, _, _ := resume.Decode(before)
		rec.Subvol = srInfo(t, src+"/snaps/s1").UUID
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := resume.NewWriter(f)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		f.Close()
		forged, _ := os.ReadFile(p)
		// Nor is it taken for a leftover: the marker was written after
		// the subvolume was made.
		check(t, "another subvolume's record", "not a leftover of bsrecv", "move or delete it")
		if now := srInfo(t, dst+"/s1"); now != info {
			t.Fatalf("partial changed: %+v -> %+v", info, now)
		}
		if now, _ := os.ReadFile(p); !bytes.Equal(now, forged) {
			t.Error("marker changed")
		}
		// No partial receive at all: nothing is made.
		harness.MustSh(t, `btrfs -q subvolume delete "$DST/s1" && rm "$DST/.s1.bsrecv"`, env...)
		check(t, "no partial", "cannot resume: no partial receive there", "rerun bsplan; it will send the whole stream")
		if subs := srSubvols(t, dst); len(subs) != 0 {
			t.Fatalf("destination holds %v", subs)
		}
		if ents, _ := os.ReadDir(dst); len(ents) != 0 {
			t.Fatalf("destination holds %v", ents)
		}
	})
}
