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

# The commands beside this script come before PATH, so that it runs the
# stages of its own release (make install, bs --install-links).
case $0 in
*/*) if here=$(CDPATH= cd -- "${0%/*}" 2>/dev/null && pwd) && [ -x "$here/bsplan" ]; then PATH=$here:$PATH; fi ;;
esac

prog=buttersink
usage() {
	cat <<EOF
usage: buttersink [options] [<src>] <dst>

Synchronise two sets of btrfs read-only snapshots. With only <dst>, list it.

  -n, --dry-run           show what would be done, change nothing
  -d, --delete            delete snapshots in <dst> that are not in <src>
  -e, --estimate          estimate diff sizes instead of measuring them
  -q, --quiet             no progress; -qq: only errors
  -v, --verbose           more messages; -vv: debug messages of every stage
      --progress MODE     bar, log or none (default: bar on a terminal,
                          log with -v)
      --progress-interval DUR
                          time between two status lines of log (30s)
  -l, --log LOGFILE       append a debug log of every stage to LOGFILE
                          (also --logfile, as the original)
  -V, --version           print the version
      --part-size SIZE    S3 part size (plain number: MiB, as the original)
      --max-object-size SIZE
                          store a larger stream as several objects
                          (s3/file destinations; default 5TiB)
      --storage-class C   S3 storage class of new objects (s3 destinations)
      --sse ALG           S3 server-side encryption: AES256 or aws:kms
      --object-lock MODE:DURATION
                          S3 Object Lock retention of new objects, e.g.
                          COMPLIANCE:1y (s3 destinations)
      --restore-tier TIER request restores of archived objects (Standard,
                          Bulk or Expedited; s3 sources), then exit 75
      --restore-days N    days a restored copy stays (default 7)
  -j, --concurrency N     parts in flight at an s3/file location (default 4)
      --chunk-size SIZE   size of one ranged GET (s3/file sources)
      --zstd[=LEVEL]      compress objects (s3/file destinations)
  -r, --age-recipient R   encrypt objects to R (repeatable)
  -R, --age-recipients-file F
  -i, --age-identity F    decrypt objects (s3/file sources)
      --unfilter CMD      decoding stage for objects (s3/file sources)
      --filter CMD        extra encoding stage for objects (repeatable)
      --schedule SPEC     pick parents by calendar period, e.g. "1y 3m 30d 24h"
      --tz ZONE           time zone for --schedule
      --now TIME          apply the schedule as at TIME (RFC 3339)
      --prune             delete what the schedule no longer keeps
      --allow-empty-source
                          with -d: delete every snapshot in <dst> even when
                          <src> has none
      --max-chain N       longest restore chain at object-store destinations
      --no-resume         send every stream whole, also one that <dst> holds
                          in part from an interrupted receive
      --profile NAME      AWS profile for s3:// locations
      --endpoint-url URL  S3-compatible endpoint (or AWS_ENDPOINT_URL)
      --region REGION     AWS region for s3:// locations
      --path-style        address S3 buckets by path, not by host name
      --ssh CMD           ssh command for ssh:// locations (or BS_SSH)
      --sudo              run remote commands with sudo -n
      --wait              if another run holds <dst>'s lock, wait for it
                          (without: exit 75)
      --wait-timeout DUR  wait at most DUR (e.g. 30m), then exit 75
      --metrics-file FILE replace FILE with Prometheus metrics of the run
      --summary-json      print one JSON line summing up the run on stdout
      --on-success CMD    run 'sh -c CMD' after a successful run
      --on-failure CMD    run 'sh -c CMD' after a failed run
  -h, --help              this help

An option that cannot apply to the locations given is refused (exit 2).
Exit status: 0 success, 1 failure, 2 usage error, 75 <dst> locked by
another run, 130 interrupted.

Locations: [btrfs://]/dir/[snapshot]  ssh://[user@]host[:port]/dir/[snapshot]
           s3://bucket/prefix/[snapshot]  file:///dir/[snapshot]
EOF
}

die() {
	printf '%s: error: %s\n' "$prog" "$1" >&2
	[ $# -gt 1 ] && printf '%s: hint: %s\n' "$prog" "$2" >&2
	exit "${3:-2}"
}

# Options are collected per stage. No option value is ever evaluated by a
# shell: each value is stored in a variable of its own (v1, v2, ...) and a
# stage's list holds only references to them ("$v1" "$v2"), so that
# eval "set -- $list" expands to exactly the values given, whatever they
# hold ($(...), backquotes, quotes, ;, newlines, globs, leading dashes).
common="" plan_opts="" put_opts="" get_opts="" remote_opts="" s3_opts="" lock_opts=""
dry=0 delete=0 prune=0 quiet=0 nv=0
# Options that apply only to some locations: the first one given of each
# class, checked once the locations are known.
put_opt="" part_opt="" archive_opt="" get_opt="" chain_opt="" estimate_opt="" tz_opt="" schedule_opt=""
ssh_opt="" s3_opt="" plan_opt="" resume_opt="" store_opt="" now_opt=""
conc_opts="" report_opts="" report_opt="" on_success="" on_failure="" metrics_file="" stats_opts=""
add() { # add LIST VALUE
	nv=$((nv + 1))
	eval "v$nv=\$2"
	eval "$1=\"\$$1 \\\"\\\$v$nv\\\"\""
}
first() { # first VAR OPTION: remember OPTION as the first of its class
	eval "[ -n \"\$$1\" ] || $1=\$2"
}

need_arg() { [ $# -ge 2 ] || die "option $1 needs a value" "see buttersink --help"; }

while [ $# -gt 0 ]; do
	case $1 in
	--part-size=* | --max-object-size=* | --age-recipient=* | --age-recipients-file=* | --filter=* | --age-identity=* | --unfilter=* | \
		--schedule=* | --tz=* | --now=* | --max-chain=* | --ssh=* | --profile=* | --endpoint-url=* | --region=* | \
		--wait-timeout=* | --storage-class=* | --sse=* | --object-lock=* | --restore-tier=* | --restore-days=* | --concurrency=* | --chunk-size=* | \
		--metrics-file=* | --on-success=* | --on-failure=*)
		# --opt=value is --opt value.
		o=${1%%=*} v=${1#*=}
		shift
		set -- "$o" "$v" "$@"
		continue ;;
	-h | --help) usage; exit 0 ;;
	-V | --version)
		v=$(bsplan --version 2>/dev/null) || die "bsplan not found on PATH" "install buttersink's commands" 1
		echo "buttersink ${v#bsplan }"
		exit 0 ;;
	-n | --dry-run) dry=1; first plan_opt "$1" ;;
	-d | --delete) delete=1; first plan_opt "$1"; add plan_opts --delete ;;
	-e | --estimate) first plan_opt "$1"; first estimate_opt "$1"; add plan_opts --estimate ;;
	-q | --quiet) quiet=$((quiet + 1)); add common -q ;;
	-qq) quiet=$((quiet + 2)); add common -q; add common -q ;;
	-v | --verbose) add common -v ;;
	--progress | --progress-interval) need_arg "$@"; add common "$1=$2"; shift ;;
	--progress=* | --progress-interval=*) add common "$1" ;;
	-vv) add common -v; add common -v ;;
	-l | --logfile | --log) need_arg "$@"; add common "--log=$2"; shift ;;
	--logfile=* | --log=*) add common "--log=${1#*=}" ;;
	--part-size) need_arg "$@"; p=$2; shift
		case $p in *[!0-9]* | "") ;; *) p=${p}MiB ;; esac
		first plan_opt --part-size; first part_opt --part-size
		add put_opts "--part-size=$p" ;;
	--max-object-size) need_arg "$@"; first plan_opt "$1"; first put_opt "$1"; add put_opts "$1=$2"; shift ;;
	--storage-class | --sse | --object-lock)
		need_arg "$@"; first plan_opt "$1"; first part_opt "$1"; add put_opts "$1=$2"; shift ;;
	--restore-tier | --restore-days)
		need_arg "$@"; first plan_opt "$1"; first archive_opt "$1"; add get_opts "$1=$2"; shift ;;
	-j | --concurrency) need_arg "$@"; first plan_opt "$1"; first store_opt "$1"; add conc_opts "--concurrency=$2"; shift ;;
	-j[0-9]*) first plan_opt -j; first store_opt -j; add conc_opts "--concurrency=${1#-j}" ;;
	--chunk-size) need_arg "$@"; first plan_opt "$1"; first get_opt "$1"; add get_opts "$1=$2"; shift ;;
	--zstd | --zstd=*) first plan_opt "${1%%=*}"; first put_opt "${1%%=*}"; add put_opts "$1" ;;
	-r | --age-recipient | -R | --age-recipients-file | --filter)
		need_arg "$@"; first plan_opt "$1"; first put_opt "$1"
		case $1 in -r) o=--age-recipient ;; -R) o=--age-recipients-file ;; *) o=$1 ;; esac
		add put_opts "$o=$2"; shift ;;
	-i | --age-identity) need_arg "$@"; first plan_opt "$1"; first get_opt "$1"; add get_opts "--age-identity=$2"; shift ;;
	--unfilter) need_arg "$@"; first plan_opt "$1"; first get_opt "$1"; add get_opts "--filter=$2"; shift ;;
	--schedule) need_arg "$@"; first plan_opt "$1"; schedule_opt=$1; add plan_opts "$1=$2"; shift ;;
	--tz) need_arg "$@"; first plan_opt "$1"; tz_opt=$1; add plan_opts "$1=$2"; shift ;;
	--now) need_arg "$@"; first plan_opt "$1"; now_opt=$1; add plan_opts "$1=$2"; shift ;;
	--allow-empty-source) first plan_opt "$1"; add plan_opts "$1" ;;
	--max-chain) need_arg "$@"; first plan_opt "$1"; chain_opt=$1; add plan_opts "$1=$2"; shift ;;
	--prune) prune=1; first plan_opt "$1"; add plan_opts --prune ;;
	--no-resume) first plan_opt "$1"; resume_opt=$1; add plan_opts --no-resume ;;
	--ssh) need_arg "$@"; first ssh_opt "$1"; add remote_opts "--ssh=$2"; shift ;;
	--sudo) first ssh_opt "$1"; add remote_opts --sudo ;;
	--profile | --endpoint-url | --region) need_arg "$@"; first s3_opt "$1"; add s3_opts "$1=$2"; shift ;;
	--path-style) first s3_opt "$1"; add s3_opts "$1" ;;
	--wait) add lock_opts --wait ;;
	--wait-timeout) need_arg "$@"; add lock_opts "--wait-timeout=$2"; shift ;;
	--metrics-file) need_arg "$@"; first plan_opt "$1"; first report_opt "$1"; metrics_file=$2; add report_opts "$1=$2"; shift ;;
	--summary-json) first plan_opt "$1"; first report_opt "$1"; add report_opts "$1" ;;
	--on-success) need_arg "$@"; first plan_opt "$1"; first report_opt "$1"; on_success=$2; shift ;;
	--on-failure) need_arg "$@"; first plan_opt "$1"; first report_opt "$1"; on_failure=$2; shift ;;
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

# scheme LOCATION: btrfs, ssh, s3 or file.
scheme() {
	case $1 in
	s3://*) echo s3 ;;
	file://*) echo file ;;
	ssh://*) echo ssh ;;
	*) echo btrfs ;;
	esac
}
kind() {
	case $(scheme "$1") in
	s3 | file) echo store ;;
	*) echo btrfs ;;
	esac
}

# Options that cannot apply to these locations are refused, never ignored
# (an ignored --age-recipient would store a backup unencrypted).
inapplicable() { die "$1 $2"; }
dst_scheme=$(scheme "$dst")
src_scheme=""
[ -z "$src" ] || src_scheme=$(scheme "$src")
if [ -z "$src" ]; then
	[ -z "$plan_opt" ] || inapplicable "$plan_opt" "needs a <src>: with only <dst>, buttersink lists it"
fi
[ -z "$put_opt" ] || [ "$(kind "$dst")" = store ] ||
	inapplicable "$put_opt" "applies only to an s3:// or file:// destination, not $dst"
[ -z "$part_opt" ] || [ "$dst_scheme" = s3 ] ||
	inapplicable "$part_opt" "applies only to an s3:// destination, not $dst"
[ -z "$chain_opt" ] || [ "$(kind "$dst")" = store ] ||
	inapplicable "$chain_opt" "applies only to an s3:// or file:// destination, not $dst"
[ -z "$archive_opt" ] || [ "$src_scheme" = s3 ] ||
	inapplicable "$archive_opt" "applies only to an s3:// source, not $src"
[ -z "$get_opt" ] || [ "$(kind "$src")" = store ] ||
	inapplicable "$get_opt" "applies only to an s3:// or file:// source, not $src"
[ -z "$estimate_opt" ] || [ "$(kind "$src")" = btrfs ] ||
	inapplicable "$estimate_opt" "applies only to a btrfs or ssh source (object sizes are exact), not $src"
[ -z "$resume_opt" ] || { [ "$(kind "$src")" = btrfs ] && [ "$(kind "$dst")" = btrfs ]; } ||
	inapplicable "$resume_opt" "applies only from a btrfs or ssh source to a btrfs or ssh destination"
[ -z "$tz_opt" ] || [ -n "$schedule_opt" ] ||
	inapplicable "$tz_opt" "applies only with --schedule"
[ -z "$now_opt" ] || [ -n "$schedule_opt" ] ||
	inapplicable "$now_opt" "applies only with --schedule"
[ -z "$store_opt" ] || [ "$(kind "$dst")" = store ] || [ "$(kind "$src")" = store ] ||
	inapplicable "$store_opt" "applies only to an s3:// or file:// location"
[ -z "$report_opt" ] || [ "$dry" = 0 ] ||
	inapplicable "$report_opt" "does not go with --dry-run: a dry run is not a run to report"
[ -z "$ssh_opt" ] || [ "$dst_scheme" = ssh ] || [ "$src_scheme" = ssh ] ||
	inapplicable "$ssh_opt" "applies only to ssh:// locations"
[ -z "$s3_opt" ] || [ "$dst_scheme" = s3 ] || [ "$src_scheme" = s3 ] ||
	inapplicable "$s3_opt" "applies only to s3:// locations"

if [ -z "$src" ]; then
	case $dst in s3://* | file://*) eval "set -- $common $s3_opts" ;; *) eval "set -- $common $remote_opts" ;; esac
	exec bsls "$@" -- "$dst"
fi

# The destination is always a directory, as in the original.
case $dst in */) ;; *) dst=$dst/ ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/buttersink.XXXXXX") || die "cannot make a temporary directory" "" 1
pids=""
start=$(date +%s)
# The stages that count (bsplan, the writer, bsrm) append a line each to
# one stats file; bsplan --report makes the metrics and the summary of
# them (lib/metrics), so that their format lives in one place.
[ -z "$report_opt" ] || add stats_opts "--stats-file=$tmp/stats"
warn() { printf '%s: warning: %s\n' "$prog" "$1" >&2; }
# hook CMD STATUS: the hook sees the run only through its environment, so
# that no location or value is ever part of a command line a shell reads.
hook() {
	BUTTERSINK_EXIT_STATUS=$2 BUTTERSINK_DURATION=$(($(date +%s) - start)) \
		BUTTERSINK_DESTINATION=$dst BUTTERSINK_METRICS_FILE=$metrics_file \
		sh -c "$1" </dev/null >&2 || warn "hook exited with status $?"
}
finish() {
	status=$?
	for p in $pids; do kill "$p" 2>/dev/null; done
	if [ -n "$report_opt" ]; then
		eval "set -- $common $report_opts"
		bsplan --report="$status" --stats-file="$tmp/stats" "$@" -- "$src" "$dst" ||
			warn "the run was not reported (bsplan --report exit $?)"
		if [ "$status" -eq 0 ]; then
			[ -z "$on_success" ] || hook "$on_success" "$status"
		else
			[ -z "$on_failure" ] || hook "$on_failure" "$status"
		fi
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# 1. Plan.
eval "set -- $common $remote_opts $s3_opts $plan_opts"
if [ "$dry" = 1 ]; then
	exec bsplan --dry-run "$@" -- "$src" "$dst"
fi
eval "set -- $common $remote_opts $s3_opts $plan_opts $stats_opts"
bsplan "$@" -- "$src" "$dst" >"$tmp/plan" || exit $?

# Steps are split by op: sends first, deletes only after every send landed.
grep '^{"op":"send"' "$tmp/plan" >"$tmp/send" || :
grep '^{"op":"delete"' "$tmp/plan" >"$tmp/delete" || :

# 2. Transfer: reader | writer, each waited for on its own.
if [ -s "$tmp/send" ]; then
	if [ "$(kind "$src")" = store ]; then
		reader=bss3get
		eval "set -- $common $s3_opts $get_opts $conc_opts"
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
		eval "set -- $common $s3_opts $put_opts $conc_opts $lock_opts $stats_opts"
	else
		writer=bsrecv
		eval "set -- $common $remote_opts $lock_opts $stats_opts"
	fi
	"$writer" "$@" -- "$dst" <"$tmp/stream" >"$tmp/done"
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
	case $dst in s3://* | file://*) eval "set -- $common $s3_opts $lock_opts $stats_opts" ;; *) eval "set -- $common $remote_opts $lock_opts $stats_opts" ;; esac
	bsrm "$@" -- "$dst" <"$tmp/delete" >/dev/null || exit $?
	if [ "$quiet" -eq 0 ]; then
		printf '%s: %s deleted from %s\n' "$prog" "$(grep -c . "$tmp/delete")" "$dst" >&2
	fi
fi
exit 0
