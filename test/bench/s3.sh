#!/bin/bash
# bench s3: bss3put against rclone rcat and aws s3 cp, bss3get against
# rclone cat, on the same send stream and the same MinIO server, the
# memory bounds of bss3put(1) and bss3get(1),
# and the zstd and age stages against the zstd and age CLIs. Prints one
# line per comparison:
#   bench NAME: bs=1.23s peer=1.30s ratio=0.95 bs_rss=12MiB peer_rss=30MiB bs_cpu=.. peer_cpu=.. cpu_ratio=.. (peer: ...)
# Uploads and downloads run once; the stages three times each, alternating,
# and the best time and highest RSS of each side count.
#
# Needs root (loop btrfs), the MinIO server (MINIO_BIN, /root/go/bin/minio
# or $(go env GOPATH)/bin/minio), rclone, aws, zstd, age, /usr/bin/time.
# Commands come from $BS_BIN, else ./bin (make build). BENCH_QUICK=1 uses a
# small stream; BENCH_MIB sets its size (default 2048 MiB).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init s3 bss3put bss3get bsls rclone aws zstd age age-keygen mkfs.btrfs /usr/bin/time
MIB=${BENCH_MIB:-2048}
[ "${BENCH_QUICK:-}" = 1 ] && MIB=${BENCH_MIB:-128}
MINIO=${MINIO_BIN:-}
for c in /root/go/bin/minio "$(go env GOPATH 2>/dev/null)/bin/minio" "$(command -v minio || true)"; do
	[ -z "$MINIO" ] && [ -x "$c" ] && MINIO=$c
done
[ -n "$MINIO" ] || { echo "bench s3: MinIO server not found (set MINIO_BIN)" >&2; exit 1; }

# A snapshot of half random, half compressible data, sent once to a file.
bench_fs mnt $((MIB * 2 + 512))
MNT=$work/mnt
btrfs -q subvolume create "$MNT/vol"
half=$((MIB / 2))
for i in $(seq 1 $(((half + 63) / 64))); do
	head -c 64M /dev/urandom > "$MNT/vol/random$i"
	head -c 47M /dev/urandom | base64 -w 100 > "$MNT/vol/text$i"
done
btrfs -q subvolume snapshot -r "$MNT/vol" "$MNT/snap"
btrfs send -q "$MNT/snap" > "$work/stream"
SIZE=$(stat -c %s "$work/stream")

# MinIO on a free port, random root credentials.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench$RANDOM$RANDOM AWS_SECRET_ACCESS_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_CA_BUNDLE AWS_PROFILE
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
	"$MINIO" server --quiet --address 127.0.0.1:$PORT --console-address 127.0.0.1:0 "$work/minio" > "$work/minio.log" 2>&1 &
bench_on_exit "kill $! 2>/dev/null && wait $! 2>/dev/null"
for i in $(seq 1 150); do
	aws s3 mb s3://bench >/dev/null 2>&1 && break
	sleep 0.2
done
export RCLONE_CONFIG_M_TYPE=s3 RCLONE_CONFIG_M_PROVIDER=Minio RCLONE_CONFIG_M_ENDPOINT=$AWS_ENDPOINT_URL
export RCLONE_CONFIG_M_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_M_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY

# measure CMD: runs the shell command CMD under /usr/bin/time; sets M to
# "secs kib cpu" (cpu: user + system seconds, of the whole pipeline) and
# R to the peak RSS in MiB.
measure() {
	sync
	/usr/bin/time -f '%e %M %U %S' -o "$work/time" bash -c "$1" > /dev/null
	M=$(awk '{ printf "%s %s %.2f", $1, $2, $3 + $4 }' "$work/time")
	R=$(($(echo "$M" | cut -d' ' -f2) / 1024))
}

echo "bench s3: stream $((SIZE >> 20)) MiB, MinIO $MINIO" >&2

# Upload: bss3put vs rclone rcat vs aws s3 cp -; the faster peer counts.
measure "bss3put s3://bench/bs/ < '$work/stream'"; B=$M
# rclone 1.60 cannot use AWS_CA_BUNDLE; it is unset above.
measure "rclone rcat m:bench/rclone/stream < '$work/stream'"; RC=$M
measure "aws s3 cp - s3://bench/aws/stream < '$work/stream'"; AW=$M
if [ "$(bench_best "$RC" "$AW" | cut -d' ' -f1)" = "${RC%% *}" ]; then P=$RC PN="rclone rcat"; else P=$AW PN="aws s3 cp"; fi
bench_report upload "$B" "$P" "peer: $PN, the faster; rclone ${RC%% *}s, aws ${AW%% *}s"

# Memory bound (bss3put(1)): n x part size + 64 MiB, with and without zstd.
bound() { # name n part_MiB flags...
	name=$1 n=$2 part=$3
	shift 3
	measure "bss3put $* s3://bench/bound-$name/ < '$work/stream'"
	b=$((n * part + 64))
	flags="$*"
	echo "bench memory-$name: bs_rss=${R}MiB bound=${b}MiB (-j$n, ${part} MiB parts${flags:+: ${flags//$RCPT/age1...}}) $([ "$R" -lt "$b" ] && echo ok || echo OVER)"
}
age-keygen -o "$work/key" 2>/dev/null
RCPT=$(age-keygen -y "$work/key")
bound plain 4 8
bound zstd 4 8 --zstd
bound zstd-age 4 8 --zstd -r "$RCPT"
bound j8-32M-zstd 8 32 -j8 --part-size 32M --zstd

# Download: bss3get (every check on: command CRCs, SHA-256 and size, END
# held back) vs rclone cat, which checks nothing; then its memory bound
# (bss3get(1)): (n + 3) x chunk size + 64 MiB.
KEY=$(bsls s3://bench/bs/ | sed -n 's/.*"key":"\([^"]*\)".*/\1/p' | head -1)
measure "bss3get 's3://bench/bs/$KEY' | cat > /dev/null"; B=$M
b=$((7 * 8 + 64))
echo "bench memory-get: bs_rss=${R}MiB bound=${b}MiB (-j4, 8 MiB chunks) $([ "$R" -lt "$b" ] && echo ok || echo OVER)"
measure "rclone cat m:bench/rclone/stream | cat > /dev/null"; P=$M
bench_report download "$B" "$P" "peer: rclone cat"

# Stages on the same stream, into a plain directory (no network): in
# tmpfs when it has room, so that the disk's writeback (seconds of noise
# on a VM) is not what is measured.
OUT=$work/out
if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -gt $((SIZE / 1024 * 3)) ] 2>/dev/null; then
	OUT=$(mktemp -d /dev/shm/bs-bench-s3.XXXXXX)
	bench_on_exit "rm -rf '$OUT'"
fi
mkdir -p "$OUT"
# stage NAME BS_CMD PEER_CMD PEER_NAME: three alternating rounds; sets BZ
# and PZ, the sizes of what each side wrote.
stage() {
	local b= p=
	for i in 1 2 3; do
		rm -rf "${OUT:?}"/*
		measure "$2"; b=${b:+$(bench_best "$b" "$M")}; b=${b:-$M}
		BZ=$(du -sb "$OUT" | cut -f1)
		rm -rf "${OUT:?}"/*
		measure "$3"; p=${p:+$(bench_best "$p" "$M")}; p=${p:-$M}
		PZ=$(du -sb "$OUT" | cut -f1)
	done
	rm -rf "${OUT:?}"/*
	bench_report "$1" "$b" "$p" "peer: $4"
}
# sizes NAME STREAM: the output sizes of the last stage.
sizes() {
	awk -v n="$1" -v s="$(stat -c %s "$2")" -v b="$BZ" -v p="$PZ" 'BEGIN {
		printf "bench %s-size: stream=%dMiB bs=%dMiB peer=%dMiB ratio=%.3f\n", n, s / 1048576, b / 1048576, p / 1048576, b / p }'
}
stage zstd "bss3put --zstd file://$OUT/bs/ < '$work/stream'" "zstd -q -T0 -3 < '$work/stream' > '$OUT/stream.zst' && sync '$OUT/stream.zst'" "zstd -T0"
sizes zstd "$work/stream"

# zstd again on system files (the first GiB, or BENCH_MIB, of a tar of
# /usr/share and /usr/lib), which compress better than the stream above
# and favour the C zstd: shown, not a target of its own.
btrfs -q subvolume create "$MNT/sys"
tar -C / -cf - usr/share usr/lib 2>/dev/null | head -c $((MIB < 1024 ? MIB : 1024))M > "$MNT/sys/usr.tar" || true
btrfs -q subvolume snapshot -r "$MNT/sys" "$MNT/sys-snap"
btrfs send -q "$MNT/sys-snap" > "$work/sys-stream"
stage zstd-usr "bss3put --zstd file://$OUT/bs/ < '$work/sys-stream'" "zstd -q -T0 -3 < '$work/sys-stream' > '$OUT/stream.zst' && sync '$OUT/stream.zst'" "zstd -T0"
sizes zstd-usr "$work/sys-stream"
rm -f "$work/sys-stream"

stage age "bss3put -r $RCPT file://$OUT/bs/ < '$work/stream'" "age -r $RCPT < '$work/stream' > '$OUT/stream.age' && sync '$OUT/stream.age'" "age -r"
