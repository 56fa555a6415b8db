#!/bin/bash
# Take files out of one snapshot of a store (s3:// or file://, age-encrypted
# or not) onto any machine, without btrfs and without root: the snapshot's
# chain is planned as for an empty destination, fetched and verified, applied
# in a temporary directory, and only the selected paths are extracted.
# pipefail: a failing stage (a wrong key, a damaged object) fails the
# restore, even when the stages after it end cleanly on the input they got.
#
#   restore-file.sh s3://my-backups/host1/home.2026-12-01 key.txt restore/ /etc/fstab
#
# puts restore/home.2026-12-01/etc/fstab in place. PATH is a glob relative to
# the snapshot's root (see bsrecv(1), Selective restore); give several.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: restore-file.sh STORE/SNAPSHOT AGE_IDENTITY DEST/ PATH..." >&2; exit 2; }
snapshot=$1 identity=$2 dest=$3
shift 3
include=()
for p in "$@"; do include+=(--include "$p"); done
mkdir -p -- "$dest"
# tar extracts what it gets: a chain cut between two streams still makes an
# archive, of the snapshot before. Extract aside, and put the files in place
# only when every stage succeeded.
stage=$(mktemp -d -- "${dest%/}/.restore-file.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT
bsplan -q --dst-list /dev/null -- "$snapshot" . |
	bss3get -q --age-identity="$identity" |
	bsrecv -q --tar "${include[@]}" |
	tar -x -C "$stage"
cp -a -- "$stage"/. "$dest"/
