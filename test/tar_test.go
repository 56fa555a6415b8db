package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// tarChain makes a chain of three snapshots s1, s2, s3 on a fresh btrfs
// (full, then two incrementals with renames, deletes, hard links, clones
// within and across files, sparse files, xattrs, ACLs, a capability,
// devices, a symlink, a FIFO and a socket) and writes their streams to
// $SRC/chain (s1 full, s2 and s3 incremental) and $SRC/s1.full.
func tarChain(t *testing.T) string {
	t.Helper()
	harness.RequireCommand(t, "setfattr")
	src := harness.Btrfs(t, 512)
	harness.MustSh(t, `
		cd "$SRC"
		btrfs -q subvolume create vol
		cd vol
		head -c 3000000 /dev/urandom > data
		truncate -s 50M sparse && printf tail >> sparse
		truncate -s 8M allhole
		mkdir pdir && echo old > older && echo file > swap
		mkdir -p dir/deeper home/alice/docs home/bob && echo one > dir/f && chmod 0750 dir && chmod 4755 dir/f
		echo alice > home/alice/docs/a.txt && echo bob > home/bob/b.txt && chown -R 1001:1001 home/alice
		ln -s ../data dir/link && ln dir/f hardlink && mkfifo fifo && mknod cdev c 1 3 && mknod bdev b 7 9
		python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'
		setfattr -n user.note -v hello data && setfattr -n user.empty dir && setfattr -n trusted.t -v x data
		# An access ACL (user 1234 r-x) and a file capability
		# (cap_net_raw+ep), in their xattr forms.
		setfattr -n system.posix_acl_access -v 0x0200000001000700ffffffff02000500d204000004000500ffffffff10000500ffffffff20000000ffffffff dir
		cp data prog && setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 prog
		chown 1234:5678 dir/deeper && touch -d '2001-02-03 04:05:06.123456789' dir/deeper && chmod 1777 home
		chown -h 4321:8765 dir/link && chmod 000 home/bob/b.txt
		cd .. && btrfs -q subvolume snapshot -r vol s1
		echo two >> vol/dir/f && rm vol/dir/link && mv vol/data vol/dir/moved
		head -c 1000000 /dev/urandom > vol/new && setfattr -x user.note vol/dir/moved
		cp --reflink=always vol/dir/moved vol/clone && mv vol/home/alice vol/home/carol
		printf X | dd of=vol/sparse bs=1 seek=20000000 conv=notrunc status=none
		head -c 300000 /dev/urandom > vol/pdir/pfile && head -c 200000 /dev/urandom > vol/only
		btrfs -q subvolume snapshot -r vol s2
		# Clones the kernel takes from the parent: of a file deleted
		# since, and into an older inode from a directory renamed since.
		cp --reflink=always vol/only vol/zonly && rm vol/only
		mv vol/pdir vol/pdir2 && cp --reflink=always vol/pdir2/pfile vol/older
		rm vol/hardlink && ln vol/new vol/dir/newlink && rm -r vol/dir/deeper && mkdir vol/dir/deeper
		cat vol/clone vol/new > vol/dir/cat && cp --reflink=always vol/new vol/home/carol/docs/new
		echo replaced > vol/fifo.tmp && rm vol/fifo && mv vol/fifo.tmp vol/fifo
		rm vol/swap && mkdir vol/swap && echo inner > vol/swap/inner
		btrfs -q subvolume snapshot -r vol s3
		btrfs send -q s1 > s1.full
		btrfs send -q -p s2 s3 | btrfs receive --dump | grep -E '^clone' > s3.clones || true
		{ cat s1.full; btrfs send -q -p s1 s2; btrfs send -q -p s2 s3; } > chain
		rm -f vol/sock s3/sock 2>/dev/null || true
	`, "SRC="+src)
	return src
}

// tarSame compares two trees per checksumdir --full: data, metadata,
// xattrs. A directory's link count is left out: btrfs counts 1 for every
// directory, other filesystems 2 plus its subdirectories.
const tarSame = `same() {
	a=$(mktemp -d) b=$(mktemp -d)
	(cd "$a" && checksumdir -q --full "$1" && mv *.ls ls && mv *.full full && mv *.files files)
	(cd "$b" && checksumdir -q --full "$2" && mv *.ls ls && mv *.full full && mv *.files files)
	for d in "$a" "$b"; do awk '$1 ~ /^d/ { $2 = "-" } { print }' "$d/ls" > "$d/ls.n"; done
	ok=0
	for x in ls.n full files; do diff "$a/$x" "$b/$x" >&2 || ok=1; done
	return $ok
}
`

func TestTarChain(t *testing.T) {
	harness.RequireCommand(t, "tar")
	src := tarChain(t)
	env := []string{"SRC=" + src}
	// The source, with its socket gone, as tar can give it back.
	harness.MustSh(t, `btrfs -q subvolume snapshot "$SRC/s3" "$SRC/s3w" && rm "$SRC/s3w/sock"
		btrfs -q subvolume snapshot "$SRC/s1" "$SRC/s1w" && rm "$SRC/s1w/sock"`, env...)
	r := harness.MustSh(t, tarSame+`
		cat "$SRC/s3.clones"
		out=$(mktemp -d)
		bsrecv --tar < "$SRC/chain" > "$out/a.tar"
		tar -x --xattrs --xattrs-include='*' --acls --numeric-owner -p -f "$out/a.tar" -C "$out"
		ls "$out"
		same "$out/s3" "$SRC/s3w" || echo DIFFERS
		# One file out of it, byte for byte.
		one=$(mktemp -d) && tar -x -f "$out/a.tar" -C "$one" s3/dir/cat s3/sparse
		cmp "$one/s3/dir/cat" "$SRC/s3/dir/cat" && cmp "$one/s3/sparse" "$SRC/s3/sparse"
		# Owners as numbers in the listing.
		tar -tv --numeric-owner -f "$out/a.tar" | grep -E ' 1001/1001 .* s3/home/carol/docs/a.txt$'
		# The full stream alone.
		bsrecv --tar < "$SRC/s1.full" | tar -x --xattrs --xattrs-include='*' --acls --numeric-owner -p -C "$out"
		same "$out/s1" "$SRC/s1w" || echo S1 DIFFERS
	`, env...)
	if strings.Contains(r.Stdout, "DIFFERS") {
		t.Fatalf("restored tree differs from the source:\n%s\n%s", r.Stdout, r.Stderr)
	}
	// The chain holds the clones from the parent it means to test.
	for _, re := range []string{`(?m)^clone +\./s3/zonly .*from=\./s3/only `, `(?m)^clone +\./s3/older .*from=\./s3/pdir/pfile `} {
		if !regexp.MustCompile(re).MatchString(r.Stdout) {
			t.Errorf("no clone %s in s3's stream:\n%s", re, r.Stdout)
		}
	}
}

// TestTarNonRoot: as nobody, with no btrfs command on PATH and on a
// temporary directory where nobody can give files away, make devices or
// set trusted.* and security.* attributes, the archive still carries the
// stream's owners, modes, devices and attributes.
func TestTarNonRoot(t *testing.T) {
	harness.RequireCommand(t, "tar")
	harness.RequireCommand(t, "setpriv")
	src := tarChain(t)
	env := []string{"SRC=" + src}
	r := harness.MustSh(t, tarSame+`
		btrfs -q subvolume snapshot "$SRC/s3" "$SRC/s3w" && rm "$SRC/s3w/sock"
		bin=$(mktemp -d) && cp "$(command -v bsrecv)" "$bin/" && chmod 755 "$bin"
		tmp=$(mktemp -d) && chmod 777 "$tmp"
		out=$(mktemp -d)
		setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH="$bin" bsrecv --tar --tmpdir "$tmp" < "$SRC/chain" > "$out/a.tar"
		[ -z "$(ls -A "$tmp")" ] || { echo "temporary directory left: $(ls "$tmp")"; exit 1; }
		tar -tv --numeric-owner -f "$out/a.tar" | grep -E '^c.* 0/0 .* 1,3 .* s3/cdev$'
		tar -tv --numeric-owner -f "$out/a.tar" | grep -E '^-rwsr-xr-x 0/0 .* s3/dir/f$'
		tar -tv --numeric-owner -f "$out/a.tar" | grep -E '^-{10} 0/0 .* s3/home/bob/b.txt$'
		tar -x --xattrs --xattrs-include='*' --acls --numeric-owner -p -f "$out/a.tar" -C "$out"
		same "$out/s3" "$SRC/s3w" || echo DIFFERS
	`, env...)
	if strings.Contains(r.Stdout, "DIFFERS") {
		t.Fatalf("restored tree differs from the source:\n%s\n%s", r.Stdout, r.Stderr)
	}
}

// TestTarSelect: --include takes subtrees (and the directories above
// them), --exclude leaves names out at any depth; data dropped for a name
// not selected fails the restore where a later rename or clone needs it.
func TestTarSelect(t *testing.T) {
	harness.RequireCommand(t, "tar")
	src := tarChain(t)
	env := []string{"SRC=" + src}
	r := harness.MustSh(t, tarSame+`
		bsrecv --tar --include /home/bob --include /sparse < "$SRC/chain" | tar -t
		echo ---
		bsrecv --tar --exclude 'dee*' --exclude /home < "$SRC/chain" | tar -t
		out=$(mktemp -d)
		bsrecv --tar --include /home/bob --include /sparse < "$SRC/chain" | tar -x --xattrs --xattrs-include='*' --numeric-owner -p -C "$out"
		btrfs -q subvolume snapshot "$SRC/s3" "$SRC/s3w"
		same "$out/s3/home/bob" "$SRC/s3w/home/bob" || echo DIFFERS
		cmp "$out/s3/sparse" "$SRC/s3/sparse"
	`, env...)
	if strings.Contains(r.Stdout, "DIFFERS") {
		t.Fatalf("restored subtree differs from the source:\n%s\n%s", r.Stdout, r.Stderr)
	}
	inc, exc, _ := strings.Cut(r.Stdout, "---\n")
	if want := "s3/\ns3/home/\ns3/home/bob/\ns3/home/bob/b.txt\ns3/sparse\n"; inc != want {
		t.Errorf("--include /home/bob --include /sparse lists\n%s\nwant\n%s", inc, want)
	}
	for _, l := range strings.Split(strings.TrimSpace(exc), "\n") {
		if strings.Contains(l, "/dee") || strings.HasPrefix(l, "s3/home") {
			t.Errorf("--exclude left %q in", l)
		}
	}
	if !strings.Contains(exc, "s3/sparse\n") || !strings.Contains(exc, "s3/dir/f\n") {
		t.Errorf("--exclude left out more than asked:\n%s", exc)
	}
	// home/carol was home/alice when s1 wrote its files; home/carol/docs/new
	// is a clone of new. Their data was dropped: a clear failure, not
	// files of zeros.
	for _, c := range []struct{ include, want string }{
		{"/home/carol/docs/a.txt", "selected, but its data was dropped"},
		{"/home/carol/docs/new", `clone "home/carol/docs/new" from "new": its data was dropped`},
	} {
		f := harness.Sh(t, `bsrecv --tar --include "$INC" < "$SRC/chain" | tar -t`, append(env, "INC="+c.include)...)
		if f.Code == 0 || !strings.Contains(f.Stderr, c.want) || !strings.Contains(f.Stderr, "hint: restore without --include/--exclude") {
			t.Errorf("--include %s: exit %d, stderr %q", c.include, f.Code, f.Stderr)
		}
	}
}

// TestTarPipelineFails: under pipefail, a stream cut short fails the
// pipeline and leaves no archive that looks whole; so do bad arguments
// and a chain out of order.
func TestTarPipelineFails(t *testing.T) {
	harness.RequireCommand(t, "tar")
	src := tarChain(t)
	env := []string{"SRC=" + src}
	for _, c := range []struct{ name, script, want string }{
		{"truncated", `head -c $(( $(stat -c %s "$SRC/chain") - 100 )) "$SRC/chain" | bsrecv --tar | tar -t`, "send stream"},
		{"incremental first", `tail -c +$(( $(stat -c %s "$SRC/s1.full") + 1 )) "$SRC/chain" | bsrecv --tar | tar -t`, "a tar restore starts from a full stream"},
		{"two fulls", `cat "$SRC/s1.full" "$SRC/s1.full" | bsrecv --tar | tar -t`, "a full stream after"},
		{"empty", `bsrecv --tar < /dev/null | tar -t`, "empty input"},
		{"bad glob", `bsrecv --tar --include '/[' < "$SRC/chain" | tar -t`, "unterminated"},
		{"dest and tar", `bsrecv --tar /x < "$SRC/chain" | tar -t`, "no DEST"},
	} {
		r := harness.Sh(t, c.script, env...)
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want failure with %q", c.name, r.Code, r.Stderr, c.want)
		}
		if strings.Count(strings.TrimSpace(r.Stderr), "bsrecv: error:") != 1 {
			t.Errorf("%s: want one error line, stderr %q", c.name, r.Stderr)
		}
	}
	// An interrupt removes the temporary directory and exits 130.
	// The input stays open: bsrecv waits for more when the signal comes.
	r := harness.Sh(t, `tmp=$(mktemp -d) && mkfifo "$tmp.in"
		bsrecv --tar --tmpdir "$tmp" < "$tmp.in" > /dev/null &
		pid=$!
		exec 3> "$tmp.in"
		cat "$SRC/chain" >&3
		sleep 1; kill -INT $pid; rc=0; wait $pid || rc=$?
		exec 3>&-
		echo "rc=$rc left=$(ls "$tmp" | wc -l)"`, env...)
	if !strings.Contains(r.Stdout, "rc=130 left=0") {
		t.Errorf("interrupted: %s %s", r.Stdout, r.Stderr)
	}
	// The archive of a stream cut short is not even begun.
	r = harness.Sh(t, `head -c $(( $(stat -c %s "$SRC/chain") - 100 )) "$SRC/chain" | bsrecv --tar | wc -c`, env...)
	if strings.TrimSpace(r.Stdout) != "0" {
		t.Errorf("a stream cut short wrote %s bytes of archive", r.Stdout)
	}
}

// TestTarFromEncryptedStore: the chain stored age-encrypted in a file://
// store comes back through bss3get | bsrecv --tar | tar -x, equal to the
// source.
func TestTarFromEncryptedStore(t *testing.T) {
	harness.RequireCommand(t, "tar")
	harness.RequireCommand(t, "age-keygen")
	src := tarChain(t)
	store := t.TempDir()
	keys := t.TempDir()
	env := []string{"SRC=" + src, "STORE=" + store, "KEYS=" + keys}
	put := harness.MustSh(t, `age-keygen -o "$KEYS/key" 2>/dev/null && age-keygen -y "$KEYS/key" > "$KEYS/recipients"
		bss3put --zstd -R "$KEYS/recipients" "file://$STORE/" < "$SRC/chain"`, env...)
	recs := objRecords(t, put.Stdout)
	if len(recs) != 3 {
		t.Fatalf("bss3put printed %d records, want 3:\n%s", len(recs), put.Stdout)
	}
	var objs []string
	for _, r := range recs {
		objs = append(objs, "file://"+store+"/"+r.Key)
	}
	r := harness.MustSh(t, tarSame+`
		btrfs -q subvolume snapshot "$SRC/s3" "$SRC/s3w" && rm "$SRC/s3w/sock"
		out=$(mktemp -d)
		bss3get -i "$KEYS/key" `+strings.Join(objs, " ")+` | bsrecv --tar | tar -x --xattrs --xattrs-include='*' --acls --numeric-owner -p -C "$out"
		same "$out/s3" "$SRC/s3w" || echo DIFFERS
	`, env...)
	if strings.Contains(r.Stdout, "DIFFERS") {
		t.Fatalf("restored tree differs from the source:\n%s\n%s", r.Stdout, r.Stderr)
	}
}

// TestTarChainCutBetweenStreams: the last object of a chain is missing,
// so bss3get fails after writing the streams before it whole. bsrecv
// --tar must not take those for the chain: it fails and writes no byte
// of an archive (tar -x would otherwise restore the older snapshot).
func TestTarChainCutBetweenStreams(t *testing.T) {
	src := tarChain(t)
	store := t.TempDir()
	env := []string{"SRC=" + src, "STORE=" + store}
	put := harness.MustSh(t, `bss3put "file://$STORE/" < "$SRC/chain"`, env...)
	recs := objRecords(t, put.Stdout)
	if len(recs) != 3 {
		t.Fatalf("bss3put printed %d records, want 3:\n%s", len(recs), put.Stdout)
	}
	var objs []string
	for _, r := range recs {
		objs = append(objs, "file://"+store+"/"+r.Key)
	}
	// Gone before bss3get reads a byte of it: the streams before it are
	// written whole.
	if err := os.Remove(filepath.Join(store, recs[2].Key)); err != nil {
		t.Fatal(err)
	}
	r := harness.Sh(t, `set +e
		bss3get `+strings.Join(objs, " ")+` | bsrecv --tar > "$STORE/archive"
		echo "status ${PIPESTATUS[*]}"
		wc -c < "$STORE/archive"`, env...)
	if !strings.Contains(r.Stdout, "status 1 1\n0\n") {
		t.Fatalf("want bss3get and bsrecv --tar to fail with an empty archive:\n%s\n%s", r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "bsrecv: error: ") {
		t.Fatalf("no bsrecv error line:\n%s", r.Stderr)
	}
}
