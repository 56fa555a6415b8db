#!/bin/sh
# buttersink: synchronise two sets of btrfs read-only snapshots — the
# original ButterSink's one-command CLI, composed from the bs filters:
#
#   bsplan SRC DST | bssend | bsrecv DST          btrfs/ssh  -> btrfs/ssh
#   bsplan SRC DST | bssend | bss3put DST         btrfs/ssh  -> s3/file
#   bsplan SRC DST | bss3get | bsrecv DST         s3/file    -> btrfs/ssh
#   bsplan SRC DST | bss3get | bss3put DST        s3/file    -> s3/file
#   bsplan ... | bsrm DST                         with -d or --prune
#
# Every stage runs as its own process connected by FIFOs and is waited for
# separately, so the exit status of each is known (POSIX sh has no
# pipefail); the first failing stage's status is the script's.
set -u

prog=buttersink
usage() {
	cat <<EOF
usage: buttersink [options] [<src>] <dst>

Synchronise two sets of btrfs read-only snapshots. With only <dst>, list it.

  -n, --dry-run           show what would be done, change nothing
  -d, --delete            delete snapshots in <dst> that are not in <src>
  -e, --estimate          estimate diff sizes instead of measuring them
  -q, --quiet             no progress; -qq: only errors
  -v, --verbose           more messages
  -l, --logfile LOGFILE   append a debug log of every stage to LOGFILE
  -V, --version           print the version
      --part-size SIZE    S3 part size (plain number: MiB, as the original)
      --zstd[=LEVEL]      compress objects (s3/file destinations)
      --age-recipient R   encrypt objects to R (repeatable)
      --age-recipients-file F
      --age-identity F    decrypt objects (s3/file sources)
      --filter CMD        extra encoding stage for objects (repeatable)
      --schedule SPEC     pick parents by calendar period, e.g. "1y 3m 30d 24h"
      --tz ZONE           time zone for --schedule
      --prune             delete what the schedule no longer keeps
      --max-chain N       longest restore chain at object-store destinations
      --profile NAME      AWS profile for s3:// locations
      --endpoint-url URL  S3-compatible endpoint (or AWS_ENDPOINT_URL)
      --ssh CMD           ssh command for ssh:// locations (or BS_SSH)
      --sudo              run remote commands with sudo -n
      --wait              if another run holds <dst>'s lock, wait for it
                          (without: exit 75)
      --wait-timeout DUR  wait at most DUR (e.g. 30m), then exit 75
  -h, --help              this help

Locations: [btrfs://]/dir/[snapshot]  ssh://[user@]host[:port]/dir/[snapshot]
           s3://bucket/prefix/[snapshot]  file:///dir/[snapshot]
EOF
}

die() {
	printf '%s: error: %s\n' "$prog" "$1" >&2
	[ $# -gt 1 ] && printf '%s: hint: %s\n' "$prog" "$2" >&2
	exit "${3:-2}"
}

# Options are collected per stage, each as a quoted word list that is
# expanded with eval "set -- $list" so arguments with spaces survive.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
common="" plan_opts="" put_opts="" get_opts="" remote_opts="" s3_opts="" lock_opts=""
dry=0 delete=0 prune=0 quiet=0
add() { eval "$1=\"\${$1} $(quote "$2")\""; }

need_arg() { [ $# -ge 2 ] || die "option $1 needs a value" "see buttersink --help"; }

while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	-V | --version)
		v=$(bsplan --version 2>/dev/null) || die "bsplan not found on PATH" "install buttersink's commands" 1
		echo "buttersink ${v#bsplan }"
		exit 0 ;;
	-n | --dry-run) dry=1 ;;
	-d | --delete) delete=1; add plan_opts --delete ;;
	-e | --estimate) add plan_opts --estimate ;;
	-q | --quiet) quiet=$((quiet + 1)); add common -q ;;
	-qq) quiet=$((quiet + 2)); add common -q; add common -q ;;
	-v | --verbose) add common -v ;;
	-l | --logfile | --log) need_arg "$@"; add common -l; add common "$2"; shift ;;
	--logfile=* | --log=*) add common -l; add common "${1#*=}" ;;
	--part-size) need_arg "$@"; p=$2; shift
		case $p in *[!0-9]*) ;; *) p=${p}MiB ;; esac
		add put_opts --part-size; add put_opts "$p" ;;
	--zstd) add put_opts --zstd ;;
	--zstd=*) add put_opts "$1" ;;
	--age-recipient | --age-recipients-file | --filter)
		need_arg "$@"; add put_opts "$1"; add put_opts "$2"; shift ;;
	--age-identity) need_arg "$@"; add get_opts "$1"; add get_opts "$2"; shift ;;
	--unfilter) need_arg "$@"; add get_opts --filter; add get_opts "$2"; shift ;;
	--schedule | --tz | --max-chain) need_arg "$@"; add plan_opts "$1"; add plan_opts "$2"; shift ;;
	--prune) prune=1; add plan_opts --prune ;;
	--ssh) need_arg "$@"; add remote_opts --ssh; add remote_opts "$2"; shift ;;
	--profile | --endpoint-url | --region) need_arg "$@"; add s3_opts "$1"; add s3_opts "$2"; shift ;;
	--sudo) add remote_opts --sudo ;;
	--wait) add lock_opts --wait ;;
	--wait-timeout) need_arg "$@"; add lock_opts "$1"; add lock_opts "$2"; shift ;;
	--) shift; break ;;
	-?*) die "unknown option $1" "see buttersink --help" ;;
	*) break ;;
	esac
	shift
done

case $# in
1) src="" dst=$1 ;;
2) src=$1 dst=$2 ;;
0) die "missing <dst>" "see buttersink --help" ;;
*) die "too many arguments" "see buttersink --help" ;;
esac

kind() {
	case $1 in
	s3://* | file://*) echo store ;;
	*) echo btrfs ;;
	esac
}

if [ -z "$src" ]; then
	case $dst in s3://* | file://*) eval "set -- $common $s3_opts" ;; *) eval "set -- $common $remote_opts" ;; esac
	exec bsls "$@" "$dst"
fi

# The destination is always a directory, as in the original.
case $dst in */) ;; *) dst=$dst/ ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/buttersink.XXXXXX") || die "cannot make a temporary directory" "" 1
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Plan.
eval "set -- $common $remote_opts $s3_opts $plan_opts"
if [ "$dry" = 1 ]; then
	exec bsplan --dry-run "$@" "$src" "$dst"
fi
bsplan "$@" "$src" "$dst" >"$tmp/plan" || exit $?

# Steps are split by op: sends first, deletes only after every send landed.
grep '^{"op":"send"' "$tmp/plan" >"$tmp/send" || :
grep '^{"op":"delete"' "$tmp/plan" >"$tmp/delete" || :

# 2. Transfer: reader | writer, each waited for on its own.
if [ -s "$tmp/send" ]; then
	if [ "$(kind "$src")" = store ]; then
		reader=bss3get
		eval "set -- $common $s3_opts $get_opts"
	else
		reader=bssend
		eval "set -- $common $remote_opts"
	fi
	mkfifo "$tmp/stream" || exit 1
	"$reader" "$@" <"$tmp/send" >"$tmp/stream" &
	rpid=$!
	pids="$rpid"
	if [ "$(kind "$dst")" = store ]; then
		writer=bss3put
		eval "set -- $common $s3_opts $put_opts $lock_opts"
	else
		writer=bsrecv
		eval "set -- $common $remote_opts $lock_opts"
	fi
	"$writer" "$@" "$dst" <"$tmp/stream" >"$tmp/done"
	wstatus=$?
	wait "$rpid"
	rstatus=$?
	pids=""
	# Another run holds the destination (75): the reader failing on the
	# closed pipe is its consequence, not the cause.
	[ "$wstatus" -eq 75 ] && exit 75
	if [ "$rstatus" -ne 0 ]; then
		[ "$wstatus" -eq 0 ] || printf '%s: error: %s failed too (exit %d)\n' "$prog" "$writer" "$wstatus" >&2
		exit "$rstatus"
	fi
	[ "$wstatus" -eq 0 ] || exit "$wstatus"
	if [ "$quiet" -eq 0 ]; then
		n=$(grep -c . "$tmp/done" || :)
		printf '%s: %s snapshot(s) transferred to %s\n' "$prog" "$n" "$dst" >&2
	fi
fi

# 3. Delete.
if [ -s "$tmp/delete" ]; then
	case $dst in s3://* | file://*) eval "set -- $common $s3_opts $lock_opts" ;; *) eval "set -- $common $remote_opts $lock_opts" ;; esac
	bsrm "$@" "$dst" <"$tmp/delete" >/dev/null || exit $?
	if [ "$quiet" -eq 0 ]; then
		printf '%s: %s deleted from %s\n' "$prog" "$(grep -c . "$tmp/delete")" "$dst" >&2
	fi
fi
exit 0
