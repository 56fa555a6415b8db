#!/bin/bash
# Keep every read-only snapshot below SNAPSHOTS/ as a plain directory in
# MIRROR/, on any filesystem (a NAS mount, ext4, xfs): each run sends only the
# snapshots the mirror lacks, as incrementals from one it has, and each costs
# about the data that changed (unchanged files are hard links or reflinks to
# the previous snapshot's). Complete snapshots are listed by
# bsls dir://MIRROR/; anyone who can read the mirror restores with cp.
# pipefail: cron's sh has none, so the cron line runs this script.
#
#   nas-mirror.sh /mnt/pool/snaps/ /mnt/nas/mirror/
#
# /etc/cron.d/buttersink-nas (flock -n skips a run while the last one goes on):
# 30 3 * * * root flock -n -E 0 /run/buttersink-nas.lock /usr/local/bin/nas-mirror.sh /mnt/pool/snaps/ /mnt/nas/mirror/
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: nas-mirror.sh SNAPSHOTS/ MIRROR/" >&2; exit 2; }
src=${1%/}/ mirror=dir://${2%/}/
case $2 in /*) ;; *) echo "nas-mirror.sh: MIRROR must be an absolute path" >&2; exit 2 ;; esac
bsplan -q -- "$src" "$mirror" | bssend -q | bsrecv -q -- "$mirror" > /dev/null
