# Sourced by the benchmark scripts: their common setup and teardown.
#
#   bench_init NAME CMD...   commands from $BS_BIN (else ./bin) first on
#                            PATH, LC_ALL=C; fails unless root and every
#                            CMD is found; makes $work and removes it,
#                            and everything below, on exit
#   bench_fs DIR MIB         a btrfs of MIB MiB on a loop file, mounted on
#                            $work/DIR; unmounted and detached on exit
#   bench_on_exit CMD        runs CMD (a shell command) first on exit
#   bench_drop               syncs and drops the page cache
#   bench_best A B           of two "secs kib [cpu]" lines: the shorter
#                            time, the larger RSS, the smaller CPU time
#   bench_report NAME BS PEER [NOTE]
#                            the result line of a comparison, from the
#                            "secs kib [cpu]" lines of each side; with
#                            CPU times and their ratio when given
#
# POSIX sh; the caller has `set -eu`.

bench_init() {
	bench_name=$1
	shift
	bin=${BS_BIN:-./bin}
	bin=$(cd "$bin" && pwd)
	PATH=$bin:$PATH
	export PATH LC_ALL=C
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "bench $bench_name: $c not found (make build; sh test/deps.sh)" >&2; exit 1; }
	done
	[ "$(id -u)" = 0 ] || { echo "bench $bench_name: needs root (loop devices, mount)" >&2; exit 1; }
	work=$(mktemp -d "${TMPDIR:-/tmp}/bs-bench-$bench_name.XXXXXX")
	bench_mounts= bench_devs= bench_exit=
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	set +e
	cd /
	eval "$bench_exit"
	for m in $bench_mounts; do
		if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
	done
	for d in $bench_devs; do losetup -d "$d"; done
	rm -rf "$work"
}

bench_on_exit() {
	bench_exit="$1; $bench_exit"
}

bench_fs() {
	truncate -s "${2}M" "$work/$1.img"
	mkfs.btrfs -q -f "$work/$1.img" >/dev/null 2>&1
	bench_d=$(losetup --find --show "$work/$1.img")
	bench_devs="$bench_d $bench_devs"
	mkdir -p "$work/$1"
	mount -t btrfs "$bench_d" "$work/$1"
	bench_mounts="$work/$1 $bench_mounts"
}

bench_drop() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

bench_best() {
	echo "$1 $2" | awk 'NF == 6 { print ($1 < $4) ? $1 : $4, ($2 > $5) ? $2 : $5, ($3 < $6) ? $3 : $6; next }
		{ print ($1 < $3) ? $1 : $3, ($2 > $4) ? $2 : $4 }'
}

bench_report() {
	echo "$2 | $3" | awk -v n="$1" -v note="${4:-}" -F ' [|] ' '{
		split($1, b, " "); split($2, p, " ")
		printf "bench %s: bs=%.2fs peer=%.2fs ratio=%.2f bs_rss=%dMiB peer_rss=%dMiB", n, b[1], p[1], (p[1] > 0) ? b[1] / p[1] : 0, (b[2] + 1023) / 1024, (p[2] + 1023) / 1024
		if (b[3] != "" && p[3] != "")
			printf " bs_cpu=%.2fs peer_cpu=%.2fs cpu_ratio=%.2f", b[3], p[3], (p[3] > 0) ? b[3] / p[3] : 0
		if (note != "")
			printf " (%s)", note
		printf "\n"
	}'
}
