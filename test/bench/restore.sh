#!/bin/sh
# bench restore: restoring a snapshot without btrfs. Two figures:
#   restore-full   bsrecv dir:///EXT4/ < S1.stream (a plain directory on
#                  ext4) vs btrfs receive -f S1.stream BTRFS/, the same
#                  stream file (bssend --proto 2 of the data set made by
#                  test/bench/mktree, as in receive.sh) for both; each
#                  timed with a final sync of its destination's
#                  filesystem (sync -f), so that data written back later
#                  by either is counted; caches dropped before each
#   restore-chain  a chain of 5 (S1 and 4 incrementals, each a mktree
#                  change: 10% of the small files rewritten, renames,
#                  deletes, a few MiB of large-file change) received into
#                  one dir:// mirror on ext4, which has no reflinks: the
#                  space it takes (du) against the full snapshot's (du of
#                  the mirror's S1) plus the changed data (the allocated
#                  size of every file whose data or metadata differs from
#                  the snapshot before: the mirror shares only unchanged
#                  files, by hard links)
# Rounds alternate bs peer peer bs, each on a new destination filesystem;
# the fastest of each side counts. Every restored tree is checked against
# its source with checksumdir --portable (the mirror's link counts aside).
# Targets: ratio <= 1.0; chain space <= 1.2 x (full + changed).
# Root needed. BENCH_QUICK=1: 100 MiB of data and 5,000 files.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/test/bench/lib.sh"
bench_init restore bssend bsrecv checksumdir btrfs go mkfs.ext4 /usr/bin/time

if [ "${BENCH_QUICK:-}" = 1 ]; then
	mib=100 files=5000 fsmib=1024
else
	mib=1024 files=50000 fsmib=4096
fi

bench_fs src "$((fsmib * 2))"
src=$work/src
(cd "$root" && go build -o "$work/mktree" ./test/bench/mktree)
btrfs -q subvolume create "$src/vol"
"$work/mktree" -mib "$mib" -files "$files" create "$src/vol"
btrfs -q subvolume snapshot -r "$src/vol" "$src/s1"
for k in 2 3 4 5; do
	"$work/mktree" -seed "$k" change "$src/vol"
	btrfs -q subvolume snapshot -r "$src/vol" "$src/s$k"
done
mkdir "$src/streams"
bssend -q --proto 2 "$src/s1" >"$src/streams/s1"
for k in 2 3 4 5; do
	bssend -q --proto 2 -p "$src/s$((k - 1))" "$src/s$k" >"$src/streams/s$k"
done
btrfs filesystem sync "$src"

# ext4 NAME MIB: an ext4 of MIB MiB on a loop file, mounted on $work/NAME.
ext4() {
	truncate -s "${2}M" "$work/$1.img"
	mkfs.ext4 -q -F "$work/$1.img"
	ext4_dev=$(losetup --find --show "$work/$1.img")
	bench_devs="$ext4_dev $bench_devs"
	mkdir -p "$work/$1"
	mount -t ext4 "$ext4_dev" "$work/$1"
	bench_mounts="$work/$1 $bench_mounts"
}

# fs_free NAME: unmounts $work/NAME and removes its loop file, to keep the
# disk space of one destination at a time.
fs_free() {
	fs_dev=$(losetup -j "$work/$1.img" | cut -d: -f1)
	umount "$work/$1"
	losetup -d "$fs_dev"
	rm -f "$work/$1.img"
	# Not again on exit: the device may be someone else's by then.
	bench_devs=$(echo "$bench_devs" | tr ' ' '\n' | grep -vx "$fs_dev" | tr '\n' ' ')
	bench_mounts=$(echo "$bench_mounts" | tr ' ' '\n' | grep -vx "$work/$1" | tr '\n' ' ')
}

# same SNAP COPY: fails unless checksumdir --portable finds COPY equal to
# SNAP (data, modes, owners, times, link counts).
same() {
	a=$(checksumdir -q --stdout "$1") b=$(checksumdir -q --portable --stdout "$2")
	if [ "$a" != "$b" ]; then
		echo "bench restore: $2 differs from $1" >&2
		exit 1
	fi
}

# same_shared SNAP COPY: same, but for link counts, which in a mirror
# count the hard links to the other snapshots' unchanged files too.
same_shared() {
	mkdir -p "$work/a" "$work/b"
	(cd "$work/a" && checksumdir -q "$1")
	(cd "$work/b" && checksumdir -q --portable "$2")
	n=$(basename "$1")
	for d in "$work/a" "$work/b"; do awk '{ $2 = "-"; print }' "$d/$n.ls" >"$d/ls"; done
	if ! cmp -s "$work/a/ls" "$work/b/ls" || ! cmp -s "$work/a/$n.files" "$work/b/$n.files"; then
		echo "bench restore: $2 differs from $1" >&2
		exit 1
	fi
	rm -rf "$work/a" "$work/b"
}

# round TOOL N: sets full to the round's "secs kib cpu".
round() {
	d=$work/dst$2
	if [ "$1" = bs ]; then
		ext4 "dst$2" "$fsmib"
		bench_drop
		/usr/bin/time -f '%e %M %U %S' -o "$work/t" sh -c 'bsrecv -q "dir://$1/" <"$2" >/dev/null && sync -f "$1"' - "$d" "$src/streams/s1"
	else
		bench_fs "dst$2" "$fsmib"
		bench_drop
		/usr/bin/time -f '%e %M %U %S' -o "$work/t" sh -c 'btrfs receive -q -f "$2" "$1/" && sync -f "$1"' - "$d" "$src/streams/s1"
	fi
	full=$(awk '{ print $1, $2, $3 + $4 }' "$work/t")
	same "$src/s1" "$d/s1"
	fs_free "dst$2"
}

bs_full= peer_full= n=0
for t in bs peer peer bs; do
	n=$((n + 1))
	round "$t" "$n"
	if [ "$t" = bs ]; then
		bs_full=${bs_full:+$(bench_best "$bs_full" "$full")}
		bs_full=${bs_full:-$full}
	else
		peer_full=${peer_full:+$(bench_best "$peer_full" "$full")}
		peer_full=${peer_full:-$full}
	fi
done
note="$files files, $mib MiB, ext4 vs btrfs, final sync in both; target ratio<=1.0"
bench_report restore-full "$bs_full" "$peer_full" "$note: $(echo "$bs_full $peer_full" | awk '{ print ($1 <= $4) ? "ok" : "OVER" }')"

# The chain of 5 into one mirror on ext4.
ext4 chain "$((fsmib * 2))"
cat "$src/streams/s1" "$src/streams/s2" "$src/streams/s3" "$src/streams/s4" "$src/streams/s5" | bsrecv -q "dir://$work/chain/" >/dev/null
sync -f "$work/chain"
for k in 1 2 3 4 5; do same_shared "$src/s$k" "$work/chain/s$k"; done
used=$(du -sk "$work/chain" | cut -f1)
first=$(du -sk "$work/chain/s1" | cut -f1)
# Regular files by path: inode, size, mtime, mode, owner, allocated KiB.
list() { (cd "$1" && find . -type f -printf '%p\t%i %s %T@ %m %U %G\t%b\n') | sort; }
list "$src/s1" >"$work/l1"
changed=0
for k in 2 3 4 5; do
	list "$src/s$k" >"$work/l$k"
	c=$(awk -F '\t' 'NR == FNR { old[$1] = $2; next } old[$1] != $2 { kib += $3 / 2 } END { printf "%d", kib }' "$work/l$((k - 1))" "$work/l$k")
	changed=$((changed + c))
done
echo "$used $first $changed" | awk -v f="$files" -v m="$mib" '{
	r = $1 / ($2 + $3)
	printf "bench restore-chain: used=%dMiB full=%dMiB changed=%dMiB ratio=%.2f (chain of 5 on ext4, %d files, %d MiB; target ratio<=1.2: %s)\n",
		$1 / 1024, $2 / 1024, $3 / 1024, r, f, m, (r <= 1.2) ? "ok" : "OVER" }'
