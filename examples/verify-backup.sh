#!/bin/bash
# Verify a stored backup without btrfs, as restic check --read-data does:
# at backup time record the digest of each snapshot; later, on any machine,
# restore the snapshot from the store into a temporary directory and compare
# it with the recorded digest. Every object of the chain is fetched and
# decrypted, every stream verified, every file's data written and hashed.
# Differences are listed (added, missing, data or metadata changed) and the
# exit status is 1. Run as root, so that owners are restored as stored.
# --portable: directory link counts are printed as btrfs has them (1), so
# that a snapshot on btrfs and its restore on ext4 or tmpfs compare equal.
#
#   verify-backup.sh record /mnt/pool/snaps/home.2026-12-01 /var/lib/buttersink/digests/
#   verify-backup.sh check s3://my-backups/host1/home.2026-12-01 key.txt /var/lib/buttersink/digests/
#
# TMPDIR (default /tmp) holds the restored snapshot while it is compared.
set -euo pipefail
usage() {
	echo "usage: verify-backup.sh record SNAPSHOT DIGESTS/ | check STORE/SNAPSHOT AGE_IDENTITY DIGESTS/" >&2
	exit 2
}
case ${1:-} in
record)
	[ $# -eq 3 ] || usage
	mkdir -p -- "$3"
	snapshot=$(realpath -- "$2")
	cd -- "$3" && checksumdir -q --portable "$snapshot"
	;;
check)
	[ $# -eq 4 ] || usage
	name=$(basename -- "$2") identity=$3 digests=$4
	[ -f "$digests/$name.sha256sum" ] || { echo "verify-backup.sh: no digest $digests/$name.sha256sum" >&2; exit 1; }
	tmp=$(mktemp -d)
	trap 'rm -rf -- "$tmp"' EXIT
	bsplan -q --dst-list /dev/null -- "$2" . |
		bss3get -q --age-identity="$identity" |
		bsrecv -q --tar |
		tar -x --numeric-owner -p -C "$tmp"
	checksumdir --portable --check "$digests/$name.sha256sum" "$tmp/$name"
	echo "verify-backup.sh: $2 matches its digest"
	;;
*) usage ;;
esac
