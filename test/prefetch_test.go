package test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/test/harness"
)

// residentPages counts the pages of the file at p in the page cache
// (mmap and mincore): what a read, or a readahead, of it leaves behind.
func residentPages(t *testing.T, p string) int {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

var prefetchedRE = regexp.MustCompile(`prefetched snapshot=\S+ bytes=(\d+) files=(\d+) ahead=(\d+) window=(\d+)`)

// bssend reads the snapshot ahead of the kernel's send: its streams stay
// byte for byte those of btrfs send (full and incremental), the prefetch
// runs (data asked for, never more than a window ahead of the stream),
// and it reads nothing outside the snapshot, though a symbolic link and
// mounts inside it lead outside.
func TestSendPrefetch(t *testing.T) {
	src := harness.Btrfs(t, 300)
	out := harness.Btrfs(t, 128)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol
		mkdir -p vol/a/b vol/sub vol/c
		head -c 24000000 /dev/urandom > vol/big
		for i in $(seq 1 60); do head -c $((3000 + i * 37)) /dev/urandom > vol/a/b/f$i; head -c 5000 /dev/urandom > vol/c/g$i; done
		head -c 65536 /dev/urandom > vol/victim
		head -c 65536 /dev/urandom > vol/sub/inner
		head -c 4000000 /dev/urandom > "$OUT/file"
		mkdir "$OUT/dir" && head -c 4000000 /dev/urandom > "$OUT/dir/inner"
		head -c 4000000 /dev/urandom > "$OUT/linked"
		ln -s "$OUT/linked" vol/link
		btrfs -q subvolume snapshot -r vol s1
		dd if=/dev/urandom of=vol/big bs=1M seek=3 count=5 conv=notrunc status=none
		for i in $(seq 1 40); do head -c 7000 /dev/urandom > vol/a/b/f$i; done
		mv vol/c/g1 vol/a/moved; rm vol/c/g2
		head -c 6000000 /dev/urandom > vol/new
		btrfs -q subvolume snapshot -r vol s2
		sync
		# Mounts inside the read-only snapshots, over a file and over a
		# directory with data, both leading to the other filesystem.
		for s in s1 s2; do
			mount --bind "$OUT/file" $s/victim
			mount --bind "$OUT/dir" $s/sub
		done
	`, "SRC="+src, "OUT="+out)
	t.Cleanup(func() {
		harness.Sh(t, `cd "$SRC"; for m in s1/victim s1/sub s2/victim s2/sub; do umount $m; done`, "SRC="+src)
	})
	outside := []string{out + "/file", out + "/dir/inner", out + "/linked"}

	for _, c := range []struct{ name, args string }{
		{"full", "s1"},
		{"incremental", "-p s1 s2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Nothing of the outside files, nor of the snapshot, in memory.
			harness.MustSh(t, `sync; echo 3 > /proc/sys/vm/drop_caches`)
			for _, p := range outside {
				if n := residentPages(t, p); n != 0 {
					t.Fatalf("%s: %d pages in memory before the send", p, n)
				}
			}
			r := harness.MustSh(t, `cd "$SRC"
				bssend -v --proto 2 $ARGS 2>"$SRC/log" | cat > "$SRC/got"
				btrfs send -q --proto 2 $ARGS | cat > "$SRC/want"
				cmp "$SRC/got" "$SRC/want"
				stat -c %s "$SRC/got"
				cat "$SRC/log" >&2`, "SRC="+src, "ARGS="+c.args)
			size, err := strconv.ParseInt(strings.TrimSpace(r.Stdout), 10, 64)
			if err != nil {
				t.Fatalf("stream size %q: %v", r.Stdout, err)
			}
			m := prefetchedRE.FindStringSubmatch(r.Stderr)
			if m == nil {
				t.Fatalf("no prefetch count at -v:\n%s", r.Stderr)
			}
			bytes, _ := strconv.ParseInt(m[1], 10, 64)
			ahead, _ := strconv.ParseInt(m[3], 10, 64)
			window, _ := strconv.ParseInt(m[4], 10, 64)
			if bytes <= 0 || bytes > size+window || ahead > window {
				t.Errorf("prefetched %d bytes, at most %d ahead, window %d, stream %d bytes", bytes, ahead, window, size)
			}
			for _, p := range outside {
				if n := residentPages(t, p); n != 0 {
					t.Errorf("%s: outside the snapshot, %d pages read into memory", p, n)
				}
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		r := harness.MustSh(t, `cd "$SRC"; bssend -v --no-prefetch --proto 2 -p s1 s2 2>&1 >/dev/null | cat`, "SRC="+src)
		if prefetchedRE.MatchString(r.Stdout) {
			t.Errorf("--no-prefetch prefetched:\n%s", r.Stdout)
		}
	})
}
