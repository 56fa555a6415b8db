#!/bin/bash
# One send, two destinations: read the source once and feed both receivers.
# The plan is made against the first destination; the second must hold the
# same snapshots (both mirrors kept in step), which bsrecv checks: a missing
# parent is an error, never a wrong snapshot.
#
#   tee-two-destinations.sh /mnt/pool/snaps/ /mnt/usb1/snaps/ /mnt/usb2/snaps/
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: tee-two-destinations.sh SRC/ DEST1/ DEST2/" >&2; exit 2; }
src=$1 dst1=$2 dst2=$3
bsplan "$src" "$dst1" | bssend | tee >(bsrecv "$dst2" >/dev/null) | bsrecv "$dst1" >/dev/null
# tee's process substitution is not waited for by bash: wait for it here.
wait
