#!/bin/sh
# Verify a backup: checksum the source snapshot, then check the backup copy
# against the saved checksums. Differences are listed (added, missing, data
# or metadata changed) and the exit status is 1.
#
#   verify.sh /mnt/pool/snaps/home.1 /mnt/backup/snaps/home.1
set -eu
[ $# -eq 2 ] || { echo "usage: verify.sh SOURCE BACKUP" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
name=$(basename "$1")
(cd "$out" && checksumdir "$1")
checksumdir --check "$out/$name.sha256sum" "$2"
echo "verify: $2 matches $1"
