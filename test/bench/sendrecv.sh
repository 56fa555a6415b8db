#!/bin/sh
# bench sendrecv: one snapshot holding 1 GiB of file data (8 files of
# 128 MiB) and 50,000 small files, on loop btrfs filesystems this script
# makes and removes. Two comparisons in the same run, same snapshot:
#   send: bssend --proto 2 SNAP > /dev/null   vs  btrfs send --proto 2 SNAP > /dev/null
#   pipe: bssend --proto 2 SNAP | bsrecv DST/ vs  btrfs send --proto 2 SNAP | btrfs receive DST/
# Caches are dropped before every run (both sides cold); each side runs
# three times, in alternating order (bs peer peer bs bs peer), and the
# fastest run counts. A pipe's time is its slower side, its CPU time (user +
# system) the sum of both sides, its RSS the larger of its two processes.
# Both sides run quiet (-q): bssend on a terminal would draw progress.
# Targets: ratio <= 1.05, bs_rss < 64 MiB for every bs process.
# Commands come from $BS_BIN, else ./bin (make build). Root needed (loop
# devices, mount, send). BENCH_QUICK=1: 64 MiB of data and 2,000 files.
set -eu

. "$(dirname "$0")/lib.sh"
bench_init sendrecv bssend bsrecv btrfs /usr/bin/time

if [ "${BENCH_QUICK:-}" = 1 ]; then
	nbig=4 bigmib=16 ndirs=4 perdir=500 fsmib=1024
else
	nbig=8 bigmib=128 ndirs=100 perdir=500 fsmib=3072
fi

bench_fs src "$fsmib"
bench_fs dst "$fsmib"
src=$work/src dst=$work/dst

btrfs -q subvolume create "$src/vol"
i=0
while [ "$i" -lt "$nbig" ]; do
	head -c "${bigmib}M" /dev/urandom >"$src/vol/big$i"
	i=$((i + 1))
done
d=0
while [ "$d" -lt "$ndirs" ]; do
	mkdir "$src/vol/d$d"
	f=0
	while [ "$f" -lt "$perdir" ]; do
		echo "small file $d/$f" >"$src/vol/d$d/f$f"
		f=$((f + 1))
	done
	d=$((d + 1))
done
btrfs -q subvolume snapshot -r "$src/vol" "$src/snap"
btrfs filesystem sync "$src"


# timed OUT CMD...: runs CMD under /usr/bin/time, "seconds kib cpu" into OUT.
timed() {
	o=$1
	shift
	/usr/bin/time -f '%e %M %U %S' -o "$o" "$@"
}

clean_dst() {
	if [ -e "$dst/snap" ]; then btrfs -q subvolume delete "$dst/snap"; fi
	btrfs -q subvolume sync "$dst"
}

run_send() { # bs|peer -> "secs kib cpu"
	bench_drop
	if [ "$1" = bs ]; then
		timed "$work/t" bssend -q --proto 2 "$src/snap" >/dev/null
	else
		timed "$work/t" btrfs send -q --proto 2 "$src/snap" >/dev/null
	fi
	awk '{ print $1, $2, $3 + $4 }' "$work/t"
}

run_pipe() { # bs|peer -> "secs kib cpu"
	clean_dst
	bench_drop
	if [ "$1" = bs ]; then
		timed "$work/t1" bssend -q --proto 2 "$src/snap" | timed "$work/t2" bsrecv -q "$dst/" >/dev/null
	else
		timed "$work/t1" btrfs send -q --proto 2 "$src/snap" | timed "$work/t2" btrfs receive -q "$dst/"
	fi
	[ -e "$dst/snap" ] || { echo "bench sendrecv: nothing received" >&2; exit 1; }
	awk '{ if ($1 > s) s = $1; if ($2 > m) m = $2; c += $3 + $4 } END { print s, m, c }' "$work/t1" "$work/t2"
}

for what in send pipe; do
	b=$(run_$what bs)
	p=$(run_$what peer)
	p=$(bench_best "$p" "$(run_$what peer)")
	b=$(bench_best "$b" "$(run_$what bs)")
	b=$(bench_best "$b" "$(run_$what bs)")
	p=$(bench_best "$p" "$(run_$what peer)")
	bench_report "sendrecv-$what" "$b" "$p"
done

# The received copy must be the snapshot (bs side ran last).
clean_dst
bssend "$src/snap" | bsrecv "$dst/" >/dev/null
if ! diff -r "$src/snap" "$dst/snap" >/dev/null; then
	echo "bench sendrecv: received tree differs from the source" >&2
	exit 1
fi
