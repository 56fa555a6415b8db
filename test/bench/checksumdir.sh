#!/bin/sh
# bench checksumdir: checksumdir against its peers, in one run, on a loop
# btrfs it makes and removes:
#   checksumdir-small  50,000 small files, vs the original script
#                      (test/fixtures/checksumdir.sh); target >= 20x faster
#   checksumdir-large  2 GiB in 8 large files, vs one sha256sum over the
#                      same files; target >= 1.8x its throughput
# Page caches are warmed first, so both sides hash from memory.
# Commands come from $BS_BIN, else ./bin (make build). Root needed (loop
# device, mount). BENCH_QUICK=1 runs small sizes.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/test/bench/lib.sh"
bench_init checksumdir checksumdir sha256sum
fixture=$root/test/fixtures/checksumdir.sh

if [ "${BENCH_QUICK:-}" = 1 ]; then
	ndirs=20 perdir=100 nlarge=4 largemib=64 imgmib=1024
else
	ndirs=100 perdir=500 nlarge=8 largemib=256 imgmib=4096
fi

bench_fs mnt "$imgmib"
mkdir "$work/bs" "$work/peer"
data=$work/mnt

# timed NAME CMD...: runs CMD, sets NAME_s (seconds) and NAME_kib (peak RSS).
timed() {
	name=$1
	shift
	/usr/bin/time -f '%e %M' -o "$work/time" "$@"
	read -r s k <"$work/time"
	eval "${name}_s=\$s ${name}_kib=\$k"
}

# report NAME BS_S PEER_S BS_KIB PEER_KIB [EXTRA]
report() {
	awk -v n="$1" -v b="$2" -v p="$3" -v bk="$4" -v pk="$5" -v x="${6:-}" 'BEGIN {
		if (b < 0.01) b = 0.01
		printf "bench %s: bs=%.2fs peer=%.2fs ratio=%.3f bs_rss=%dMiB peer_rss=%dMiB speedup=%.1fx%s\n",
			n, b, p, b / p, bk / 1024, pk / 1024, p / b, x
	}'
}

# Small files.
i=0
while [ "$i" -lt "$ndirs" ]; do
	d=$data/small/dir$i
	mkdir -p "$d"
	j=0
	while [ "$j" -lt "$perdir" ]; do
		printf 'small file %d/%d\n' "$i" "$j" >"$d/f$j"
		j=$((j + 1))
	done
	i=$((i + 1))
done
sync
find "$data/small" -type f -exec cat {} + >/dev/null
cd "$work/peer" && timed peer "$fixture" "$data/small"
cd "$work/bs" && timed bs checksumdir "$data/small"
for f in small.ls small.files small.sha256sum; do
	cmp -s "$work/peer/$f" "$work/bs/$f" || { echo "bench checksumdir-small: $f differs from the script's" >&2; exit 1; }
done
report checksumdir-small "$bs_s" "$peer_s" "$bs_kib" "$peer_kib" " files=$((ndirs * perdir)) identical=yes target=20x"

# Large files.
mkdir "$data/large"
i=1
while [ "$i" -le "$nlarge" ]; do
	head -c "${largemib}M" /dev/urandom >"$data/large/f$i"
	i=$((i + 1))
done
sync
cat "$data"/large/f* >/dev/null
bytes=$((nlarge * largemib * 1024 * 1024))
cd "$data/large" && timed peer sh -c 'sha256sum ./f* >"$1"' - "$work/peer/large.sums"
cd "$work/bs" && timed bs checksumdir "$data/large"
sort --key 2 "$work/peer/large.sums" | cmp -s - "$work/bs/large.files" || { echo "bench checksumdir-large: hashes differ from sha256sum's" >&2; exit 1; }
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { if (s < 0.01) s = 0.01; printf "%.0f", b / s / 1048576 }'; }
report checksumdir-large "$bs_s" "$peer_s" "$bs_kib" "$peer_kib" \
	" bytes=$bytes bs_MiBps=$(mbps "$bs_s") peer_MiBps=$(mbps "$peer_s") identical=yes target=1.8x"
