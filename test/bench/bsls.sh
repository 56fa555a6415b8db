#!/bin/sh
# bench bsls: listing 2,000 read-only snapshots (in 20 directories) on a
# loop btrfs it makes and removes, bsls DIR/ against
# `btrfs subvolume list -u -q -R DIR`, both to /dev/null. Each side runs
# in rounds of $batch back-to-back invocations (timer resolution is 10 ms),
# the two sides' rounds alternating; the median round gives the time per
# listing. Target: ratio <= 1.0.
# Commands come from $BS_BIN, else ./bin (make build). Root needed (loop
# device, mount, privileged listing). BENCH_QUICK=1 makes 200 snapshots.
set -eu

. "$(dirname "$0")/lib.sh"
bench_init bsls bsls btrfs /usr/bin/time

if [ "${BENCH_QUICK:-}" = 1 ]; then
	nsnap=200 rounds=5 batch=20
else
	nsnap=2000 rounds=7 batch=30
fi
ndirs=20

bench_fs mnt 1024
mnt=$work/mnt

btrfs -q subvolume create "$mnt/vol"
echo data >"$mnt/vol/file"
i=0
while [ "$i" -lt "$nsnap" ]; do
	d=$mnt/snaps/d$((i % ndirs))
	[ -d "$d" ] || mkdir -p "$d"
	btrfs -q subvolume snapshot -r "$mnt/vol" "$d/s$i"
	i=$((i + 1))
done
btrfs filesystem sync "$mnt"

# Both must see every snapshot, or the timing compares different work.
n=$(bsls --json "$mnt/" | wc -l)
p=$(btrfs subvolume list -u -q -R "$mnt/" | grep -c ' path snaps/')
[ "$n" -eq "$nsnap" ] && [ "$p" -eq "$nsnap" ] || {
	echo "bench bsls: bsls lists $n, btrfs subvolume list $p snapshots, want $nsnap" >&2
	exit 1
}

# round NAME CMD...: one round of $batch CMDs, appending a
# "seconds-per-run cpu-seconds-per-run peak-kib" line to $work/NAME.
round() {
	name=$1
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$work/time" sh -c '
		n=$1; shift; i=0
		while [ "$i" -lt "$n" ]; do "$@" >/dev/null; i=$((i + 1)); done' sh "$batch" "$@"
	read -r s k u y <"$work/time"
	echo "$(awk -v s="$s" -v b="$batch" -v u="$u" -v y="$y" 'BEGIN { printf "%.4f %.4f", s / b, (u + y) / b }') $k" >>"$work/$name"
}
# median FILE: the median wall time, the median CPU time (user + system)
# and the largest peak RSS (KiB).
median() {
	sort -n -k1,1 "$1" | awk '{ t[NR] = $1; if ($3 > m) m = $3 } END { printf "%s %d ", t[int((NR + 1) / 2)], m }'
	sort -n -k2,2 "$1" | awk '{ c[NR] = $2 } END { printf "%s\n", c[int((NR + 1) / 2)] }'
}

# Warm the caches once for both.
bsls --json "$mnt/" >/dev/null
btrfs subvolume list -u -q -R "$mnt/" >/dev/null
# Rounds alternate which side goes first, so that neither always runs
# on the machine the other just warmed up or slowed down.
: >"$work/bs"
: >"$work/peer"
r=0
while [ "$r" -lt "$rounds" ]; do
	if [ $((r % 2)) = 0 ]; then
		round bs bsls --json "$mnt/"
		round peer btrfs subvolume list -u -q -R "$mnt/"
	else
		round peer btrfs subvolume list -u -q -R "$mnt/"
		round bs bsls --json "$mnt/"
	fi
	r=$((r + 1))
done
read -r bs_s bs_kib bs_cpu <<EOF2
$(median "$work/bs")
EOF2
read -r peer_s peer_kib peer_cpu <<EOF2
$(median "$work/peer")
EOF2
# The CPU times (user + system) are printed too: on a busy machine wall
# time mostly measures the wait for a CPU.
awk -v n="bsls-$nsnap" -v b="$bs_s" -v p="$peer_s" -v bk="$bs_kib" -v pk="$peer_kib" -v bc="$bs_cpu" -v pc="$peer_cpu" 'BEGIN {
	if (p < 0.0001) p = 0.0001
	if (pc < 0.0001) pc = 0.0001
	printf "bench %s: bs=%.4fs peer=%.4fs ratio=%.3f bs_rss=%dMiB peer_rss=%dMiB bs_cpu=%.4fs peer_cpu=%.4fs cpu_ratio=%.3f\n",
		n, b, p, b / p, bk / 1024, pk / 1024, bc, pc, bc / pc
}'
