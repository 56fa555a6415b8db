#!/bin/bash
# A stage of your own: any command reading stdin and writing stdout can
# encode objects. Here gpg encrypts to a public key on the way in and
# decrypts on the way out; the stage is recorded in each object's key so a
# listing shows what it takes to read it back. pipefail: any failing stage
# fails the script.
#
#   gpg-stage.sh backup  /mnt/pool/snaps/ s3://my-backups/host1/ KEYID
#   gpg-stage.sh restore s3://my-backups/host1/ /mnt/new/snaps/
set -euo pipefail
case ${1:-} in
backup)
	[ $# -eq 4 ] || { echo "usage: gpg-stage.sh backup SRC/ DEST/ KEYID" >&2; exit 2; }
	# The key id becomes part of a command that bss3put runs with sh -c:
	# only characters that mean nothing to a shell.
	case $4 in
	"" | -* | *[!A-Za-z0-9@._+-]*) echo "gpg-stage.sh: bad KEYID: $4" >&2; exit 2 ;;
	esac
	bsplan -- "$2" "$3" | bssend | bss3put --filter="gpg --batch --yes --trust-model always --encrypt --recipient $4" -- "$3"
	;;
restore)
	[ $# -eq 3 ] || { echo "usage: gpg-stage.sh restore SRC DEST/" >&2; exit 2; }
	bsplan -- "$2" "$3" | bss3get --filter="gpg --batch --quiet --decrypt" | bsrecv -- "$3"
	;;
*)
	echo "usage: gpg-stage.sh backup|restore ..." >&2
	exit 2
	;;
esac
