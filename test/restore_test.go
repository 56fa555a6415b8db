package test

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// restoreChain is plainChain with a fifth snapshot (a clone across
// files into a new one, a rename, a new hard link, a directory removed)
// ($SRC/s1..s5), all of them backed up by bsplan | bssend |
// bss3put -r into an age-encrypted file:// store. It returns the source,
// the store's objects in chain order (full first) and the key file,
// readable by any user.
func restoreChain(t *testing.T) (src string, objs []string, key string) {
	t.Helper()
	harness.RequireCommand(t, "age-keygen")
	src = plainChain(t)
	// Where any user can reach them.
	shared, err := os.MkdirTemp("", "bs-restore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	os.Chmod(shared, 0o755)
	store, keys := filepath.Join(shared, "store"), filepath.Join(shared, "keys")
	harness.MustSh(t, `cd "$SRC"
		chmod u+w vol/ro && rm -r vol/ro
		cp --reflink=always vol/other vol/moved/other-clone && mv vol/data-clone vol/renamed
		ln vol/sparse vol/moved/sparse-link
		btrfs -q subvolume snapshot -r vol s5
		mkdir "$STORE" "$KEYS"
		age-keygen -o "$KEYS/key" 2>/dev/null
		bsplan "$SRC/" "file://$STORE/" | bssend | bss3put -r "$(age-keygen -y "$KEYS/key")" "file://$STORE/" > "$KEYS/put"
		chmod -R a+rX "$STORE" "$KEYS"`, "SRC="+src, "STORE="+store, "KEYS="+keys)
	out, err := os.ReadFile(filepath.Join(keys, "put"))
	if err != nil {
		t.Fatal(err)
	}
	recs := objRecords(t, string(out))
	if len(recs) != 5 {
		t.Fatalf("bss3put printed %d records, want 5:\n%s", len(recs), out)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
	for i, r := range recs {
		if want := "s" + strconv.Itoa(i+1); !strings.HasSuffix(r.Path, want) {
			t.Fatalf("record %d is %s, want %s", i, r.Path, want)
		}
		if (i == 0) != r.SendParentUUID.IsZero() {
			t.Fatalf("%s: send parent %v; want a full stream first, then incrementals", r.Path, r.SendParentUUID)
		}
		objs = append(objs, "file://"+store+"/"+r.Key)
	}
	return src, objs, filepath.Join(keys, "key")
}

// restoreBin is plainBin with bss3get too.
func restoreBin(t *testing.T) string {
	t.Helper()
	bin := plainBin(t)
	b, err := os.ReadFile(filepath.Join(harness.Bin(t), "bss3get"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "bss3get"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// restoreSame is a shell function: same SRC DST [owners|-] [shared]
// fails unless checksumdir --portable of DST equals checksumdir of its
// btrfs source SRC. Without "owners" the uid and gid columns are blanked
// and the device "null" left out (a user cannot give files away or make
// devices: bsrecv makes an empty file in its place and says so); with
// "shared" the link counts are blanked (a mirror's unchanged files are
// hard links to its other snapshots').
const restoreSame = `same() {
	a=$(mktemp -d) b=$(mktemp -d)
	(cd "$a" && checksumdir -q "$1") && (cd "$b" && checksumdir -q --portable "$2") || return 1
	n=$(basename "$1")
	if [ "${3:-}" = owners ] && [ -z "${4:-}" ]; then
		[ "$(basename "$2")" = "$n" ] && cmp "$a/$n.sha256sum" "$b/$n.sha256sum" && return 0
		diff "$a/$n.ls" "$b/$n.ls" >&2; diff "$a/$n.files" "$b/$n.files" >&2; return 1
	fi
	for d in "$a" "$b"; do
		awk -v owners="${3:-}" -v shared="${4:-}" 'owners == "owners" || $7 != "null" {
			if (owners != "owners") { $3 = "-"; $4 = "-" }
			if (shared != "") $2 = "-"
			print }' "$d/$n.ls" > "$d/ls"
		if [ "${3:-}" = owners ]; then cp "$d/$n.files" "$d/files"; else grep -v '  \./null$' "$d/$n.files" > "$d/files"; fi
	done
	diff "$a/ls" "$b/ls" >&2 && diff "$a/files" "$b/files" >&2
}
`

// TestRestoreAnywhere is issue 15's acceptance test. A chain of five
// snapshots, stored age-encrypted in a file:// store, is restored onto
// ext4 by bss3get -i KEY | bsrecv with no btrfs command on PATH, as
// root and as nobody: for each snapshot, received with --in-place from
// the chain up to it, checksumdir --portable gives the source's
// checksumdir exactly as root, and with the owner columns blanked as
// nobody (who cannot set them); the whole chain received into one
// dir:// mirror gives the same but for link counts (its unchanged files
// are hard links to its other snapshots'). Through bsrecv --tar (as nobody), tar -x
// (as root, which can set owners) of each snapshot's archive gives the
// same, and one file taken out with tar -x PATH is byte-identical.
func TestRestoreAnywhere(t *testing.T) {
	harness.RequireCommand(t, "setpriv")
	harness.RequireCommand(t, "tar")
	src, objs, key := restoreChain(t)
	bin := restoreBin(t)
	for _, user := range []string{"root", "nobody"} {
		t.Run(user, func(t *testing.T) {
			mnt := harness.Ext4(t, 300)
			os.Chmod(filepath.Dir(mnt), 0o755)
			os.Chmod(mnt, 0o777)
			as, owners := "", "owners"
			if user == "nobody" {
				as, owners = "setpriv --reuid=65534 --regid=65534 --clear-groups", "-"
			}
			script := restoreSame
			for k := 1; k <= len(objs); k++ {
				s := "s" + strconv.Itoa(k)
				prefix := strings.Join(objs[:k], " ")
				script += `
					mkdir "$M/` + s + `" && chown ` + user + ` "$M/` + s + `"
					$AS env -i PATH="$BIN" /bin/sh -c 'bss3get -i "$1" ` + prefix + ` | bsrecv -q --in-place "dir://$2/` + s + `/` + s + `"' - "$KEY" "$M" > /dev/null
					same "$SRC/` + s + `" "$M/` + s + `/` + s + `" ` + owners + ` || echo "` + s + ` DIFFERS"
					$AS env -i PATH="$BIN" /bin/sh -c 'bss3get -i "$1" ` + prefix + ` | bsrecv --tar --tmpdir "$2"' - "$KEY" "$M" > "$M/` + s + `.tar"
					mkdir "$M/tar-` + s + `" && tar -x --xattrs --xattrs-include='*' --numeric-owner -p -f "$M/` + s + `.tar" -C "$M/tar-` + s + `"
					same "$SRC/` + s + `" "$M/tar-` + s + `/` + s + `" owners || echo "tar ` + s + ` DIFFERS"
					one=$(mktemp -d) && tar -x -f "$M/` + s + `.tar" -C "$one" ` + s + `/data
					cmp "$one/` + s + `/data" "$SRC/` + s + `/data" || echo "tar ` + s + `/data DIFFERS"
				`
			}
			// The whole chain into one mirror.
			script += `
				mkdir "$M/mirror" && chown ` + user + ` "$M/mirror"
				$AS env -i PATH="$BIN" /bin/sh -c 'bss3get -i "$1" ` + strings.Join(objs, " ") + ` | bsrecv -q "dir://$2/mirror/"' - "$KEY" "$M" > /dev/null
				for s in s1 s2 s3 s4 s5; do same "$SRC/$s" "$M/mirror/$s" ` + owners + ` shared || echo "mirror $s DIFFERS"; done
				one=$(mktemp -d) && tar -x -f "$M/s5.tar" -C "$one" s5/moved/other-clone
				cmp "$one/s5/moved/other-clone" "$SRC/s5/other"
				tar -x -f "$M/s4.tar" -C "$one" s4/sparse && cmp "$one/s4/sparse" "$SRC/s4/sparse"
				[ ! -e "$M/s5/s5/ro" ] && [ -d "$M/s3/s3/rep" ] && [ -f "$M/s2/s2/rep" ]`
			r := harness.Sh(t, script, "M="+mnt, "SRC="+src, "BIN="+bin, "AS="+as, "KEY="+key)
			if r.Code != 0 || strings.Contains(r.Stdout, "DIFFERS") {
				t.Fatalf("restore as %s: exit %d\n%s\n%s", user, r.Code, r.Stdout, r.Stderr)
			}
		})
	}
}
