#!/bin/sh
# make demo: the main job on throwaway loopback btrfs filesystems.
#
# Makes a source btrfs with snapshots of real data, syncs it to a second
# btrfs and to a compressed, encrypted file:// store, restores the store
# onto a third btrfs, proves with checksumdir that the restored tree is
# identical, prints a report and removes everything it made.
#
# Needs root (loop devices, mount). Uses the commands in ./bin (make build)
# or on PATH.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$here/bin/bsls" ] && PATH="$here/bin:$PATH"
export PATH

say() { printf '\n== %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (loop devices and mount)" >&2; exit 1; }
for c in mkfs.btrfs losetup age-keygen bsls bsplan bssend bsrecv bss3put bss3get checksumdir buttersink; do
	command -v "$c" >/dev/null || { echo "demo: $c not found; run 'make deps build' first" >&2; exit 1; }
done

work=$(mktemp -d /tmp/buttersink-demo.XXXXXX)
mounts=""
cleanup() {
	for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || :; done
	for l in $(losetup -j "$work/src.img" -O NAME -n 2>/dev/null) $(losetup -j "$work/dst.img" -O NAME -n 2>/dev/null) $(losetup -j "$work/restore.img" -O NAME -n 2>/dev/null); do
		losetup -d "$l" 2>/dev/null || :
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkbtrfs() {
	truncate -s "$2" "$work/$1.img"
	mkfs.btrfs -q -f "$work/$1.img" >/dev/null
	mkdir -p "$work/$1"
	mount -o loop "$work/$1.img" "$work/$1"
	mounts="$work/$1 $mounts"
}

start=$(date +%s)
say "three loopback btrfs filesystems and a file:// store in $work"
mkbtrfs src 1G
mkbtrfs dst 1G
mkbtrfs restore 1G
mkdir -p "$work/store" "$work/src/snaps" "$work/dst/backup" "$work/restore/snaps"
age-keygen -o "$work/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/key.txt")

say "a subvolume with real data and three read-only snapshots of it"
btrfs subvolume create "$work/src/data" >/dev/null
cp -a /usr/share/doc "$work/src/data/doc" 2>/dev/null || :
head -c 32M /dev/urandom >"$work/src/data/random.bin"
seq 1 200000 >"$work/src/data/numbers.txt"
btrfs subvolume snapshot -r "$work/src/data" "$work/src/snaps/data.1" >/dev/null
seq 200001 400000 >>"$work/src/data/numbers.txt"
head -c 8M /dev/urandom >"$work/src/data/more.bin"
btrfs subvolume snapshot -r "$work/src/data" "$work/src/snaps/data.2" >/dev/null
rm -f "$work/src/data/random.bin"
echo "changed" >"$work/src/data/note.txt"
btrfs subvolume snapshot -r "$work/src/data" "$work/src/snaps/data.3" >/dev/null
bsls --table "$work/src/snaps/"

say "the plan: what would be sent, and from which parent"
# (the plan is taken first: sh has no pipefail, and a failing bsplan must
# stop the demo, not vanish into sed's exit status)
plan=$(bsplan "$work/src/snaps/" "$work/dst/backup/")
printf '%s\n' "$plan" | sed 's/"snapshot":{[^}]*"path":"\([^"]*\)"[^}]*}/"snapshot":"\1"/; s/"parent":{[^}]*"path":"\([^"]*\)"[^}]*}/"parent":"\1"/' | cut -c1-160

say "sync btrfs -> btrfs: buttersink src/snaps/ dst/backup/"
buttersink "$work/src/snaps/" "$work/dst/backup/"
bsls --table "$work/dst/backup/"

say "sync btrfs -> file:// store, compressed with zstd and encrypted with age"
buttersink --zstd --age-recipient "$recipient" "$work/src/snaps/" "file://$work/store/"
bsls --table "file://$work/store/"

say "a second run has nothing to do"
buttersink "$work/src/snaps/" "file://$work/store/"

say "restore from the store onto a third btrfs"
buttersink --age-identity "$work/key.txt" "file://$work/store/" "$work/restore/snaps/"
bsls --table "$work/restore/snaps/"

say "verify with checksumdir: source and restored trees"
cd "$work"
src_sum=$(checksumdir --stdout "$work/src/snaps/data.3")
dst_sum=$(checksumdir --stdout "$work/restore/snaps/data.3")
echo "source   data.3: $src_sum"
echo "restored data.3: $dst_sum"
[ "$src_sum" = "$dst_sum" ] || { echo "demo: restored tree differs from the source" >&2; exit 1; }

say "report"
raw=$(du -sb "$work/src/snaps/data.3" | cut -f1)
stored=$(du -sb "$work/store" | cut -f1)
echo "snapshots:            3 (data.1 full, data.2 and data.3 incremental)"
echo "source data (data.3): $raw bytes"
echo "file:// store:        $stored bytes (zstd + age, all three snapshots)"
echo "restored tree:        identical to the source (checksumdir)"
echo "time:                 $(( $(date +%s) - start )) s"
echo "demo: ok"
