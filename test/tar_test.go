package test

import (
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
		btrfs -q subvolume snapshot -r vol s2
		rm vol/hardlink && ln vol/new vol/dir/newlink && rm -r vol/dir/deeper && mkdir vol/dir/deeper
		cat vol/clone vol/new > vol/dir/cat && cp --reflink=always vol/new vol/home/carol/docs/new
		echo replaced > vol/fifo.tmp && rm vol/fifo && mv vol/fifo.tmp vol/fifo
		btrfs -q subvolume snapshot -r vol s3
		btrfs send -q s1 > s1.full
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
}
