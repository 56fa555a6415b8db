#!/bin/bash
# bench s3: bss3put / bss3get against rclone rcat and aws s3 cp on the same
# send stream and the same MinIO server, and the zstd and age stages against
# the zstd and age CLIs. One run; prints one line per comparison:
#   bench NAME: bs=1.23s peer=1.30s ratio=0.95 bs_rss=12MiB peer_rss=30MiB
#
# Needs root (loop btrfs), the MinIO server (MINIO_BIN, /root/go/bin/minio
# or $(go env GOPATH)/bin/minio), rclone, aws, zstd, age, /usr/bin/time.
# Commands come from ./bin (make build) or $BS_BIN. BENCH_QUICK=1 uses a
# small stream; BENCH_MIB sets its size (default 2048 MiB).
set -euo pipefail

BIN=${BS_BIN:-$PWD/bin}
[ -x "$BIN/bss3put" ] || { echo "bench s3: no $BIN/bss3put; run make build or set BS_BIN" >&2; exit 1; }
export PATH="$BIN:$PATH"
MIB=${BENCH_MIB:-2048}
[ "${BENCH_QUICK:-}" = 1 ] && MIB=${BENCH_MIB:-128}
MINIO=${MINIO_BIN:-}
for c in /root/go/bin/minio "$(go env GOPATH 2>/dev/null)/bin/minio" "$(command -v minio || true)"; do
	[ -z "$MINIO" ] && [ -x "$c" ] && MINIO=$c
done
[ -n "$MINIO" ] || { echo "bench s3: MinIO server not found (set MINIO_BIN)" >&2; exit 1; }
for c in rclone aws zstd age age-keygen mkfs.btrfs; do
	command -v $c >/dev/null || { echo "bench s3: $c not found" >&2; exit 1; }
done

W=$(mktemp -d /tmp/bs-bench-s3.XXXXXX)
MNT=$W/mnt
MINIO_PID=
cleanup() {
	[ -n "$MINIO_PID" ] && kill "$MINIO_PID" 2>/dev/null && wait "$MINIO_PID" 2>/dev/null || true
	mountpoint -q "$MNT" && umount "$MNT" || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

# A snapshot of half random, half compressible data, sent once to a file.
mkdir -p "$MNT"
truncate -s $((MIB * 2 + 512))M "$W/img"
mkfs.btrfs -q "$W/img" >/dev/null 2>&1
mount -o loop "$W/img" "$MNT"
btrfs -q subvolume create "$MNT/vol"
half=$((MIB / 2))
for i in $(seq 1 $(((half + 63) / 64))); do
	head -c 64M /dev/urandom > "$MNT/vol/random$i"
	head -c 47M /dev/urandom | base64 -w 100 > "$MNT/vol/text$i"
done
btrfs -q subvolume snapshot -r "$MNT/vol" "$MNT/snap"
btrfs send -q "$MNT/snap" > "$W/stream"
SIZE=$(stat -c %s "$W/stream")

# MinIO on a free port, random root credentials.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench$RANDOM$RANDOM AWS_SECRET_ACCESS_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_CA_BUNDLE AWS_PROFILE
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
	"$MINIO" server --quiet --address 127.0.0.1:$PORT --console-address 127.0.0.1:0 "$W/minio" > "$W/minio.log" 2>&1 &
MINIO_PID=$!
for i in $(seq 1 150); do
	aws s3 mb s3://bench >/dev/null 2>&1 && break
	sleep 0.2
done
export RCLONE_CONFIG_M_TYPE=s3 RCLONE_CONFIG_M_PROVIDER=Minio RCLONE_CONFIG_M_ENDPOINT=$AWS_ENDPOINT_URL
export RCLONE_CONFIG_M_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_M_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY

# measure NAME CMD...: runs CMD under /usr/bin/time, sets T (s) and R (MiB).
measure() {
	sync
	/usr/bin/time -f '%e %M' -o "$W/time" bash -c "$1" > /dev/null
	read -r T K < "$W/time"
	R=$((K / 1024))
}
report() { # name bs_t bs_r peer_t peer_r peer_name
	awk -v n="$1" -v bt="$2" -v br="$3" -v pt="$4" -v pr="$5" -v pn="$6" 'BEGIN {
		printf "bench %s: bs=%.2fs peer=%.2fs ratio=%.2f bs_rss=%dMiB peer_rss=%dMiB (peer: %s)\n", n, bt, pt, bt / (pt > 0 ? pt : 0.01), br, pr, pn }'
}

echo "bench s3: stream $((SIZE >> 20)) MiB, MinIO $MINIO" >&2

# Upload: bss3put vs rclone rcat vs aws s3 cp -.
measure "bss3put s3://bench/bs/ < '$W/stream'"; BT=$T BR=$R
# rclone 1.60 cannot use AWS_CA_BUNDLE; it is unset above.
measure "rclone rcat m:bench/rclone/stream < '$W/stream'"; RT=$T RR=$R
measure "aws s3 cp - s3://bench/aws/stream < '$W/stream'"; AT=$T AR=$R
if awk -v a="$RT" -v b="$AT" 'BEGIN { exit !(a <= b) }'; then PT=$RT PR=$RR PN="rclone rcat"; else PT=$AT PR=$AR PN="aws s3 cp"; fi
report upload "$BT" "$BR" "$PT" "$PR" "$PN (fastest; rclone=${RT}s/${RR}MiB aws=${AT}s/${AR}MiB)"

# Memory bound (bss3put(1)): n x part size + 64 MiB, with and without zstd.
bound() { # name flags n part_MiB
	measure "bss3put $2 s3://bench/bound-$1/ < '$W/stream'"
	b=$(($3 * $4 + 64))
	echo "bench memory-$1: bs_rss=${R}MiB bound=${b}MiB (${2:-no stages}) $([ "$R" -lt "$b" ] && echo ok || echo OVER)"
}
bound plain "" 4 8
bound zstd "--zstd" 4 8
bound zstd-age "--zstd -r $(age-keygen 2>/dev/null | sed -n 's/^# public key: //p')" 4 8
bound j8-32M-zstd "-j8 --part-size 32M --zstd" 8 32

# Download: bss3get (verifying) vs aws s3 cp to stdout.
KEY=$(bsls s3://bench/bs/ | sed -n 's/.*"key":"\([^"]*\)".*/\1/p' | head -1)
measure "bss3get 's3://bench/bs/$KEY' | cat > /dev/null"; BT=$T BR=$R
measure "aws s3 cp s3://bench/aws/stream - | cat > /dev/null"; PT=$T PR=$R
report download "$BT" "$BR" "$PT" "$PR" "aws s3 cp -"

# Stages on the same stream, into a plain directory (no network): in
# tmpfs when it has room, so that the disk's writeback (seconds of noise
# on a VM) is not what is measured. Three alternating rounds; the best
# time and the highest RSS of each side.
OUT=$W/out
if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')" -gt $((SIZE / 1024 * 3)) ] 2>/dev/null; then
	OUT=$(mktemp -d /dev/shm/bs-bench-s3.XXXXXX)
fi
trap 'rm -rf "$OUT"; cleanup' EXIT INT TERM
mkdir -p "$OUT"
# stage NAME BS_CMD PEER_CMD PEER_NAME [STREAM]: sets BZ and PZ, the output sizes.
stage() {
	bt= br=0 pt= pr=0
	for i in 1 2 3; do
		rm -rf "$OUT"/*
		measure "$2"; bt=$(awk -v a="$bt" -v b="$T" 'BEGIN { print (a == "" || b < a) ? b : a }'); [ "$R" -gt "$br" ] && br=$R
		BZ=$(du -sb "$OUT" | cut -f1)
		rm -rf "$OUT"/*
		measure "$3"; pt=$(awk -v a="$pt" -v b="$T" 'BEGIN { print (a == "" || b < a) ? b : a }'); [ "$R" -gt "$pr" ] && pr=$R
		PZ=$(du -sb "$OUT" | cut -f1)
	done
	rm -rf "$OUT"/*
	report "$1" "$bt" "$br" "$pt" "$pr" "$4"
}
# sizes NAME STREAM: the output sizes of the last stage round.
sizes() {
	awk -v n="$1" -v s="$(stat -c %s "$2")" -v b="$BZ" -v p="$PZ" 'BEGIN {
		printf "bench %s-size: stream=%dMiB bs=%dMiB peer=%dMiB ratio=%.3f\n", n, s / 1048576, b / 1048576, p / 1048576, b / p }'
}
stage zstd "bss3put --zstd file://$OUT/bs/ < '$W/stream'" "zstd -q -T0 -3 < '$W/stream' > '$OUT/stream.zst' && sync '$OUT/stream.zst'" "zstd -T0"
sizes zstd "$W/stream"

# zstd again on system files (the first GiB, or BENCH_MIB, of a tar of
# /usr/share and /usr/lib), which compress better than the stream above
# and favour the C zstd: shown, not a target of its own.
btrfs -q subvolume create "$MNT/sys"
tar -C / -cf - usr/share usr/lib 2>/dev/null | head -c $((MIB < 1024 ? MIB : 1024))M > "$MNT/sys/usr.tar" || true
btrfs -q subvolume snapshot -r "$MNT/sys" "$MNT/sys-snap"
btrfs send -q "$MNT/sys-snap" > "$W/sys-stream"
stage zstd-usr "bss3put --zstd file://$OUT/bs/ < '$W/sys-stream'" "zstd -q -T0 -3 < '$W/sys-stream' > '$OUT/stream.zst' && sync '$OUT/stream.zst'" "zstd -T0"
sizes zstd-usr "$W/sys-stream"
rm -f "$W/sys-stream"

age-keygen -o "$W/key" 2>/dev/null
RCPT=$(age-keygen -y "$W/key")
stage age "bss3put -r $RCPT file://$OUT/bs/ < '$W/stream'" "age -r $RCPT < '$W/stream' > '$OUT/stream.age' && sync '$OUT/stream.age'" "age -r"
