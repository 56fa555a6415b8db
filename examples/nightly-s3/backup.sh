#!/bin/sh
# Nightly backup: take a read-only snapshot of a subvolume, then send every
# snapshot the bucket does not have yet, compressed with zstd and encrypted
# with age, each from the cheapest parent, in restore chains of at most
# MAX_CHAIN objects. Configuration comes from the environment (the systemd
# unit reads /etc/buttersink/backup.env):
#
#   SUBVOLUME        the subvolume to snapshot (optional: without it only syncs)
#   SNAPSHOTS        directory holding its read-only snapshots, e.g. /mnt/pool/snaps
#   DEST             s3://bucket/prefix/ or file:///mnt/usb/backup/
#   AGE_RECIPIENTS   file of age recipients (public keys); keep the identity offline
#   MAX_CHAIN        longest restore chain (default 8)
#   KEEP             "--schedule '...' --prune" style extra options (optional)
set -eu
: "${SNAPSHOTS:?set SNAPSHOTS}" "${DEST:?set DEST}" "${AGE_RECIPIENTS:?set AGE_RECIPIENTS}"
if [ -n "${SUBVOLUME:-}" ]; then
	# Names are unique to the second; a second run within the same second
	# waits for the next one (btrfs would put the snapshot inside the
	# existing one of that name).
	while name=$(basename "$SUBVOLUME").$(date -u +%Y%m%dT%H%M%SZ) && [ -e "$SNAPSHOTS/$name" ]; do
		sleep 1
	done
	btrfs subvolume snapshot -r "$SUBVOLUME" "$SNAPSHOTS/$name" >/dev/null
fi
# shellcheck disable=SC2086 # KEEP is a list of options
exec buttersink -q --zstd --age-recipients-file "$AGE_RECIPIENTS" \
	--max-chain "${MAX_CHAIN:-8}" ${KEEP:-} "$SNAPSHOTS/" "$DEST"
