package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/test/harness"
)

// plainChain makes a source btrfs with a chain of four snapshots s1..s4
// (renames, deletes, hard links, clones across files, a sparse file,
// xattrs, a device, a file replaced by a directory of its name, a
// read-only directory and file that change) and
// their streams: s1.stream in full, s2..s4 incremental, in $SRC/streams.
func plainChain(t *testing.T) string {
	t.Helper()
	src := harness.Btrfs(t, 400)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol
		cd vol
		head -c 3000000 /dev/urandom > data
		head -c 2000000 /dev/urandom > other
		truncate -s 20M sparse && printf end >> sparse
		mkdir -p d/e && echo one > d/f && ln -s ../data d/link && mkfifo fifo
		echo grouped > g1 && ln g1 g2 && echo rep > rep && mknod null c 1 3
		setfattr -n user.x -v 1 data && setfattr -n user.dir -v v d
		chown 12:34 d/e other && chmod 4755 d/f && chmod 0750 d
		touch -d '2001-02-03 04:05:06' d/e
		mkdir ro && echo x > ro/f && chmod 0555 ro && echo y > rofile && chmod 0444 rofile
		cd .. && btrfs -q subvolume snapshot -r vol s1
		chmod u+w vol/ro && echo z > vol/ro/g && chmod 0555 vol/ro
		cp --reflink=always vol/data vol/data-clone
		echo two >> vol/d/f && mv vol/d vol/moved && rm vol/fifo && ln vol/other vol/other-link
		setfattr -n user.x -v 2 vol/data
		btrfs -q subvolume snapshot -r vol s2
		rm vol/rep && mkdir vol/rep && echo inside > vol/rep/x
		printf XXXX | dd of=vol/data bs=1 seek=100000 conv=notrunc status=none
		printf tail >> vol/sparse && setfattr -x user.x vol/data && echo g >> vol/g2
		chmod u+w vol/rofile && echo more >> vol/rofile && chmod 0444 vol/rofile
		btrfs -q subvolume snapshot -r vol s3
		chmod 0600 vol/other && chown 56:78 vol/data-clone && truncate -s 1000 vol/moved/f
		rm vol/g1 && touch -h -d '2010-01-01 00:00:00' vol/moved/link
		btrfs -q subvolume snapshot -r vol s4
		sync
		mkdir streams
		bssend s1 > streams/s1.stream
		bssend -p s1 s2 > streams/s2.stream
		bssend -p s2 s3 > streams/s3.stream
		bssend -p s3 s4 > streams/s4.stream
		cat streams/s2.stream streams/s3.stream streams/s4.stream > streams/rest.stream
		cat streams/s1.stream streams/rest.stream > streams/all.stream
		chmod -R a+rX streams
	`, "SRC="+src)
	return src
}

// plainBin is a directory holding bsrecv and bsls, which any user can
// run, and no btrfs command.
func plainBin(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bs-plainbin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, c := range []string{"bsrecv", "bsls", "checksumdir"} {
		b, err := os.ReadFile(filepath.Join(harness.Bin(t), c))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755)
	return dir
}

// plainDesc describes every entry of a tree by path: type and mode,
// owner (with owners), size, mtime, link target, content, xattrs and the
// hard-link group it belongs to (the first path of its inode), not the
// link count (a mirror's files are linked to its other snapshots') nor
// the root's times. The device "null" is left out without owners (a
// non-root receive makes it an empty file).
func plainDesc(t *testing.T, root string, owners bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	first := map[uint64]string{}
	var paths []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		typ := st.Mode & unix.S_IFMT
		if !owners && filepath.Base(p) == "null" {
			// The chain's device, an empty file where a user made it.
			continue
		}
		desc := []string{strconv.FormatUint(uint64(st.Mode), 8)}
		if owners {
			desc = append(desc, strconv.Itoa(int(st.Uid))+":"+strconv.Itoa(int(st.Gid)))
		}
		if typ != unix.S_IFDIR {
			desc = append(desc, strconv.FormatInt(st.Size, 10))
		}
		if rel != "." {
			desc = append(desc, strconv.FormatInt(st.Mtim.Sec, 10)+"."+strconv.FormatInt(st.Mtim.Nsec, 10))
		}
		switch typ {
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc = append(desc, "-> "+l)
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			desc = append(desc, hex.EncodeToString(h.Sum(nil)[:8]))
			if g, ok := first[st.Ino]; ok {
				desc = append(desc, "same-as "+g)
			} else {
				first[st.Ino] = rel
			}
		}
		desc = append(desc, srXattrs(t, p)...)
		out[rel] = strings.Join(desc, " ")
	}
	return out
}

func plainSame(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s missing", what, p)
		} else if g != w {
			t.Errorf("%s: %s differs:\n  want %s\n  got  %s", what, p, w, g)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s extra", what, p)
		}
	}
}

// plainGrouped reports whether p is one of a hard-link group in desc.
func plainGrouped(desc map[string]string, p string) bool {
	if strings.Contains(desc[p], "same-as") {
		return true
	}
	for _, d := range desc {
		if strings.HasSuffix(d, "same-as "+p) || strings.Contains(d, "same-as "+p+" ") {
			return true
		}
	}
	return false
}

// plainChecksumdir checks that checksumdir finds the same data, modes,
// times (and owners) in the tree received as in its source: its .files
// equal, its .ls equal but for the link counts (a mirror's files are
// linked to other snapshots', and btrfs counts a directory's links
// otherwise).
func plainChecksumdir(t *testing.T, src, dst string, owners bool) {
	t.Helper()
	a, b := t.TempDir(), t.TempDir()
	harness.MustSh(t, `cd "$A" && checksumdir "$SRC" && cd "$B" && checksumdir "$DST"`, "A="+a, "B="+b, "SRC="+src, "DST="+dst)
	name := filepath.Base(src)
	for _, ext := range []string{".files", ".ls"} {
		x, _ := os.ReadFile(filepath.Join(a, name+ext))
		y, _ := os.ReadFile(filepath.Join(b, name+ext))
		fix := func(b []byte) string {
			var out []string
			for _, l := range strings.Split(string(b), "\n") {
				if !owners && (strings.HasSuffix(l, "./null") || strings.HasSuffix(l, " null")) {
					continue
				}
				if f := strings.Fields(l); ext == ".ls" && len(f) >= 7 {
					f[1] = "-"
					if !owners {
						f[2], f[3] = "-", "-"
					}
					l = strings.Join(f, " ")
				}
				out = append(out, l)
			}
			return strings.Join(out, "\n")
		}
		if fix(x) != fix(y) {
			t.Errorf("checksumdir %s%s differs:\n%s\nsource:\n%s", name, ext, y, x)
		}
	}
}

func duKiB(t *testing.T, p string) int {
	t.Helper()
	r := harness.MustSh(t, `du -sk "$P" | cut -f1`, "P="+p)
	n, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("du %s: %q", p, r.Stdout)
	}
	return n
}

// TestPlainMirror receives a chain of four snapshots into plain
// directories on ext4 and tmpfs (hard links) and btrfs (reflinks), as root and as a user with no btrfs
// command: each equals its source (owners aside for the user), a
// completed directory never changes when its children are received,
// unchanged files are shared, a receive killed mid-stream leaves no
// snapshot under its name and a rerun completes it.
func TestPlainMirror(t *testing.T) {
	src := plainChain(t)
	bin := plainBin(t)
	streams := filepath.Join(src, "streams")
	fss := map[string]func(testing.TB, int) string{"ext4": harness.Ext4, "tmpfs": harness.Tmpfs, "btrfs": harness.Btrfs}
	for _, fsName := range []string{"ext4", "tmpfs", "btrfs"} {
		for _, user := range []string{"root", "nobody"} {
			if fsName == "btrfs" && user == "nobody" {
				continue // reflinks, as root: the copies are what is tested
			}
			t.Run(fsName+"/"+user, func(t *testing.T) {
				mnt := fss[fsName](t, 200)
				os.Chmod(filepath.Dir(mnt), 0o755)
				dst := filepath.Join(mnt, "mirror")
				as := ""
				if user == "nobody" {
					as = "setpriv --reuid=65534 --regid=65534 --clear-groups"
				}
				harness.MustSh(t, `mkdir "$DST" && chown `+user+` "$DST"`, "DST="+dst)
				run := func(script string) harness.Result {
					return harness.Sh(t, script, "DST="+dst, "S="+streams, "BIN="+bin, "AS="+as)
				}
				r := run(`$AS env PATH="$BIN" bsrecv "dir://$DST/" < "$S/s1.stream"`)
				if r.Code != 0 {
					t.Fatalf("bsrecv s1: %d: %s", r.Code, r.Stderr)
				}
				owners := user == "root"
				s1 := plainDesc(t, filepath.Join(dst, "s1"), true)
				r = run(`$AS env PATH="$BIN" bsrecv "dir://$DST/" < "$S/rest.stream"`)
				if r.Code != 0 {
					t.Fatalf("bsrecv s2..s4: %d: %s", r.Code, r.Stderr)
				}
				if n := strings.Count(r.Stdout, "\n"); n != 3 {
					t.Errorf("%d records:\n%s", n, r.Stdout)
				}
				if !owners && !strings.Contains(r.Stderr, "could not be set as a non-root user") {
					t.Errorf("no summary of the owners not set:\n%s", r.Stderr)
				}
				plainSame(t, "s1 after its children", s1, plainDesc(t, filepath.Join(dst, "s1"), true))
				for _, s := range []string{"s1", "s2", "s3", "s4"} {
					plainSame(t, s, plainDesc(t, filepath.Join(src, s), owners), plainDesc(t, filepath.Join(dst, s), owners))
				}
				for _, s := range []string{"s1", "s4"} {
					plainChecksumdir(t, filepath.Join(src, s), filepath.Join(dst, s), owners)
				}
				// Sparse stays sparse; unchanged files are shared.
				var st unix.Stat_t
				unix.Stat(filepath.Join(dst, "s4", "sparse"), &st)
				if st.Blocks*512 > 1<<20 {
					t.Errorf("sparse file takes %d bytes", st.Blocks*512)
				}
				// The mirror costs its first snapshot and, for each child,
				// the files whose data or metadata changed (and those
				// hard-linked within it, copied to keep their group).
				total, first := duKiB(t, dst), duKiB(t, filepath.Join(dst, "s1"))
				changed := 0
				for i, s := range []string{"s2", "s3", "s4"} {
					prev := plainDesc(t, filepath.Join(src, []string{"s1", "s2", "s3"}[i]), true)
					seen := map[uint64]bool{}
					for p, d := range plainDesc(t, filepath.Join(src, s), true) {
						var st unix.Stat_t
						if unix.Lstat(filepath.Join(dst, s, p), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || seen[st.Ino] {
							continue
						}
						if prev[p] != d || plainGrouped(prev, p) || plainGrouped(prev, strings.TrimPrefix(d[strings.LastIndex(d, " ")+1:], "")) {
							seen[st.Ino] = true
							changed += int(st.Blocks / 2)
						}
					}
				}
				// (du counts reflinked data once per file: btrfs is not
				// measured.)
				if limit := first + changed + 256; total > limit && fsName != "btrfs" {
					t.Errorf("mirror takes %d KiB; first snapshot %d KiB, changed files %d KiB", total, first, changed)
				}
				t.Logf("mirror %d KiB; first snapshot %d KiB, changed files %d KiB", total, first, changed)
				// Everything received again: skipped, nothing changes.
				s4 := plainDesc(t, filepath.Join(dst, "s4"), true)
				r = run(`$AS env PATH="$BIN" bsrecv -v "dir://$DST/" < "$S/all.stream"`)
				if r.Code != 0 || !strings.Contains(r.Stderr, "4 skipped") {
					t.Errorf("rerun: %d: %s", r.Code, r.Stderr)
				}
				plainSame(t, "s4 after a rerun", s4, plainDesc(t, filepath.Join(dst, "s4"), true))
				// bsls lists the mirror; bsplan plans into it from the source.
				r = run(`$AS env PATH="$BIN" bsls "dir://$DST/"`)
				var recs []snapshot.Snapshot
				for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
					var rec snapshot.Snapshot
					if err := json.Unmarshal([]byte(l), &rec); err != nil {
						t.Fatalf("bsls: %v: %q (%s)", err, l, r.Stderr)
					}
					recs = append(recs, rec)
				}
				if len(recs) != 4 || recs[0].Kind != snapshot.KindDirectory || recs[3].ParentUUID != recs[2].UUID {
					t.Errorf("bsls: %+v", recs)
				}
			})
		}
	}
}

// TestPlainInterrupted: a receive killed mid-stream leaves no directory
// under the snapshot's name, bsls shows it with --all only, and the next
// run deletes the leftover and completes it.
func TestPlainInterrupted(t *testing.T) {
	src := plainChain(t)
	dst := filepath.Join(harness.Tmpfs(t, 200), "mirror")
	r := harness.MustSh(t, `
		mkdir "$DST"
		mkfifo "$T/in"
		bsrecv "dir://$DST/" < "$T/in" & pid=$!
		{ head -c 2000000 "$S/s1.stream"; exec sleep 60; } > "$T/in" 2>/dev/null & feeder=$!
		for i in $(seq 100); do [ -d "$DST/.s1.bsrecv-part" ] && break; sleep 0.1; done
		sleep 0.5
		kill -9 $pid; wait $pid || :
		kill $feeder; wait $feeder || :
		[ ! -e "$DST/s1" ] || { echo "s1 exists"; exit 1; }
		[ -z "$(bsls "dir://$DST/")" ] || { echo listed; exit 1; }
		bsls --all "dir://$DST/" | grep -q '"partial":true'
		bsrecv "dir://$DST/" < "$S/s1.stream" 2>&1
		[ -d "$DST/s1" ] && [ ! -e "$DST/.s1.bsrecv-part" ]
	`, "S="+filepath.Join(src, "streams"), "DST="+dst, "T="+t.TempDir())
	if !strings.Contains(r.Stdout, "deleting the leftover of an interrupted receive") {
		t.Errorf("no word of the leftover:\n%s", r.Stdout)
	}
	plainSame(t, "s1", plainDesc(t, filepath.Join(src, "s1"), true), plainDesc(t, filepath.Join(dst, "s1"), true))
}

// TestPlainInPlaceChain: --in-place applies the chain into one directory
// that ends equal to the newest snapshot, with nothing beside it but its
// marker; a rerun skips everything.
func TestPlainInPlaceChain(t *testing.T) {
	src := plainChain(t)
	dst := filepath.Join(harness.Ext4(t, 200), "restore")
	r := harness.MustSh(t, `
		mkdir "$DST"
		bsrecv --in-place "dir://$DST/home" < "$S/all.stream"
		bsrecv -v --in-place "dir://$DST/home" < "$S/all.stream" 2>&1
		ls -A "$DST"
	`, "S="+filepath.Join(src, "streams"), "DST="+dst)
	if !strings.Contains(r.Stdout, "4 skipped") || !strings.HasSuffix(r.Stdout, ".buttersink.lock\n.home.bsdir\nhome\n") && !strings.HasSuffix(r.Stdout, ".home.bsdir\nhome\n") {
		t.Errorf("rerun or leftovers:\n%s", r.Stdout)
	}
	plainSame(t, "home", plainDesc(t, filepath.Join(src, "s4"), true), plainDesc(t, filepath.Join(dst, "home"), true))
}

// TestPlainSymlinkedDest: a destination reached through a symbolic link
// is resolved once, and lists the same; bsplan plans incrementals into
// the mirror from what it holds, and a plan run through bssend and
// bsrecv completes it; bsrm deletes a snapshot directory.
func TestPlainSymlinkedDest(t *testing.T) {
	src := plainChain(t)
	mnt := harness.Tmpfs(t, 100)
	r := harness.Sh(t, `
		mkdir "$M/real" "$M/elsewhere" && ln -s real "$M/link"
		bsrecv "dir://$M/link/" < "$S/s1.stream" >/dev/null
		[ -d "$M/real/s1" ] || exit 10
		bsls "dir://$M/link/" | grep -q '"path":"s1"' || exit 11
		# bsplan sends the rest as incrementals into the mirror.
		bsplan "$SRC/" "dir://$M/real/" > "$M/plan"
		grep -c '"op":"send"' "$M/plan" | grep -qx 3 || { cat "$M/plan"; exit 12; }
		grep '"path":"s4"' "$M/plan" | grep -q '"parent":{"kind":"subvolume","path":"s3"' || { cat "$M/plan"; exit 13; }
		bssend < "$M/plan" | bsrecv "dir://$M/real/" > /dev/null
		[ "$(bsls "dir://$M/real/" | wc -l)" = 4 ] || exit 14
		[ -z "$(bsplan "$SRC/" "dir://$M/real/")" ] || exit 15
		# bsrm deletes a snapshot directory and its marker, nothing else.
		bsrm "dir://$M/real/s2" > /dev/null
		[ ! -e "$M/real/s2" ] && [ ! -e "$M/real/.s2.bsdir" ] || exit 16
		[ "$(bsls "dir://$M/real/" | wc -l)" = 3 ] || exit 17
	`, "S="+filepath.Join(src, "streams"), "M="+mnt, "SRC="+src)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
}
