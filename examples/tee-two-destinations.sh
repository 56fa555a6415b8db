#!/bin/bash
# One send, two destinations: read the source once and feed both receivers.
# The plan is made against the first destination; the second must hold the
# same snapshots (both mirrors kept in step), which bsrecv checks: a missing
# parent is an error, never a wrong snapshot. Put the two destinations on
# different filesystems: on one, btrfs receive would take the first copy's
# parents for the second (bsrecv(1), BUGS).
#
#   tee-two-destinations.sh /mnt/pool/snaps/ /mnt/usb1/snaps/ /mnt/usb2/snaps/
#
# The second receiver reads a FIFO and is waited for by its PID: pipefail
# sees only the stages of the pipeline, and a receiver behind tee >(...)
# could fail unseen.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: tee-two-destinations.sh SRC/ DEST1/ DEST2/" >&2; exit 2; }
src=$1 dst1=$2 dst2=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/second"
bsrecv -- "$dst2" <"$tmp/second" >/dev/null &
second=$!
status=0
bsplan -- "$src" "$dst1" | bssend | tee "$tmp/second" | bsrecv -- "$dst1" >/dev/null || status=$?
# A failed pipeline may have no writer that ever opened the FIFO (tee did
# not start): stop the second receiver instead of waiting for it forever.
[ "$status" -eq 0 ] || kill "$second" 2>/dev/null || :
wait "$second" || [ "$status" -ne 0 ] || status=1
exit "$status"
