#!/bin/sh
# bench receive: bsrecv against btrfs receive, each fed by its own sender,
# on a data set made by test/bench/mktree: 1 GiB of file data (4 large
# files, 4 MiB ones, one sparse) and 50,000 small files (0-8 KiB, nested
# directories, varied modes, owners, times, xattrs, 2% symbolic links, 2%
# hard links), on loop btrfs filesystems this script makes and removes
# (source and destinations apart). Two comparisons in the same run:
#   receive-full  bssend --proto 2 S1 | bsrecv DST/
#                 vs btrfs send --proto 2 S1 | btrfs receive DST/
#   receive-incr  the same with -p S1 S2, into a DST holding S1 as that
#                 same tool received it; S2 = S1 with 10% of the small
#                 files rewritten, 1% with new modes and owners, 2%
#                 renamed, 2% deleted, and a few MiB of large-file change
# A round is one tool's full receive then its incremental, on a new
# destination filesystem (the same start for every round, and no cleaner
# deleting an earlier round's subvolumes meanwhile). Rounds alternate bs
# peer peer bs bs peer (three each: a virtual machine's disk and CPU vary
# by a quarter from one minute to the next); caches are dropped before
# every timed pipe; the fastest of each side counts. A pipe's time is its slower side, its CPU time
# (user + system) the sum of both sides, its RSS the receiver's (bsrecv's
# includes any child it waits for). Every received subvolume is checked
# against its source with rsync (contents, modes, owners, times, xattrs,
# hard links).
# Then the senders alone, from a cold cache, into a pipe that cat drains
# (send-cold-full, send-cold-incr: bssend --proto 2 [-p S1] S vs btrfs
# send, alternating bs peer peer bs, the fastest counting): what bssend's
# prefetch gains on the side every cold backup waits on.
# Targets: ratio <= 0.8, cpu_ratio <= 0.9, bs_rss < 64 MiB.
# Commands come from $BS_BIN, else ./bin (make build); mktree is built
# with go. Root needed (loop devices, mount, send). BENCH_QUICK=1: 100 MiB
# of data and 5,000 files.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/test/bench/lib.sh"
bench_init receive bssend bsrecv btrfs go rsync /usr/bin/time

if [ "${BENCH_QUICK:-}" = 1 ]; then
	mib=100 files=5000 fsmib=1024
else
	mib=1024 files=50000 fsmib=4096
fi

bench_fs src "$fsmib"
src=$work/src

(cd "$root" && go build -o "$work/mktree" ./test/bench/mktree)
btrfs -q subvolume create "$src/vol"
"$work/mktree" -mib "$mib" -files "$files" create "$src/vol"
btrfs -q subvolume snapshot -r "$src/vol" "$src/s1"
"$work/mktree" change "$src/vol"
btrfs -q subvolume snapshot -r "$src/vol" "$src/s2"
btrfs filesystem sync "$src"

# timed OUT CMD...: runs CMD under /usr/bin/time, "seconds kib user sys" into OUT.
timed() {
	o=$1
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$o" "$@"
}

# pipe TOOL DIR [-p PARENT] SNAP: one timed send | receive into DIR,
# "secs kib cpu" on stdout.
pipe() {
	t=$1 d=$2
	shift 2
	bench_drop
	# Both receives end with their data durable (sync -f), as bsrecv's
	# own does before it marks a snapshot received: btrfs receive leaves
	# it to writeback, which would otherwise go unmeasured.
	if [ "$t" = bs ]; then
		timed "$work/t1" bssend -q --proto 2 "$@" | timed "$work/t2" sh -c 'bsrecv -q "$1/" >/dev/null && sync -f "$1"' - "$d"
	else
		timed "$work/t1" btrfs send -q --proto 2 "$@" | timed "$work/t2" sh -c 'btrfs receive -q "$1/" && sync -f "$1"' - "$d"
	fi
	awk 'NR == 1 { s = $1 } NR == 2 { if ($1 > s) s = $1; m = $2 } { c += $3 + $4 } END { print s, m, c }' "$work/t1" "$work/t2"
}

# same SNAP COPY: fails unless COPY holds what SNAP does, metadata
# included. Not the top directory's times: btrfs send sets them early in
# a stream, then makes and renames entries there (every new inode starts
# as an orphan name at the top), so no receiver keeps them.
same() {
	rsync -aHAXUn -c -i --delete "$1/" "$2/" >"$work/diffs"
	if grep -vqx '\.d\.\.t\.\.\.\.\.\. \./' "$work/diffs"; then
		echo "bench receive: $2 differs from $1:" >&2
		head -20 "$work/diffs" >&2
		exit 1
	fi
}

# round TOOL N: sets full and incr to the round's "secs kib cpu".
round() {
	bench_fs "dst$2" "$fsmib"
	d=$work/dst$2
	full=$(pipe "$1" "$d" "$src/s1")
	same "$src/s1" "$d/s1"
	incr=$(pipe "$1" "$d" -p "$src/s1" "$src/s2")
	same "$src/s2" "$d/s2"
}

# best A B: bench_best, where A may be empty (the first round).
best() {
	if [ -z "$1" ]; then echo "$2"; else bench_best "$1" "$2"; fi
}

bs_full= bs_incr= peer_full= peer_incr= n=0
for t in bs peer peer bs bs peer; do
	n=$((n + 1))
	round "$t" "$n"
	if [ "$t" = bs ]; then
		bs_full=$(best "$bs_full" "$full") bs_incr=$(best "$bs_incr" "$incr")
	else
		peer_full=$(best "$peer_full" "$full") peer_incr=$(best "$peer_incr" "$incr")
	fi
done

# verdict BS PEER: whether the bs side meets the targets.
verdict() {
	echo "$1 $2" | awk '{ print ($1 <= 0.8 * $4 && $3 <= 0.9 * $6 && $2 < 64 * 1024) ? "ok" : "OVER" }'
}

note="$files files, $mib MiB; targets ratio<=0.8 cpu_ratio<=0.9 bs_rss<64MiB"
bench_report receive-full "$bs_full" "$peer_full" "$note: $(verdict "$bs_full" "$peer_full")"
bench_report receive-incr "$bs_incr" "$peer_incr" "$note: $(verdict "$bs_incr" "$peer_incr")"

# send_cold TOOL [-p PARENT] SNAP: one timed cold send into a pipe,
# "secs kib cpu" on stdout.
send_cold() {
	t=$1
	shift
	bench_drop
	if [ "$t" = bs ]; then
		timed "$work/t1" bssend -q --proto 2 "$@" | cat >/dev/null
	else
		timed "$work/t1" btrfs send -q --proto 2 "$@" | cat >/dev/null
	fi
	awk '{ print $1, $2, $3 + $4 }' "$work/t1"
}

bs_full= bs_incr= peer_full= peer_incr=
for t in bs peer peer bs; do
	full=$(send_cold "$t" "$src/s1")
	incr=$(send_cold "$t" -p "$src/s1" "$src/s2")
	if [ "$t" = bs ]; then
		bs_full=$(best "$bs_full" "$full") bs_incr=$(best "$bs_incr" "$incr")
	else
		peer_full=$(best "$peer_full" "$full") peer_incr=$(best "$peer_incr" "$incr")
	fi
done
bench_report send-cold-full "$bs_full" "$peer_full" "$files files, $mib MiB"
bench_report send-cold-incr "$bs_incr" "$peer_incr" "$files files, $mib MiB"
