#!/bin/sh
# bench plan: three figures for bsplan.
#
#  plan-10k      planning 10,000 snapshots against 10,000 (9,900 shared,
#                100 only at the destination, -d) from saved listings made
#                by a small generator. Targets: under 1 s, under 200 MiB.
#  plan-measure  sizing the sends of 3 snapshots (a full and 2 diffs) on a
#                loop btrfs: bsplan's metadata-only (NO_FILE_DATA) sends
#                against the original ButterSink's way, real sends counted
#                with `btrfs send | wc -c`. Target: ratio well below 1.
#  plan-year     a simulated year of hourly snapshots backed up daily to an
#                object store: schedule mode (--schedule "1y 3m 30d 24h"
#                --prune) against a plain incremental chain and against the
#                default cost-based plan (max chain 8): bytes stored at the
#                end and the longest restore chain. Runs the planner's Go
#                benchmark (go test), the one part that is not a built command.
#
# Commands come from $BS_BIN, else ./bin (make build). Root needed for the
# loop btrfs. BENCH_QUICK=1 makes everything small (1,000 snapshots,
# 32 MiB of data, 60 days).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/test/bench/lib.sh"
bench_init plan bsplan bsls

if [ "${BENCH_QUICK:-}" = 1 ]; then
	n=1000 datamib=32 days=60
else
	n=10000 datamib=256 days=365
fi

# mib KIB: KiB to whole MiB.
mib() { echo $((($1 + 1023) / 1024)); }

# --- plan-10k -----------------------------------------------------------
# gen SIDE HAVE EXTRA: bsls records of n hourly snapshots of one subvolume
# (src), or the destination's received copies of the first HAVE of them
# plus EXTRA it alone has (dst).
gen() {
	awk -v n="$n" -v side="$1" -v have="$2" -v extra="$3" 'BEGIN {
		for (i = 1; i <= n; i++) {
			u = sprintf("%08x-0000-4000-8000-%012x", i, i)
			if (side == "src")
				printf("{\"kind\":\"subvolume\",\"path\":\"home/h.%05d\",\"uuid\":\"%s\",\"parent_uuid\":\"ffffffff-0000-4000-8000-000000000001\",\"received_uuid\":null,\"ctransid\":%d,\"otransid\":%d,\"stransid\":0,\"rtransid\":0,\"readonly\":true,\"referenced\":null,\"exclusive\":null}\n", i, u, 100 + i * 10, 100 + i * 10)
			else if (i <= have)
				printf("{\"kind\":\"subvolume\",\"path\":\"home/h.%05d\",\"uuid\":\"%08x-1111-4000-8000-%012x\",\"parent_uuid\":null,\"received_uuid\":\"%s\",\"ctransid\":%d,\"otransid\":%d,\"stransid\":0,\"rtransid\":0,\"readonly\":true,\"referenced\":null,\"exclusive\":null}\n", i, i, i, u, 50 + i, 50 + i)
		}
		for (j = 1; j <= extra; j++)
			printf("{\"kind\":\"subvolume\",\"path\":\"old/o.%05d\",\"uuid\":\"%08x-2222-4000-8000-%012x\",\"parent_uuid\":null,\"received_uuid\":null,\"ctransid\":%d,\"otransid\":1,\"stransid\":0,\"rtransid\":0,\"readonly\":true,\"referenced\":null,\"exclusive\":null}\n", j, j, j, j)
	}'
}
gen src 0 0 >"$work/src.jsonl"
gen dst $((n - n / 100)) $((n / 100)) >"$work/dst.jsonl"
best=
for round in 1 2 3; do
	/usr/bin/time -f '%e %U %S %M' -o "$work/t" bsplan -q -e -d --src-list "$work/src.jsonl" --dst-list "$work/dst.jsonl" /src/ /dst/ >"$work/plan"
	read -r e u s m <"$work/t"
	if [ -z "$best" ] || [ "$(echo "$e < $best" | bc)" = 1 ]; then best=$e cpu=$(echo "$u + $s" | bc) rss=$m; fi
done
steps=$(wc -l <"$work/plan")
[ "$steps" -eq $((n / 100 * 2)) ] || { echo "bench plan-10k: $steps steps, want $((n / 100 * 2))" >&2; exit 1; }
ok=ok
[ "$(echo "$best < 1" | bc)" = 1 ] && [ "$(mib "$rss")" -lt 200 ] || ok=OVER
echo "bench plan-10k: bs=${best}s bs_cpu=${cpu}s bs_rss=$(mib "$rss")MiB snapshots=$n+$n steps=$steps limit=1s/200MiB $ok"

# --- plan-measure -------------------------------------------------------
bench_fs mnt $((datamib * 4 + 512))
mnt=$work/mnt
btrfs -q subvolume create "$mnt/vol"
mkdir "$mnt/snaps" "$mnt/dst"
i=0
while [ "$i" -lt "$datamib" ]; do
	head -c 1048576 /dev/urandom >"$mnt/vol/f$i"
	i=$((i + 1))
done
btrfs -q subvolume snapshot -r "$mnt/vol" "$mnt/snaps/s1"
head -c $((datamib * 1048576 / 8)) /dev/urandom >"$mnt/vol/g"
btrfs -q subvolume snapshot -r "$mnt/vol" "$mnt/snaps/s2"
rm "$mnt/vol/f0" && head -c $((datamib * 1048576 / 8)) /dev/urandom >"$mnt/vol/h"
btrfs -q subvolume snapshot -r "$mnt/vol" "$mnt/snaps/s3"
btrfs filesystem sync "$mnt"

/usr/bin/time -f '%e %M' -o "$work/t" bsplan -q "$mnt/snaps/" "$mnt/dst/" >"$work/plan"
read -r bs_t bs_m <"$work/t"
planned=$(jq -s 'map(.size) | add' "$work/plan")
cat >"$work/peer.sh" <<'PEER'
set -e
btrfs send -q "$1/s1" | wc -c
btrfs send -q -p "$1/s1" "$1/s2" | wc -c
btrfs send -q -p "$1/s2" "$1/s3" | wc -c
PEER
/usr/bin/time -f '%e %M' -o "$work/t" sh "$work/peer.sh" "$mnt/snaps" >"$work/peer"
read -r p_t p_m <"$work/t"
real=$(awk '{ s += $1 } END { print s }' "$work/peer")
ratio=$(echo "scale=2; $bs_t / $p_t" | bc)
err=$(echo "scale=2; 100 * ($planned - $real) / $real" | bc)
echo "bench plan-measure: bs=${bs_t}s peer=${p_t}s ratio=$ratio bs_rss=$(mib "$bs_m")MiB peer_rss=$(mib "$p_m")MiB data=${datamib}MiB planned=$planned sent=$real error=${err}%"

# --- plan-year ----------------------------------------------------------
cd "$root"
BENCH_DAYS=$days go test -run '^$' -bench '^BenchmarkScheduleYear$' -benchtime 1x ./lib/plan/ >"$work/year" 2>&1 || { cat "$work/year" >&2; exit 1; }
grep '^bench plan-year' "$work/year"
