#!/bin/sh
# make bench: every benchmark script in this directory, one after another
# on the same machine, each comparing a bs command with its peer tool in
# the same run. Results are printed and kept in test/bench/out/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export BS_BIN="${BS_BIN:-$root/bin}"
export PATH="$BS_BIN:$PATH"
mkdir -p "$here/out"
out="$here/out/results-$(date +%Y%m%d-%H%M%S).txt"
{
	echo "# buttersink bench $(git -C "$root" describe --always --dirty 2>/dev/null) on $(uname -r), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
	grep -m1 'model name' /proc/cpuinfo
} | tee "$out"
status=0
for b in "$here"/*.sh; do
	case $(basename "$b") in run.sh | lib.sh) continue ;; esac
	echo "## $(basename "$b" .sh)" | tee -a "$out"
	# Each script runs under the shell its first line names.
	shell=$(sed -n '1s/^#! *//p' "$b")
	if ! { ${shell:-sh} "$b" 2>&1; echo "exit=$?" >"$here/out/.rc"; } | tee -a "$out" || [ "$(cat "$here/out/.rc")" != exit=0 ]; then
		status=1
	fi
done
echo "results in $out"
exit $status
