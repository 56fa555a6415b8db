#!/bin/sh
# Calendar schedule, btrfs2s3 style: keep one backup per year, quarter...
# here: the last 1 year, 3 months, 30 days and 24 hours. Parents follow the
# calendar, so restoring any snapshot reads at most 5 objects (4 periods + 1),
# and --prune deletes what the policy no longer keeps — never the newest,
# never anything a kept snapshot's chain needs.
#
#   schedule-prune.sh /mnt/pool/snaps/ s3://my-backups/host1/ [ZONE]
set -eu
[ $# -ge 2 ] || { echo "usage: schedule-prune.sh SRC/ DEST/ [ZONE]" >&2; exit 2; }
exec buttersink --schedule "1y 3m 30d 24h" --tz "${3:-UTC}" --prune "$1" "$2"
