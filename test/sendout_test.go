package test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/test/harness"
)

// soSource is srSource with a third snapshot s3 and a plan file
// $SRC/plan of three steps (s1 full, s2 from s1, s3 from s2); $SRC/want
// holds what btrfs send writes for them, back to back.
func soSource(t *testing.T) string {
	t.Helper()
	src := srSource(t, 300)
	harness.MustSh(t, `
		cd "$SRC"
		echo three >> vol/dir/f && head -c 300000 /dev/urandom > vol/third && rm vol/new
		btrfs -q subvolume snapshot -r vol s3
		step() { printf '{"op":"send","src":"%s/","dst":"/x/","snapshot":{"kind":"subvolume","path":"%s"},"parent":%s,"clones":[]}\n' "$SRC" "$1" "$2"; }
		{ step s1 null; step s2 '{"kind":"subvolume","path":"s1"}'; step s3 '{"kind":"subvolume","path":"s2"}'; } > plan
		{ btrfs send -q --proto 1 s1; btrfs send -q --proto 1 -p s1 s2; btrfs send -q --proto 1 -p s2 s3; } | cat > want
	`, "SRC="+src)
	return src
}

// Every byte bssend writes lands at stdout's current position, whatever
// stdout is: the kernel's send writes a regular file from offset 0, so
// two streams into one file used to leave only the last one, whole or
// over the remains of the first (exit 0, found out at restore).
func TestSendOutputKinds(t *testing.T) {
	src := soSource(t)
	dst := harness.Btrfs(t, 300)
	env := []string{"SRC=" + src, "DST=" + dst}
	// Each kind writes the three streams, from the plan or from three
	// runs, into $OUT, between $HEAD and $TAIL.
	kinds := []struct{ name, script, head, tail string }{
		{"pipe", `bssend --proto 1 < plan | cat > "$OUT"`, "", ""},
		{"pipe, three runs", `{ bssend --proto 1 s1; bssend --proto 1 -p s1 s2; bssend --proto 1 -p s2 s3; } | cat > "$OUT"`, "", ""},
		{"file", `bssend --proto 1 < plan > "$OUT"`, "", ""},
		{"file, three runs", `{ bssend --proto 1 s1; bssend --proto 1 -p s1 s2; bssend --proto 1 -p s2 s3; } > "$OUT"`, "", ""},
		{"file, -v", `bssend -v --proto 1 < plan > "$OUT" 2>/dev/null`, "", ""},
		{"appending to data", `printf 'old data\n' > "$OUT"; bssend --proto 1 < plan >> "$OUT"`, "old data\n", ""},
		{"appending, three runs", `printf 'old data\n' > "$OUT"; bssend --proto 1 s1 >> "$OUT"; bssend --proto 1 -p s1 s2 >> "$OUT"; bssend --proto 1 -p s2 s3 >> "$OUT"`, "old data\n", ""},
		// Opened without O_APPEND, after some bytes: the streams go at
		// the descriptor's position, and leave it after themselves.
		{"file at an offset", `printf 0123456789 > "$OUT"; exec 3<>"$OUT"; printf head >&3; bssend --proto 1 < plan >&3; printf tail >&3; exec 3>&-`, "head", "tail"},
		{"file at an offset, three runs", `exec 3<>"$OUT"; printf head >&3; { bssend --proto 1 s1; bssend --proto 1 -p s1 s2; bssend --proto 1 -p s2 s3; } >&3; printf tail >&3; exec 3>&-`, "head", "tail"},
	}
	want, err := os.ReadFile(src + "/want")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			out := filepath.Join(src, "out"+srItoa(i))
			harness.MustSh(t, `cd "$SRC"; `+k.script, append(env, "OUT="+out)...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			soCheck(t, got, want, k.head, k.tail)
			streams := filepath.Join(src, "streams"+srItoa(i))
			if err := os.WriteFile(streams, got[len(k.head):len(got)-len(k.tail)], 0o644); err != nil {
				t.Fatal(err)
			}
			into := filepath.Join(dst, "k"+srItoa(i))
			harness.MustSh(t, `mkdir "$INTO" && btrfs receive -q -f "$F" "$INTO"`, "INTO="+into, "F="+streams)
			for _, s := range []string{"s1", "s2", "s3"} {
				srComplete(t, into+"/"+s, src+"/"+s)
				srSameTree(t, src+"/"+s, into+"/"+s)
			}
		})
	}
	t.Run("socket", func(t *testing.T) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		w, r := os.NewFile(uintptr(fds[0]), "socket"), os.NewFile(uintptr(fds[1]), "socket")
		defer r.Close()
		cmd := exec.Command(filepath.Join(harness.Bin(t), "bssend"), "--proto", "1")
		cmd.Dir = src
		plan, err := os.Open(src + "/plan")
		if err != nil {
			t.Fatal(err)
		}
		defer plan.Close()
		cmd.Stdin = plan
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = w, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("bssend: %v: %s", err, stderr.String())
		}
		soCheck(t, got, want, "", "")
	})
	// A stdout that fills up: one error line, exit 1, spliced (a
	// regular file on a full tmpfs) or written (/dev/full).
	t.Run("full", func(t *testing.T) {
		tiny := t.TempDir()
		harness.MustSh(t, `mount -t tmpfs -o size=1M tmpfs "$TINY"`, "TINY="+tiny)
		defer harness.MustSh(t, `umount "$TINY"`, "TINY="+tiny)
		for _, out := range []string{"/dev/full", tiny + "/out"} {
			for _, flags := range []string{"", "-v"} {
				r := harness.Sh(t, `cd "$SRC"; bssend `+flags+` --proto 1 < plan > "$OUT"`, append(env, "OUT="+out)...)
				if r.Code != 1 || !strings.HasSuffix(r.Stderr, "bssend: error: writing stdout: no space left on device\n") || strings.Count(r.Stderr, "error:") != 1 {
					t.Errorf("bssend %s > %s: exit %d, stderr %q", flags, out, r.Code, r.Stderr)
				}
			}
		}
	})
	t.Run("/dev/null", func(t *testing.T) {
		r := harness.MustSh(t, `cd "$SRC"; bssend --proto 1 < plan > /dev/null
			bssend -v --proto 1 < plan 2>&1 >/dev/null | sed -n 's/.* bytes=\([0-9]*\)$/\1/p' | awk '{ s += $1 } END { print s }'`, env...)
		if got := strings.TrimSpace(r.Stdout); got != srItoa(len(want)) {
			t.Fatalf("%s bytes sent, btrfs send writes %d", got, len(want))
		}
	})
}

// soCheck fails unless got is head, want, tail.
func soCheck(t *testing.T, got, want []byte, head, tail string) {
	t.Helper()
	exp := append(append([]byte(head), want...), tail...)
	if bytes.Equal(got, exp) {
		return
	}
	at := 0
	for at < len(got) && at < len(exp) && got[at] == exp[at] {
		at++
	}
	t.Fatalf("output is %d bytes, want %d (head %q, %d bytes of btrfs send, tail %q); first difference at byte %d", len(got), len(exp), head, len(want), tail, at)
}

// Same bytes as btrfs send for every combination of flags, -c without -p
// included: btrfs send then sends each snapshot incrementally from a
// parent it picks among the clone sources (the snapshot's origin, else
// the sibling nearest it), or refuses.
func TestSendSameBytesAsBtrfsSendFlagTable(t *testing.T) {
	src := srSource(t, 300)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create other && cp --reflink=always s1/data other/copy
		btrfs -q subvolume snapshot -r other o1
		echo three >> vol/dir/f && cp --reflink=always s2/new vol/again
		btrfs -q subvolume snapshot -r vol s3
		echo four >> vol/dir/f
		btrfs -q subvolume snapshot -r s1 s1b
	`, "SRC="+src)
	same := []string{
		"--proto 1 s1",
		"--proto 2 s1",
		"--proto 1 -p s1 s2",
		"--proto 2 -p s1 -c o1 s2",
		"--proto 1 -p s1 -c s2 -c o1 s3",
		"--proto 1 -p s1 s2 s3",
		"--proto 1 s1 s2 o1",
		"--proto 2 --compressed-data s1",
		"--proto 1 --no-data s2",
		"--proto 1 --no-data -p s1 s2",
		// -c without -p: a sibling, either way round.
		"--proto 1 -c s1 s2",
		"--proto 1 -c s2 s1",
		"--proto 2 -c s1 s2",
		"--proto 2 --compressed-data -c s1 s2",
		"--proto 1 --no-data -c s1 s2",
		// Repeated -c: the nearest sibling, wherever it stands.
		"--proto 1 -c s1 -c s3 s2",
		"--proto 1 -c s3 -c s1 s2",
		"--proto 1 -c o1 -c s1 -c s2 s3",
		"--proto 1 -c s1 -c o1 s2",
		// The origin itself before any sibling.
		"--proto 1 -c s2 -c s1 s1b",
		// Several snapshots: each sent one joins the clone sources.
		"--proto 1 -c s1 s2 s3",
		"--proto 1 -c o1 -c s1 s3 s2",
	}
	for _, args := range same {
		t.Run(args, func(t *testing.T) {
			harness.MustSh(t, `cd "$SRC"
				bssend `+args+` | cat > "$SRC/got"
				btrfs send -q `+args+` > "$SRC/want"
				cmp "$SRC/got" "$SRC/want"`, "SRC="+src)
		})
	}
	// No clone source can be the parent: btrfs send refuses, and so does
	// bssend, in one line before any byte.
	refused := []string{
		"--proto 1 -c o1 s2",
		"--proto 1 -c s1b s2",
		"--proto 1 -c s1 o1",
		"--proto 1 -c s1 s2 o1",
	}
	for _, args := range refused {
		t.Run(args, func(t *testing.T) {
			r := harness.Sh(t, `cd "$SRC"; ! btrfs send -q `+args+` > /dev/null 2>&1 || { echo "btrfs send accepted it" >&2; exit 9; }
				bssend `+args+` > "$SRC/got"`, "SRC="+src)
			if r.Code != 1 || !strings.HasPrefix(r.Stderr, "bssend: error: ") || strings.Count(r.Stderr, "error:") != 1 ||
				!strings.Contains(r.Stderr, "no parent among the clone sources") || !strings.Contains(r.Stderr, "bssend: hint: name the parent with -p") {
				t.Fatalf("exit %d, stderr %q", r.Code, r.Stderr)
			}
			if fi, err := os.Stat(src + "/got"); err != nil || fi.Size() != 0 {
				t.Fatalf("bssend wrote a stream: %v %v", fi, err)
			}
		})
	}
}
