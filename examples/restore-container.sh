#!/bin/bash
# Restore one snapshot of a store as the root directory of a container, with
# owners, modes and attributes (run as root), then start it with
# systemd-nspawn -D ROOTFS, podman run --rootfs ROOTFS, or chroot, or make an
# image of it:
#
#   restore-container.sh s3://my-backups/host1/root.2026-12-01 key.txt rootfs/
#   tar -c -C rootfs . | podman import - host1-root:2026-12-01
#
# The archive's names start with the snapshot's name: --strip-components=1
# puts its content at the top of ROOTFS, which must be empty or missing.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: restore-container.sh STORE/SNAPSHOT AGE_IDENTITY ROOTFS/" >&2; exit 2; }
snapshot=$1 identity=$2 rootfs=$3
mkdir -p -- "$rootfs"
[ -z "$(ls -A -- "$rootfs")" ] || { echo "restore-container.sh: $rootfs is not empty" >&2; exit 1; }
bsplan -q --dst-list /dev/null -- "$snapshot" . |
	bss3get -q --age-identity="$identity" |
	bsrecv -q --tar |
	tar -x --strip-components=1 --numeric-owner -p --xattrs --xattrs-include='*' --acls -C "$rootfs"
