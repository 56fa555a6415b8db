#!/bin/sh
# Installs what the tests, the demo and the benchmarks need on Debian, as
# root: btrfs-progs, OpenSSH, the peer tools compared against, and the MinIO
# server and client (built from source through the Go module proxy; minutes
# the first time, then cached; the client creates the users of the policy
# examples).
set -eu
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: run as root (apt-get, loop devices)" >&2
	exit 1
fi
# "demo" installs only what make demo needs; no argument installs everything.
pkgs="btrfs-progs age zstd util-linux"
if [ "${1:-}" != demo ]; then
	pkgs="$pkgs openssh-server openssh-client rclone awscli pv btrbk mandoc time attr sudo gnupg rsync"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
[ "${1:-}" = demo ] && exit 0
gobin="$(go env GOPATH)/bin"
if ! "$gobin/minio" --version >/dev/null 2>&1; then
	echo "deps: building MinIO $MINIO_VERSION (a few minutes the first time)" >&2
	go install "github.com/minio/minio@$MINIO_VERSION"
fi
if ! "$gobin/mc" --version >/dev/null 2>&1; then
	echo "deps: building the MinIO client $MC_VERSION (a few minutes the first time)" >&2
	go install "github.com/minio/mc@$MC_VERSION"
fi
