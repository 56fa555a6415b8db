#!/bin/sh
# Nightly backup: take a read-only snapshot of a subvolume, then send every
# snapshot the bucket does not have yet, compressed with zstd and encrypted
# with age, each from the cheapest parent, in restore chains of at most
# MAX_CHAIN objects. Configuration comes from the environment (the systemd
# unit and the cron line read /etc/buttersink/backup.env):
#
#   SUBVOLUME        the subvolume to snapshot (optional: without it only syncs)
#   SNAPSHOTS        directory holding its read-only snapshots, e.g. /mnt/pool/snaps
#   DEST             s3://bucket/prefix/ or file:///mnt/usb/backup/
#   AGE_RECIPIENTS   file of age recipients (public keys); keep the identity offline
#   MAX_CHAIN        longest restore chain (default 8)
#   SCHEDULE         calendar schedule, e.g. "1y 3m 30d 24h" (optional)
#   SCHEDULE_TZ      its time zone, e.g. Europe/Berlin (optional)
#   PRUNE            yes: delete what SCHEDULE no longer keeps (needs SCHEDULE)
#   METRICS_FILE     Prometheus textfile-collector file to replace at the end
#                    of each run, e.g. /var/lib/prometheus/node-exporter/buttersink.prom
#   AWS_*            S3 settings (AWS_ENDPOINT_URL, AWS_PROFILE, ...), read by
#                    the commands themselves
#
# Every value is passed as one argument, never split or evaluated. The exit
# status is buttersink's: non-zero when any stage failed.
#
# make install puts this script in PREFIX/libexec/buttersink/; the
# commands installed with it (PREFIX/bin) come first, before PATH (cron's
# has no /usr/local/bin).
set -eu
case $0 in
*/libexec/buttersink/*) PATH=${0%/libexec/buttersink/*}/bin:$PATH ;;
esac
: "${SNAPSHOTS:?set SNAPSHOTS}" "${DEST:?set DEST}" "${AGE_RECIPIENTS:?set AGE_RECIPIENTS}"
set -- -q --zstd --age-recipients-file "$AGE_RECIPIENTS" --max-chain "${MAX_CHAIN:-8}"
if [ -n "${SCHEDULE:-}" ]; then
	set -- "$@" --schedule "$SCHEDULE"
	[ -z "${SCHEDULE_TZ:-}" ] || set -- "$@" --tz "$SCHEDULE_TZ"
fi
case ${PRUNE:-} in
yes)
	[ -n "${SCHEDULE:-}" ] || { echo "backup.sh: PRUNE=yes needs SCHEDULE" >&2; exit 2; }
	set -- "$@" --prune
	;;
"" | no) ;;
*) echo "backup.sh: PRUNE must be yes or no, not $PRUNE" >&2; exit 2 ;;
esac
[ -z "${METRICS_FILE:-}" ] || set -- "$@" --metrics-file "$METRICS_FILE"
[ -n "${SCHEDULE:-}" ] || [ -z "${SCHEDULE_TZ:-}" ] || { echo "backup.sh: SCHEDULE_TZ needs SCHEDULE" >&2; exit 2; }
if [ -n "${SUBVOLUME:-}" ]; then
	# Names are unique to the second; a second run within the same second
	# waits for the next one (btrfs would put the snapshot inside the
	# existing one of that name).
	while name=$(basename "$SUBVOLUME").$(date -u +%Y%m%dT%H%M%SZ) && [ -e "$SNAPSHOTS/$name" ]; do
		sleep 1
	done
	btrfs subvolume snapshot -r "$SUBVOLUME" "$SNAPSHOTS/$name" >/dev/null
fi
exec buttersink "$@" "$SNAPSHOTS/" "$DEST"
