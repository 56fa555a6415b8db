package test

import (
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// bsrecv applies streams itself: with no btrfs command on its PATH, full
// and incremental streams holding clones (within the subvolume, from the
// parent, from another clone source) and compressed extents passed
// through as they are, are received equal to their sources, marked
// received and read-only.
func TestNativeRecvWithoutBtrfsProgs(t *testing.T) {
	src := harness.Btrfs(t, 400)
	dst := harness.Btrfs(t, 400)
	harness.MustSh(t, `
		mount -o remount,compress=zstd "$SRC"
		cd "$SRC"
		btrfs -q subvolume create other
		head -c 2000000 /dev/urandom > other/blob
		btrfs -q subvolume snapshot -r other other-ro
		btrfs -q subvolume create vol
		cd vol
		head -c 3000000 /dev/urandom > data
		{ yes 'compressible line' || :; } | head -c 5000000 > text
		cp --reflink=always data data-clone
		mkdir -p d/e && ln -s ../data d/link && mkfifo fifo && ln data hard
		setfattr -n user.x -v 1 data && chown 12:34 d/e && chmod 4750 d/e
		truncate -s 20M sparse && printf end >> sparse
		cd .. && btrfs -q subvolume snapshot -r vol s1
		cp --reflink=always s1/data vol/from-parent
		cp --reflink=always other-ro/blob vol/from-other
		echo more >> vol/text && rm vol/data-clone && mv vol/d vol/moved
		btrfs -q subvolume snapshot -r vol s2
		sync
		bssend --compressed-data other-ro > other.stream
		bssend --compressed-data s1 > s1.stream
		bssend --compressed-data -p s1 -c other-ro s2 > incr.stream
		cat other.stream s1.stream > full.stream
		# The streams hold what the test is about.
		btrfs receive --dump < s1.stream > full.dump
		btrfs receive --dump < incr.stream > incr.dump
		has() { grep -q "$1" "$2" || { echo "no $1 in $2:"; grep -v '^write\|^encoded_write\|^utimes\|^chown\|^chmod' "$2"; exit 1; }; }
		has '^encoded_write' full.dump
		# (--dump names every clone source path as if in the stream's
		# subvolume; from-other's can only be other-ro's blob.)
		has '^clone .*/data-clone .*from=./s1/data ' full.dump
		has '^clone .*/from-parent .*from=./s2/data ' incr.dump
		has '^clone .*/from-other .*from=./s2/blob ' incr.dump
	`, "SRC="+src)
	bin := harness.Bin(t)
	r := harness.MustSh(t, `
		! PATH="$BIN" command -v btrfs
		PATH="$BIN" bsrecv "$DST/" < "$SRC/full.stream"
		PATH="$BIN" bsrecv "$DST/" < "$SRC/incr.stream"
	`, "SRC="+src, "DST="+dst, "BIN="+bin)
	if n := strings.Count(r.Stdout, "\n"); n != 3 {
		t.Errorf("%d records:\n%s", n, r.Stdout)
	}
	harness.MustSh(t, `
		for s in other-ro s1 s2; do
			a=$(cd "$SRC" && checksumdir --full --stdout "$s") && b=$(cd "$DST" && checksumdir --full --stdout "$s")
			[ "$a" = "$b" ] || { echo "$s differs"; exit 1; }
			[ "$(btrfs property get -ts "$DST/$s" ro)" = ro=true ]
			btrfs subvolume show "$DST/$s" | grep -q "Received UUID:.*$(btrfs subvolume show "$SRC/$s" | sed -n 's/^[[:space:]]*UUID:[[:space:]]*//p')"
		done
	`, "SRC="+src, "DST="+dst)
}
