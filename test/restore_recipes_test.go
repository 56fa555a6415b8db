package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// The recipes of buttersink-restore(7) run here as the page prints them,
// only the store, snapshot directory and digest paths pointed at the
// test's; their scripts in examples/ run beside them.

// recipes returns the literal blocks of each subsection of the page's
// EXAMPLES, unescaped, by subsection title.
func recipes(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.Root(), "man", "buttersink-restore.7"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n.Sh EXAMPLES\n")
	if !ok {
		t.Fatal("buttersink-restore.7 has no EXAMPLES")
	}
	sec, _, _ = strings.Cut(sec, "\n.Sh ")
	out := map[string][]string{}
	title, block, literal := "", "", false
	for _, l := range strings.Split(sec, "\n") {
		switch {
		case strings.HasPrefix(l, ".Ss "):
			title = strings.TrimPrefix(l, ".Ss ")
		case strings.HasPrefix(l, ".Bd -literal"):
			literal, block = true, ""
		case l == ".Ed":
			literal = false
			out[title] = append(out[title], strings.NewReplacer(`\e`, `\`, `\&`, "", `\-`, "-").Replace(block))
		case literal:
			block += l + "\n"
		}
	}
	return out
}

// recipe is the block of title with the page's paths replaced (old, new
// pairs); it fails the test unless the block has each of them.
func recipe(t *testing.T, title string, i int, repl ...string) string {
	t.Helper()
	blocks := recipes(t)[title]
	if i >= len(blocks) {
		t.Fatalf("buttersink-restore.7: %q has %d blocks, want block %d", title, len(blocks), i)
	}
	for j := 0; j < len(repl); j += 2 {
		if !strings.Contains(blocks[i], repl[j]) {
			t.Fatalf("buttersink-restore.7: %q no longer has %q:\n%s", title, repl[j], blocks[i])
		}
	}
	return "set -euo pipefail\n" + strings.NewReplacer(repl...).Replace(blocks[i])
}

// recipeSource makes snapshots named as in the page on loop btrfs: a chain
// home.2026-11-30 (full), home.2026-12-01 (renames, a deletion, a clone,
// hard links, a sparse file), and root.2026-12-01, a small root file
// system with owners and special modes.
func recipeSource(t *testing.T) string {
	t.Helper()
	mnt := harness.Btrfs(t, 512)
	harness.MustSh(t, `cd "$M"
		btrfs -q subvolume create home && mkdir -p snaps home/etc home/docs
		echo 'UUID=1 / ext4 defaults 0 1' > home/etc/fstab
		echo 'secret' > home/etc/shadow
		head -c 1M /dev/urandom > home/docs/big && ln home/docs/big home/docs/big.link
		truncate -s 8M home/docs/sparse && printf x | dd of=home/docs/sparse bs=1 seek=4M conv=notrunc 2>/dev/null
		ln -s ../etc/fstab home/docs/fstab.link
		chown -R 1000:1000 home/docs
		btrfs -q subvolume snapshot -r home snaps/home.2026-11-30
		echo 'UUID=2 /home ext4 defaults 0 2' >> home/etc/fstab
		mv home/docs/big home/docs/big2 && rm home/docs/fstab.link
		cp --reflink=always home/docs/big2 home/docs/clone && mkdir home/docs/big.link.d
		btrfs -q subvolume snapshot -r home snaps/home.2026-12-01
		btrfs -q subvolume create root && mkdir -p root/etc root/bin root/tmp root/var/spool
		echo host1 > root/etc/hostname && chmod 1777 root/tmp
		head -c 100K /dev/urandom > root/bin/tool && chown 0:42 root/bin/tool && chmod 4755 root/bin/tool
		chown 8:12 root/var/spool && ln -s ../bin/tool root/etc/tool
		btrfs -q subvolume snapshot -r root snaps/root.2026-12-01`, "M="+mnt)
	return mnt + "/snaps"
}

// storeEncrypted stores every snapshot of snaps, zstd and age, at dst and
// returns the identity file.
func storeEncrypted(t *testing.T, snaps, dst string, env ...string) string {
	t.Helper()
	harness.RequireCommand(t, "age-keygen")
	key := filepath.Join(t.TempDir(), "key.txt")
	harness.MustSh(t, `age-keygen -o "$KEY" 2>/dev/null
		buttersink -q --zstd --age-recipient "$(age-keygen -y "$KEY")" "$SNAPS/" "$DST"`,
		append(env, "KEY="+key, "SNAPS="+snaps, "DST="+dst)...)
	return key
}

// sameDigest fails the test unless checksumdir --portable gives a and b
// the same digest, showing how their listings differ.
func sameDigest(t *testing.T, a, b string) {
	t.Helper()
	r := harness.MustSh(t, `x=$(mktemp -d) y=$(mktemp -d)
		(cd "$x" && checksumdir --portable "$A") && (cd "$y" && checksumdir --portable "$B")
		diff "$x"/*.ls "$y"/*.ls && diff "$x"/*.files "$y"/*.files || echo DIFFERS
		rm -rf "$x" "$y"`, "A="+a, "B="+b)
	if strings.Contains(r.Stdout, "DIFFERS") {
		t.Errorf("%s and %s differ:\n%s", a, b, r.Stdout)
	}
}

// userBin is a directory nobody can use as its whole PATH: the commands
// named, the built ones copied, the others linked; btrfs is not there.
func userBin(t *testing.T, cmds ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bs-userbin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, c := range cmds {
		if b, err := os.ReadFile(filepath.Join(harness.Bin(t), c)); err == nil {
			if err := os.WriteFile(filepath.Join(dir, c), b, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		harness.MustSh(t, `ln -s "$(command -v "$C")" "$DIR/"`, "C="+c, "DIR="+dir)
	}
	os.Chmod(dir, 0o755)
	return dir
}

// TestRestoreRecipeOneFile: one file out of an age-encrypted chain in S3,
// as nobody, with no btrfs on PATH, by the page's recipe and by
// examples/restore-file.sh.
func TestRestoreRecipeOneFile(t *testing.T) {
	harness.RequireCommand(t, "tar")
	harness.RequireCommand(t, "setpriv")
	snaps := recipeSource(t)
	minio := harness.StartMinIO(t)
	store := "s3://" + minio.Bucket + "/host1/"
	key := storeEncrypted(t, snaps, store, minio.Env()...)
	bin := userBin(t, "bsplan", "bss3get", "bsrecv", "tar", "mkdir", "mktemp", "cp", "rm")
	// (t.TempDir's parent is private to root.)
	work, err := os.MkdirTemp("", "bs-laptop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o777)
	harness.MustSh(t, `cp "$KEY" "$W/key.txt" && chown nobody "$W/key.txt" && cp "$EX/restore-file.sh" "$BIN/" && chmod 755 "$BIN/restore-file.sh"`,
		"KEY="+key, "W="+work, "BIN="+bin, "EX="+examplesDir())
	asNobody := func(script string) harness.Result {
		env := append([]string{"W=" + work, "BIN=" + bin, "SCRIPT=" + script}, minio.Env()...)
		return harness.Sh(t, `cd "$W" && setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH="$BIN" HOME="$W" TMPDIR="$W" \
			AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" \
			AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent \
			/bin/bash -c "$SCRIPT"`, env...)
	}
	if r := asNobody("command -v btrfs"); r.Code == 0 {
		t.Fatalf("btrfs is on the restore's PATH: %s", r.Stdout)
	}
	script := recipe(t, "One file onto a laptop without btrfs", 0, "s3://my-backups/host1/", store)
	if r := asNobody(script); r.Code != 0 {
		t.Fatalf("recipe:\n%s\nexit %d: %s", script, r.Code, r.Stderr)
	}
	got := harness.MustSh(t, `cd "$W/restore" && find . -type f && cmp home.2026-12-01/etc/fstab "$SNAPS/home.2026-12-01/etc/fstab" && stat -c %U home.2026-12-01/etc/fstab`,
		"W="+work, "SNAPS="+snaps)
	if got.Stdout != "./home.2026-12-01/etc/fstab\nnobody\n" {
		t.Fatalf("restore/ holds, want the one file owned by nobody:\n%s", got.Stdout)
	}
	// The script: a directory and a sparse file.
	r := asNobody(`restore-file.sh ` + store + `home.2026-12-01 key.txt out/ /etc /docs/sparse`)
	if r.Code != 0 {
		t.Fatalf("restore-file.sh: exit %d: %s", r.Code, r.Stderr)
	}
	got = harness.MustSh(t, `cd "$W/out" && find . -type f | sort && cmp home.2026-12-01/docs/sparse "$SNAPS/home.2026-12-01/docs/sparse"`, "W="+work, "SNAPS="+snaps)
	if got.Stdout != "./home.2026-12-01/docs/sparse\n./home.2026-12-01/etc/fstab\n./home.2026-12-01/etc/shadow\n" {
		t.Fatalf("restore-file.sh extracted:\n%s", got.Stdout)
	}
	if left := harness.MustSh(t, `ls -A "$W" | grep -c bsrecv-tar || :`, "W="+work); strings.TrimSpace(left.Stdout) != "0" {
		t.Fatal("a temporary directory of bsrecv --tar was left")
	}
}

// TestRestoreRecipeContainer: the page's container recipe as root; what
// is not installed here (systemd-nspawn, podman) is a stand-in that
// records what it got. The restored root file system equals the snapshot.
func TestRestoreRecipeContainer(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireCommand(t, "tar")
	snaps := recipeSource(t)
	store := "file://" + t.TempDir() + "/"
	key := storeEncrypted(t, snaps, store)
	work, fake := t.TempDir(), t.TempDir()
	stand := map[string]string{
		"systemd-nspawn": `printf '%s\n' "$@" > "$W/nspawn.args"`,
		"podman":         `[ "$1 $2" = "import -" ] && tar -t > "$W/podman.list" && echo "$3" > "$W/podman.name"`,
	}
	for name, body := range stand {
		if err := os.WriteFile(filepath.Join(fake, name), []byte("#!/bin/sh\nset -e\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	harness.MustSh(t, `cp "$KEY" "$W/key.txt"`, "KEY="+key, "W="+work)
	script := recipe(t, "A whole snapshot into a container", 0, "s3://my-backups/host1/", store)
	harness.MustSh(t, `cd "$W" && PATH="$FAKE:$PATH" && `+script, "W="+work, "FAKE="+fake)
	sameDigest(t, snaps+"/root.2026-12-01", work+"/rootfs")
	got := harness.MustSh(t, `cat "$W/nspawn.args"; sort "$W/podman.list" | head -3; cat "$W/podman.name"; stat -c '%a %u:%g' "$W/rootfs/bin/tool" "$W/rootfs/tmp"`, "W="+work)
	if want := "-D\nrootfs\n./\n./bin/\n./bin/tool\nhost1-root:2026-12-01\n4755 0:42\n1777 0:0\n"; got.Stdout != want {
		t.Fatalf("container recipe gave\n%s\nwant\n%s", got.Stdout, want)
	}
	// The script, into a directory of its own; a second run refuses the
	// non-empty root.
	ex := fmt.Sprintf(`bash %s/restore-container.sh %sroot.2026-12-01 %s %s/r2/`, examplesDir(), store, key, work)
	harness.MustSh(t, ex)
	sameDigest(t, snaps+"/root.2026-12-01", work+"/r2")
	if r := harness.Sh(t, ex); r.Code == 0 || !strings.Contains(r.Stderr, "not empty") {
		t.Fatalf("restore-container.sh into a non-empty root: exit %d: %s", r.Code, r.Stderr)
	}
}

// TestRestoreRecipeNASMirror: the page's mirror pipeline onto an ext4 NAS,
// then its cron line (which runs examples/nas-mirror.sh) after a new
// snapshot, which is sent alone and as an incremental.
func TestRestoreRecipeNASMirror(t *testing.T) {
	harness.RequireCommand(t, "flock")
	harness.RequireCommand(t, "jq")
	snaps := recipeSource(t)
	nas := harness.Ext4(t, 256)
	mirror := nas + "/mirror"
	if err := os.Mkdir(mirror, 0o755); err != nil {
		t.Fatal(err)
	}
	title := "A nightly plain-directory mirror on a NAS"
	paths := []string{"/mnt/pool/snaps/", snaps + "/", "/mnt/nas/mirror/", mirror + "/"}
	harness.MustSh(t, recipe(t, title, 0, paths...))
	cronLine := strings.TrimSpace(recipes(t)[title][1])
	ex, err := os.ReadFile(filepath.Join(examplesDir(), "nas-mirror.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ex), "\n# "+cronLine+"\n") {
		t.Fatalf("examples/nas-mirror.sh does not carry the page's cron line %q", cronLine)
	}
	_, cmd, ok := strings.Cut(cronLine, " root ")
	if !ok {
		t.Fatalf("cron line %q has no user field", cronLine)
	}
	cmd = strings.NewReplacer(append(paths,
		"/run/buttersink-nas.lock", t.TempDir()+"/lock",
		"/usr/local/bin/nas-mirror.sh", filepath.Join(examplesDir(), "nas-mirror.sh"))...).Replace(cmd)

	harness.MustSh(t, `btrfs -q subvolume snapshot -r "$S/../home" "$S/home.2026-12-02"`, "S="+snaps)
	plan := harness.MustSh(t, fmt.Sprintf(`bsplan -q %s/ dir://%s/ | jq -c '[.snapshot.path, .parent.path]'`, snaps, mirror))
	if plan.Stdout != `["home.2026-12-02","home.2026-12-01"]`+"\n" {
		t.Fatalf("the second night plans, want one incremental:\n%s", plan.Stdout)
	}
	harness.MustSh(t, cmd)
	ls := harness.MustSh(t, fmt.Sprintf(`bsls dir://%s/ | jq -r '.kind + " " + .path'`, mirror))
	if want := "directory home.2026-11-30\ndirectory home.2026-12-01\ndirectory home.2026-12-02\ndirectory root.2026-12-01\n"; ls.Stdout != want {
		t.Fatalf("bsls of the mirror:\n%s\nwant\n%s", ls.Stdout, want)
	}
	// (Unchanged files are hard links between the mirror's snapshots:
	// link counts aside.)
	for _, s := range []string{"home.2026-11-30", "home.2026-12-01", "home.2026-12-02", "root.2026-12-01"} {
		plainChecksumdir(t, snaps+"/"+s, mirror+"/"+s, true)
	}
	if plan := harness.MustSh(t, fmt.Sprintf(`bsplan -q %s/ dir://%s/`, snaps, mirror)); plan.Stdout != "" {
		t.Fatalf("after the nightly run the plan is not empty:\n%s", plan.Stdout)
	}
}

// TestRestoreRecipeVerify: the page's digest at backup time, then its
// check of the stored chain restored on tmpfs-or-whatever /tmp is; and
// examples/verify-backup.sh, which finds a restore that differs.
func TestRestoreRecipeVerify(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireCommand(t, "tar")
	snaps := recipeSource(t)
	storeDir := t.TempDir()
	store := "file://" + storeDir + "/"
	key := storeEncrypted(t, snaps, store)
	work, digests := t.TempDir(), t.TempDir()
	harness.MustSh(t, `cp "$KEY" "$W/key.txt"`, "KEY="+key, "W="+work)
	title := "Verify a stored backup without btrfs"
	harness.MustSh(t, recipe(t, title, 0, "/var/lib/buttersink/digests", digests, "/mnt/pool/snaps/", snaps+"/"))
	check := recipe(t, title, 1, "s3://my-backups/host1/", store, "/var/lib/buttersink/digests", digests)
	r := harness.MustSh(t, `cd "$W" && `+check, "W="+work)
	if r.Stdout != "" {
		t.Fatalf("the check of an intact backup lists differences:\n%s", r.Stdout)
	}

	ex := filepath.Join(examplesDir(), "verify-backup.sh")
	harness.MustSh(t, fmt.Sprintf(`bash %s record %s/root.2026-12-01 %s/`, ex, snaps, digests))
	r = harness.MustSh(t, fmt.Sprintf(`bash %s check %sroot.2026-12-01 %s %s/`, ex, store, key, digests))
	if !strings.Contains(r.Stdout, "matches its digest") {
		t.Fatalf("verify-backup.sh check: %s", r.Stdout)
	}
	// A digest that does not match (another snapshot's, under this name):
	// the differences and exit 1.
	harness.MustSh(t, fmt.Sprintf(`bash %s record %s/home.2026-11-30 %s/`, ex, snaps, digests))
	harness.MustSh(t, `cd "$D" && for e in ls files sha256sum; do cp home.2026-11-30.$e x.$e; done
		sed -i 's/home.2026-11-30/home.2026-12-01/' x.sha256sum
		for e in ls files; do mv x.$e home.2026-12-01.$e; done; mv x.sha256sum home.2026-12-01.sha256sum`, "D="+digests)
	bad := harness.Sh(t, fmt.Sprintf(`bash %s check %shome.2026-12-01 %s %s/`, ex, store, key, digests))
	if bad.Code != 1 || !strings.Contains(bad.Stdout, "docs/clone") {
		t.Fatalf("verify-backup.sh against another snapshot's digest: exit %d\n%s\n%s", bad.Code, bad.Stdout, bad.Stderr)
	}
}

// TestRestoreRecipesFailingStage: each recipe script exits non-zero when
// any one of its stages fails, or the key is wrong, or an object of the
// chain is damaged, and then leaves no restored file behind.
func TestRestoreRecipesFailingStage(t *testing.T) {
	harness.RequireCommand(t, "tar")
	harness.RequireCommand(t, "flock")
	snaps := recipeSource(t)
	storeDir := t.TempDir()
	store := "file://" + storeDir + "/"
	key := storeEncrypted(t, snaps, store)
	wrong := filepath.Join(t.TempDir(), "wrong.txt")
	harness.MustSh(t, `age-keygen -o "$K" 2>/dev/null`, "K="+wrong)
	ex := examplesDir()
	check := func(what string, r harness.Result) {
		t.Helper()
		if r.Code == 0 {
			t.Errorf("%s: exit 0\nstdout:\n%s\nstderr:\n%s", what, r.Stdout, r.Stderr)
		}
	}
	noFiles := func(what, dir string) {
		t.Helper()
		if r := harness.MustSh(t, `[ ! -e "$D" ] || find "$D" -type f`, "D="+dir); r.Stdout != "" {
			t.Errorf("%s left files:\n%s", what, r.Stdout)
		}
	}
	type run struct {
		name, script string
		out          string
		stages       []string
	}
	digests := t.TempDir()
	harness.MustSh(t, fmt.Sprintf(`bash %s/verify-backup.sh record %s/home.2026-12-01 %s/`, ex, snaps, digests))
	out := t.TempDir()
	runs := []run{
		{"restore-file.sh", fmt.Sprintf(`bash %s/restore-file.sh %shome.2026-12-01 KEY %s/f/ /etc/fstab`, ex, store, out), out + "/f", []string{"bsplan", "bss3get", "bsrecv", "tar"}},
		{"restore-container.sh", fmt.Sprintf(`bash %s/restore-container.sh %sroot.2026-12-01 KEY %s/c/`, ex, store, out), out + "/c", []string{"bsplan", "bss3get", "bsrecv", "tar"}},
		{"verify-backup.sh check", fmt.Sprintf(`bash %s/verify-backup.sh check %shome.2026-12-01 KEY %s/`, ex, store, digests), "", []string{"bsplan", "bss3get", "bsrecv", "tar", "checksumdir"}},
	}
	for _, c := range runs {
		for _, stage := range c.stages {
			check(c.name+", "+stage+" failing", harness.Sh(t, strings.Replace(c.script, "KEY", key, 1), failStage(t, stage, "")))
			noFiles(c.name+", "+stage+" failing", c.out)
		}
		check(c.name+" with the wrong age key", harness.Sh(t, strings.Replace(c.script, "KEY", wrong, 1)))
		noFiles(c.name+" with the wrong age key", c.out)
	}
	// A damaged object: the last of home's chain, cut short.
	harness.MustSh(t, `f=$(ls "$S"/home.2026-12-01/*); truncate -s -64 "$f"`, "S="+storeDir)
	for _, c := range runs[:1] {
		check(c.name+" with a truncated object", harness.Sh(t, strings.Replace(c.script, "KEY", key, 1)))
		noFiles(c.name+" with a truncated object", c.out)
	}
	check("verify-backup.sh with a truncated object", harness.Sh(t, strings.Replace(runs[2].script, "KEY", key, 1)))

	mirror := t.TempDir()
	nas := fmt.Sprintf(`bash %s/nas-mirror.sh %s/ %s/`, ex, snaps, mirror)
	for _, stage := range []string{"bsplan", "bssend", "bsrecv"} {
		check("nas-mirror.sh, "+stage+" failing", harness.Sh(t, nas, failStage(t, stage, "")))
		if r := harness.MustSh(t, `bsls --all "dir://$M/"`, "M="+mirror); r.Stdout != "" {
			t.Errorf("nas-mirror.sh, %s failing, left:\n%s", stage, r.Stdout)
		}
	}
	harness.MustSh(t, nas)
	if r := harness.MustSh(t, `bsls "dir://$M/" | wc -l`, "M="+mirror); strings.TrimSpace(r.Stdout) != "3" {
		t.Errorf("nas-mirror.sh after the failures: %s snapshots", r.Stdout)
	}
}
