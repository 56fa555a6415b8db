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
