#!/bin/sh
# bench ssh: push one snapshot over ssh to 127.0.0.1, in the same run:
#   bs:    bssend SNAP | bsrecv ssh://root@127.0.0.1:PORT/DST/
#   peer:  btrfs send SNAP | ssh root@127.0.0.1 btrfs receive DST/
# and, to show what the ssh layer itself costs (lib/remote), the same bs
# commands joined by hand:
#   plain: bssend SNAP | ssh root@127.0.0.1 bsrecv DST/
# The snapshot holds 1 GiB of file data (8 files of 128 MiB) and 10,000
# small files; BENCH_QUICK=1: 64 MiB and 1,000 files. This script starts its
# own sshd (throwaway keys, a free port) and loop btrfs filesystems, and
# removes them on exit. Caches are dropped before every run; each side runs
# twice, in alternating order, and the faster run counts. A pipe's time is
# its slower side; bs_rss is the larger of bssend and the local bsrecv
# (with its ssh), peer_rss that of btrfs send and ssh.
# Target: ratio <= 1.05.
# Commands come from $BS_BIN, else ./bin (make build). Root needed.
set -eu

. "$(dirname "$0")/lib.sh"
bench_init ssh bssend bsrecv btrfs ssh /usr/bin/time /usr/sbin/sshd

if [ "${BENCH_QUICK:-}" = 1 ]; then
	nbig=4 bigmib=16 nsmall=1000 fsmib=1024
else
	nbig=8 bigmib=128 nsmall=10000 fsmib=3072
fi

bench_fs src "$fsmib"
bench_fs dst "$fsmib"
src=$work/src dst=$work/dst

# sshd on a free port, root by key only; sessions find the bs commands.
# SHLVL=1 keeps bash from sourcing ~/.bashrc in each session.
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + $$ % 20000)))
cat >"$work/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile none
PermitRootLogin prohibit-password
AuthorizedKeysFile $work/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
SetEnv PATH=$bin:/usr/sbin:/usr/bin:/sbin:/bin SHLVL=1
EOF
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
bench_on_exit "kill $! 2>/dev/null"
BS_SSH="ssh -F /dev/null -i $work/id -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=accept-new -o LogLevel=ERROR"
export BS_SSH
i=0
until $BS_SSH -p "$port" root@127.0.0.1 true 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "bench ssh: sshd did not start:" >&2; cat "$work/sshd.log" >&2; exit 1; }
	sleep 0.1
done
url=ssh://root@127.0.0.1:$port

btrfs -q subvolume create "$src/vol"
i=0
while [ "$i" -lt "$nbig" ]; do
	head -c "${bigmib}M" /dev/urandom >"$src/vol/big$i"
	i=$((i + 1))
done
mkdir "$src/vol/small"
i=0
while [ "$i" -lt "$nsmall" ]; do
	echo "small file $i" >"$src/vol/small/f$i"
	i=$((i + 1))
done
btrfs -q subvolume snapshot -r "$src/vol" "$src/snap"
btrfs filesystem sync "$src"

clean_dst() {
	if [ -e "$dst/snap" ]; then btrfs -q subvolume delete "$dst/snap"; fi
	btrfs -q subvolume sync "$dst"
}

run() { # bs|peer -> "secs kib"
	clean_dst
	bench_drop
	if [ "$1" = bs ]; then
		/usr/bin/time -f '%e %M' -o "$work/t1" bssend "$src/snap" |
			/usr/bin/time -f '%e %M' -o "$work/t2" bsrecv "$url$dst/" >/dev/null
	elif [ "$1" = plain ]; then
		/usr/bin/time -f '%e %M' -o "$work/t1" bssend "$src/snap" |
			/usr/bin/time -f '%e %M' -o "$work/t2" $BS_SSH -p "$port" root@127.0.0.1 bsrecv "$dst/" >/dev/null
	else
		/usr/bin/time -f '%e %M' -o "$work/t1" btrfs send -q "$src/snap" |
			/usr/bin/time -f '%e %M' -o "$work/t2" $BS_SSH -p "$port" root@127.0.0.1 btrfs receive -q "$dst/"
	fi
	[ -e "$dst/snap" ] || { echo "bench ssh: nothing received" >&2; exit 1; }
	awk '{ if ($1 > s) s = $1; if ($2 > m) m = $2 } END { print s, m }' "$work/t1" "$work/t2"
}

b1=$(run bs)
p1=$(run peer)
m1=$(run plain)
m2=$(run plain)
p2=$(run peer)
b2=$(run bs)
bench_report ssh-push "$(bench_best "$b1" "$b2")" "$(bench_best "$p1" "$p2")"
# peer here: the same bs commands joined by a hand-written ssh.
bench_report ssh-layer "$(bench_best "$b1" "$b2")" "$(bench_best "$m1" "$m2")"

# The copy received by the bs side (it ran last) must be the snapshot.
if ! diff -r "$src/snap" "$dst/snap" >/dev/null; then
	echo "bench ssh: received tree differs from the source" >&2
	exit 1
fi
