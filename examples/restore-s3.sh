#!/bin/bash
# Restore every snapshot in a bucket (or file:// store) onto a new machine.
# The plan fetches each object's full stream and the diffs down its chain,
# in order; bsrecv verifies every snapshot is complete before the next.
# pipefail: a failing stage (a wrong age key, say) fails the restore, even
# when the stages after it end cleanly on the input they got.
#
#   restore-s3.sh s3://my-backups/host1/ /mnt/newpool/snaps/ ~/age-identity.txt
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: restore-s3.sh SOURCE DEST/ AGE_IDENTITY" >&2; exit 2; }
src=$1 dst=$2 identity=$3
mkdir -p -- "$dst"
bsplan -- "$src" "$dst" | bss3get --age-identity="$identity" | bsrecv -- "$dst"
