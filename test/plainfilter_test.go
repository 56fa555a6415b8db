package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// TestPlainFilter: --include and --exclude with dir:// and --in-place
// restore a whole chain into a new directory holding exactly the
// selection, equal to the source's; its marker records the patterns;
// bsls lists it as partial with them, bsplan sends it nothing, and no
// receive takes it as a base. A selection that needs dropped data fails,
// leaving nothing behind.
func TestPlainFilter(t *testing.T) {
	src := tarChain(t)
	mnt := harness.Tmpfs(t, 300)
	env := []string{"SRC=" + src, "M=" + mnt}
	r := harness.MustSh(t, tarSame+`
		btrfs -q subvolume snapshot "$SRC/s3" "$SRC/s3w" && rm "$SRC/s3w/sock"
		mkdir "$M/r"
		bsrecv --include /home/bob --include /sparse "dir://$M/r/bob" --in-place < "$SRC/chain" > "$M/rec"
		(cd "$M/r/bob" && find . | sort)
		same "$M/r/bob/home/bob" "$SRC/s3w/home/bob" || echo DIFFERS
		cmp "$M/r/bob/sparse" "$SRC/s3/sparse"
		[ "$(stat -c %a "$M/r/bob/home")" = 1777 ] || echo HOME MODE
		echo ---
		bsrecv --exclude 'dee*' --exclude /home "dir://$M/r/nohome" --in-place < "$SRC/chain" >> "$M/rec"
		(cd "$M/r/nohome" && find . | sort)
		cmp "$M/r/nohome/dir/cat" "$SRC/s3/dir/cat" && cmp "$M/r/nohome/zonly" "$SRC/s3/zonly"
		# dir/f has a hard link outside the selection: its data is kept.
		bsrecv --include /dir/f "dir://$M/r/dir" --in-place < "$SRC/chain" >> "$M/rec"
		cmp "$M/r/dir/dir/f" "$SRC/s3/dir/f" && [ "$(cd "$M/r/dir" && find . | sort | tr '\n' ' ')" = ". ./dir ./dir/f " ] ||
			{ ls -lR "$M/r/dir"; echo DIFFERS; }
		echo ---
		cat "$M/r/.bob.bsdir"
		echo ---
		bsls "dir://$M/r/"
		echo ---
		ls -A "$M/r"
	`, env...)
	if strings.Contains(r.Stdout, "DIFFERS") || strings.Contains(r.Stdout, "HOME MODE") {
		t.Fatalf("restored subtree differs from the source:\n%s\n%s", r.Stdout, r.Stderr)
	}
	parts := strings.Split(r.Stdout, "---\n")
	if len(parts) != 5 {
		t.Fatalf("output:\n%s", r.Stdout)
	}
	if want := ".\n./home\n./home/bob\n./home/bob/b.txt\n./sparse\n"; parts[0] != want {
		t.Errorf("--include /home/bob --include /sparse restored\n%s\nwant\n%s", parts[0], want)
	}
	for _, l := range strings.Split(strings.TrimSpace(parts[1]), "\n") {
		if strings.Contains(l, "/dee") || strings.HasPrefix(l, "./home") {
			t.Errorf("--exclude left %q in", l)
		}
	}
	if !strings.Contains(parts[1], "./sparse\n") || !strings.Contains(parts[1], "./dir/f\n") {
		t.Errorf("--exclude left out more than asked:\n%s", parts[1])
	}
	if !strings.Contains(parts[2], `"filter":{"include":["/home/bob","/sparse"]}`) || !strings.Contains(parts[2], `"in_place":true`) {
		t.Errorf("marker:\n%s", parts[2])
	}
	for _, l := range strings.Split(strings.TrimSpace(parts[3]), "\n") {
		if !strings.Contains(l, `"partial":true`) || !strings.Contains(l, `"filter":{`) || !strings.Contains(l, `"readonly":false`) {
			t.Errorf("bsls: %s", l)
		}
	}
	if want := ".bob.bsdir\n.buttersink.lock\n.dir.bsdir\n.nohome.bsdir\nbob\ndir\nnohome\n"; parts[4] != want && parts[4] != strings.Replace(want, ".buttersink.lock\n", "", 1) {
		t.Errorf("left in the destination:\n%s", parts[4])
	}

	// Never a base, nor restored over; bsplan sends nothing into it.
	for _, c := range []struct{ script, want string }{
		{`bsrecv --in-place "dir://$M/r/bob" < "$SRC/chain"`, "holds part of a snapshot (a restore with --include/--exclude): not a base for another receive"},
		{`bsrecv --include /dir --in-place "dir://$M/r/bob" < "$SRC/chain"`, "a filtered restore takes a whole chain into a new directory"},
		{`mkdir "$M/r2" && bsrecv --include /dir --in-place "dir://$M/r2/s1" < "$SRC/s1.full" && bsrecv "dir://$M/r2/" < "$SRC/s1.full"`, `"s1" holds part of a snapshot (a restore with --include/--exclude), not the snapshot`},
		{`tail -c +$(( $(stat -c %s "$SRC/s1.full") + 1 )) "$SRC/chain" | bsrecv --include /dir --in-place "dir://$M/r/inc"`, "a filtered restore starts from a full stream"},
		{`bsrecv --include /home/carol/docs/a.txt --in-place "dir://$M/r/carol" < "$SRC/chain"`, "home/carol/docs/a.txt: selected, but its data was dropped"},
		{`bsrecv --include /home/carol/docs/new --in-place "dir://$M/r/new" < "$SRC/chain"`, `clone "home/carol/docs/new" from "new": its data was dropped`},
		{`bsrecv --include '/[' --in-place "dir://$M/r/bad" < "$SRC/chain"`, "unterminated"},
	} {
		f := harness.Sh(t, c.script, env...)
		if f.Code == 0 || !strings.Contains(f.Stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.script, f.Code, f.Stderr, c.want)
		}
	}
	// An interrupt leaves nothing behind; a leftover of a run killed
	// outright is deleted by the next.
	r = harness.Sh(t, `mkfifo "$M/in"
		bsrecv --include /sparse --in-place "dir://$M/r/cut" < "$M/in" > /dev/null &
		pid=$!
		exec 3> "$M/in"
		head -c 4000000 "$SRC/chain" >&3
		sleep 1; kill -INT $pid; rc=0; wait $pid || rc=$?
		exec 3>&-
		echo "rc=$rc"
		bsrecv --include /sparse --in-place "dir://$M/r/kill" < "$M/in" > /dev/null &
		pid=$!
		exec 3> "$M/in"
		head -c 4000000 "$SRC/chain" >&3
		sleep 1; kill -KILL $pid; wait $pid || true
		exec 3>&-
		ls -A "$M/r" | grep -c kill
		bsrecv --include /sparse --in-place "dir://$M/r/kill" < "$SRC/chain" > /dev/null 2>&1
		rm -r "$M/r/kill" "$M/r/.kill.bsdir" "$M/in"`, env...)
	if r.Stdout != "rc=130\n3\n" {
		t.Errorf("interrupted: %q %s", r.Stdout, r.Stderr)
	}
	r = harness.MustSh(t, `ls -A "$M/r"; bsplan "$SRC/" "dir://$M/r/" | grep -c '"op":"send"'`, env...)
	if want := ".bob.bsdir\n.buttersink.lock\n.dir.bsdir\n.nohome.bsdir\nbob\ndir\nnohome\n"; !strings.HasPrefix(r.Stdout, want) && !strings.HasPrefix(r.Stdout, strings.Replace(want, ".buttersink.lock\n", "", 1)) {
		t.Errorf("failed restores left\n%s", r.Stdout)
	}
	if !strings.HasSuffix(r.Stdout, "\n3\n") {
		t.Errorf("bsplan into the filtered restores, want 3 sends (as into nothing):\n%s", r.Stdout)
	}
}

// TestPlainFilterNonRoot: as nobody, with no btrfs on PATH, the selected
// subtree gets the stream's modes (b.txt 000, home 1777) although the
// restore had to work in it with the owner's permissions.
func TestPlainFilterNonRoot(t *testing.T) {
	harness.RequireCommand(t, "setpriv")
	src := tarChain(t)
	bin := plainBin(t)
	mnt := harness.Ext4(t, 200)
	os.Chmod(filepath.Dir(mnt), 0o755)
	dst := filepath.Join(mnt, "restore")
	r := harness.MustSh(t, `
		mkdir "$DST" && chown nobody "$DST"
		setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH="$BIN" bsrecv --include /home/bob --in-place "dir://$DST/bob" < "$SRC/chain" >/dev/null 2>"$DST.err" || echo FAILED
		cat "$DST.err"
		cd "$DST/bob" && stat -c '%n %a' home home/bob home/bob/b.txt
	`, "SRC="+src, "BIN="+bin, "DST="+dst)
	want := "home 1777\nhome/bob 755\nhome/bob/b.txt 0\n"
	if !strings.HasSuffix(r.Stdout, want) || !strings.Contains(r.Stdout, "could not be set as a non-root user") {
		t.Errorf("got\n%s\nwant modes\n%s", r.Stdout, want)
	}
}

// TestPlainFilterSymlinks: a symbolic link the stream made to a directory
// outside, in a place not selected or excluded, is removed as a link:
// the removal follows none, and nothing outside the destination goes.
func TestPlainFilterSymlinks(t *testing.T) {
	src := harness.Btrfs(t, 200)
	mnt := harness.Tmpfs(t, 50)
	r := harness.Sh(t, `
		mkdir "$M/outside" && echo precious > "$M/outside/victim"
		cd "$SRC" && btrfs -q subvolume create vol
		mkdir -p vol/keep vol/evil-dir && echo k > vol/keep/f
		ln -s "$M/outside" vol/evil && ln -s "$M/outside" vol/keep/../evil2 && ln -s "$M/outside" vol/evil-dir/victim
		ln -s "$M/outside/victim" vol/evil-file
		btrfs -q subvolume snapshot -r vol s1 && btrfs send -q s1 > s1.full
		mkdir "$M/r"
		for args in "--include /keep" "--exclude /evil --exclude /evil2 --exclude /evil-file" "--include /evil/victim --include /evil-dir/victim/x" "--exclude evil*"; do
			bsrecv $args --in-place "dir://$M/r/x" < s1.full > /dev/null || exit 10
			[ "$(cat "$M/outside/victim")" = precious ] || exit 11
			ls -A "$M/r/x" | tr '\n' ' '; echo
			rm -r "$M/r/x" "$M/r/.x.bsdir"
		done
	`, "SRC="+src, "M="+mnt)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if want := "keep \nevil-dir keep \n\nkeep \n"; r.Stdout != want {
		t.Errorf("restored\n%q\nwant\n%q", r.Stdout, want)
	}
}
