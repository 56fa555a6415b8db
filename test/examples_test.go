package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// The examples in examples/ are documentation users copy; each runs here
// against real loop btrfs, MinIO and sshd so that they keep working.

func examplesDir() string { return filepath.Join(harness.Root(), "examples") }

// makeSnapshots creates a subvolume with some data under mnt and n
// read-only snapshots of it in mnt/snaps, changing the data between them.
func makeSnapshots(t *testing.T, mnt string, n int) string {
	t.Helper()
	snaps := filepath.Join(mnt, "snaps")
	script := fmt.Sprintf(`
		mkdir -p %[2]s
		btrfs -q subvolume create %[1]s/data
		head -c 3M /dev/urandom > %[1]s/data/big.bin
		mkdir -p "%[1]s/data/dir with space/ünï"
		for i in $(seq 1 %[3]d); do
			seq $i 1000$i > "%[1]s/data/dir with space/ünï/file$i"
			head -c 200K /dev/urandom > %[1]s/data/chunk$i.bin
			btrfs -q subvolume snapshot -r %[1]s/data %[2]s/data.$i
		done`, mnt, snaps, n)
	harness.MustSh(t, script)
	return snaps
}

// sameTree fails the test unless the two snapshots have identical
// checksumdir digests (data and metadata).
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	r := harness.MustSh(t, fmt.Sprintf(`cd "$(mktemp -d)" && checksumdir --stdout %s | cut -d' ' -f1 && checksumdir --stdout %s | cut -d' ' -f1`, a, b))
	lines := strings.Fields(r.Stdout)
	if len(lines) != 2 || lines[0] != lines[1] {
		t.Fatalf("%s and %s differ: %q", a, b, r.Stdout)
	}
}

func TestExampleDemo(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireCommand(t, "age-keygen")
	r := harness.MustSh(t, "sh "+filepath.Join(examplesDir(), "demo.sh"))
	if !strings.Contains(r.Stdout, "demo: ok") || !strings.Contains(r.Stdout, "identical to the source") {
		t.Fatalf("demo did not report success:\n%s", r.Stdout)
	}
	if strings.Contains(r.Stdout+r.Stderr, "NOTE:") {
		t.Errorf("demo output carries mkfs noise:\n%s", r.Stdout)
	}
}

// The nightly S3 example, run by its cron line (flock included) twice,
// then restored with the restore example onto another filesystem.
func TestExampleNightlyS3AndRestore(t *testing.T) {
	src := harness.Btrfs(t, 512)
	dst := harness.Btrfs(t, 512)
	minio := harness.StartMinIO(t)
	harness.RequireCommand(t, "age-keygen")
	harness.RequireCommand(t, "flock")
	work := t.TempDir()
	harness.MustSh(t, fmt.Sprintf(`
		btrfs -q subvolume create %[1]s/home
		mkdir %[1]s/snaps
		head -c 2M /dev/urandom > %[1]s/home/a.bin
		age-keygen -o %[2]s/identity.txt 2>/dev/null
		age-keygen -y %[2]s/identity.txt > %[2]s/recipients.txt
		cat > %[2]s/backup.env <<EOF
SUBVOLUME=%[1]s/home
SNAPSHOTS=%[1]s/snaps
DEST=s3://%[3]s/host1/
AGE_RECIPIENTS=%[2]s/recipients.txt
MAX_CHAIN=8
EOF`, src, work, minio.Bucket))
	// The S3 settings come only from backup.env, as on a server: the cron
	// line must carry them to the commands.
	env := minio.Env()
	envFile, err := os.OpenFile(work+"/backup.env", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "AWS_") {
			fmt.Fprintf(envFile, "%s\n", kv)
		}
	}
	envFile.Close()
	// The cron line as shipped, pointed at the test's files.
	cmd := cronCommand(t, work)
	harness.MustSh(t, cmd)
	harness.MustSh(t, "echo more > "+src+"/home/b.txt")
	harness.MustSh(t, cmd)

	objs := harness.MustSh(t, fmt.Sprintf("bsls --json s3://%s/host1/", minio.Bucket), env...)
	if n := strings.Count(objs.Stdout, `"kind":"object"`); n != 2 {
		t.Fatalf("want 2 objects after two nightly runs, got %d:\n%s", n, objs.Stdout)
	}
	if strings.Count(objs.Stdout, `"encoding":"zstd.age"`) != 2 || !strings.Contains(objs.Stdout, `"send_parent_uuid"`) {
		t.Fatalf("want zstd.age objects, the second incremental:\n%s", objs.Stdout)
	}
	// A run while another holds the lock is skipped quietly: no new
	// snapshot, exit 0 (cron mails nothing).
	harness.MustSh(t, fmt.Sprintf("flock %s/lock sh -c %q", work, cmd))
	if n := strings.Count(harness.MustSh(t, "ls "+src+"/snaps").Stdout, "\n"); n != 2 {
		t.Fatalf("a locked-out run took a snapshot: %d snapshots", n)
	}

	harness.MustSh(t, fmt.Sprintf("bash %s/restore-s3.sh s3://%s/host1/ %s/snaps/ %s/identity.txt",
		examplesDir(), minio.Bucket, dst, work), env...)
	names := harness.MustSh(t, "ls "+src+"/snaps").Stdout
	for _, n := range strings.Fields(names) {
		sameTree(t, src+"/snaps/"+n, dst+"/snaps/"+n)
	}
	// The store decodes without buttersink: age -d | zstd -d | btrfs receive.
	raw := harness.MustSh(t, fmt.Sprintf(`aws s3 ls --recursive s3://%s/host1/ | awk '{print $4}' | grep '\.full\.'`, minio.Bucket), env...)
	key := strings.TrimSpace(raw.Stdout)
	harness.MustSh(t, fmt.Sprintf(`mkdir %[3]s/manual && aws s3 cp s3://%[1]s/%[2]s - | age -d -i %[4]s/identity.txt | zstd -dc | btrfs receive -q %[3]s/manual`,
		minio.Bucket, key, dst, work), env...)
}

// cronCommand is the command of the shipped cron line, pointed at the
// backup.env and lock in dir and at examples/nightly-s3/backup.sh.
func cronCommand(t *testing.T, dir string) string {
	t.Helper()
	cron, err := os.ReadFile(filepath.Join(examplesDir(), "nightly-s3", "crontab"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(cron), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			line = l
		}
	}
	_, cmd, ok := strings.Cut(line, " root ")
	if !ok {
		t.Fatalf("crontab line %q has no user field", line)
	}
	return strings.NewReplacer(
		"/etc/buttersink/backup.env", dir+"/backup.env",
		"/run/buttersink-backup.lock", dir+"/lock",
		"/usr/local/libexec/buttersink/buttersink-backup", filepath.Join(examplesDir(), "nightly-s3", "backup.sh"),
	).Replace(cmd)
}

func TestExampleScheduleAndPrune(t *testing.T) {
	src := harness.Btrfs(t, 512)
	snaps := makeSnapshots(t, src, 4)
	store := t.TempDir()
	for i := 0; i < 2; i++ {
		harness.MustSh(t, fmt.Sprintf("sh %s/schedule-prune.sh %s/ file://%s/ Europe/Berlin", examplesDir(), snaps, store))
	}
	r := harness.MustSh(t, fmt.Sprintf("bsls --json file://%s/", store))
	if !strings.Contains(r.Stdout, `"path":"data.4"`) {
		t.Fatalf("the newest snapshot is not stored:\n%s", r.Stdout)
	}
	plan := harness.MustSh(t, fmt.Sprintf("bsplan -n --schedule '1y 3m 30d 24h' --tz Europe/Berlin --prune %s/ file://%s/", snaps, store))
	if !strings.Contains(plan.Stderr, "Europe/Berlin") || !strings.Contains(plan.Stderr, "0 to send") {
		t.Fatalf("a rerun should plan nothing and name the zone: %s", plan.Stderr)
	}
}

func TestExampleTeeTwoDestinations(t *testing.T) {
	harness.RequireCommand(t, "bash")
	src := harness.Btrfs(t, 512)
	a := harness.Btrfs(t, 512)
	b := harness.Btrfs(t, 512)
	snaps := makeSnapshots(t, src, 3)
	harness.MustSh(t, fmt.Sprintf("bash %s/tee-two-destinations.sh %s/ %s/ %s/", examplesDir(), snaps, a, b))
	for _, d := range []string{a, b} {
		for i := 1; i <= 3; i++ {
			sameTree(t, fmt.Sprintf("%s/data.%d", snaps, i), fmt.Sprintf("%s/data.%d", d, i))
		}
	}
}

func TestExampleGPGStage(t *testing.T) {
	harness.RequireCommand(t, "gpg")
	src := harness.Btrfs(t, 512)
	dst := harness.Btrfs(t, 512)
	snaps := makeSnapshots(t, src, 2)
	store := t.TempDir()
	gnupg := t.TempDir()
	env := "GNUPGHOME=" + gnupg
	harness.MustSh(t, `gpg --batch --quiet --passphrase '' --quick-gen-key bs-test@example.invalid default default never 2>/dev/null`, env)
	harness.MustSh(t, fmt.Sprintf("bash %s/gpg-stage.sh backup %s/ file://%s/ bs-test@example.invalid", examplesDir(), snaps, store), env)
	// The stored objects are gpg messages, not raw streams.
	r := harness.MustSh(t, fmt.Sprintf(`for f in $(find %s -type f); do head -c 12 "$f" | grep -c btrfs-stream || :; done`, store))
	if strings.Contains(r.Stdout, "1") {
		t.Fatal("an object holds a raw, unencrypted stream")
	}
	harness.MustSh(t, fmt.Sprintf("bash %s/gpg-stage.sh restore file://%s/ %s/", examplesDir(), store, dst), env)
	for i := 1; i <= 2; i++ {
		sameTree(t, fmt.Sprintf("%s/data.%d", snaps, i), fmt.Sprintf("%s/data.%d", dst, i))
	}
}

func TestExampleVerify(t *testing.T) {
	src := harness.Btrfs(t, 512)
	dst := harness.Btrfs(t, 512)
	snaps := makeSnapshots(t, src, 2)
	harness.MustSh(t, fmt.Sprintf("bsplan %[1]s/ %[2]s/ | bssend | bsrecv %[2]s/", snaps, dst))
	r := harness.MustSh(t, fmt.Sprintf("sh %s/verify.sh %s/data.2 %s/data.2", examplesDir(), snaps, dst))
	if !strings.Contains(r.Stdout, "matches") {
		t.Fatalf("verify did not report a match: %s", r.Stdout)
	}
	// A different snapshot is reported, with exit 1.
	bad := harness.Sh(t, fmt.Sprintf("sh %s/verify.sh %s/data.2 %s/data.1", examplesDir(), snaps, dst))
	if bad.Code != 1 || bad.Stdout == "" {
		t.Fatalf("verify of differing trees: exit %d, stdout %q, stderr %q", bad.Code, bad.Stdout, bad.Stderr)
	}
}

// buttersink itself: the original's CLI over every pair of location kinds
// that needs no server, with a failing stage failing the run.
func TestButtersinkScript(t *testing.T) {
	src := harness.Btrfs(t, 512)
	dst := harness.Btrfs(t, 512)
	snaps := makeSnapshots(t, src, 3)
	store := t.TempDir()
	// list mode
	r := harness.MustSh(t, "buttersink "+snaps+"/")
	if strings.Count(r.Stdout, `"readonly":true`) != 3 {
		t.Fatalf("list mode: %s", r.Stdout)
	}
	// dry run changes nothing
	harness.MustSh(t, fmt.Sprintf("mkdir %s/copy && buttersink -n %s/ %s/copy/", dst, snaps, dst))
	if ls := harness.MustSh(t, "ls -A "+dst+"/copy"); ls.Stdout != "" {
		t.Fatalf("dry run wrote to the destination: %s", ls.Stdout)
	}
	harness.MustSh(t, fmt.Sprintf("buttersink -q %s/ %s/copy", snaps, dst))
	harness.MustSh(t, fmt.Sprintf("buttersink --zstd %s/ file://%s/", snaps, store))
	// A restore beside the copy, on one filesystem: bsrecv takes parents
	// below its destination only, whatever copies lie elsewhere.
	rst := dst
	harness.MustSh(t, fmt.Sprintf("mkdir %s/back && buttersink file://%s/ %s/back/", rst, store, rst))
	for i := 1; i <= 3; i++ {
		sameTree(t, fmt.Sprintf("%s/data.%d", snaps, i), fmt.Sprintf("%s/copy/data.%d", dst, i))
		sameTree(t, fmt.Sprintf("%s/data.%d", snaps, i), fmt.Sprintf("%s/back/data.%d", rst, i))
	}
	// store to store, then restored from the copy
	store2 := t.TempDir()
	rst2 := harness.Btrfs(t, 512)
	harness.MustSh(t, fmt.Sprintf("buttersink -q file://%s/ file://%s/ && mkdir %s/back2 && buttersink -q file://%s/ %s/back2/", store, store2, rst2, store2, rst2))
	sameTree(t, snaps+"/data.3", rst2+"/back2/data.3")
	// -d deletes what the source no longer has
	harness.MustSh(t, fmt.Sprintf("btrfs -q subvolume delete %s/data.1 && buttersink -d %s/ %s/copy/", snaps, snaps, dst))
	if _, err := os.Stat(dst + "/copy/data.1"); err == nil {
		t.Fatal("-d left data.1 at the destination")
	}
	// A failing stage fails the run with its message: the reader (bss3get)
	// fails on a corrupt object.
	harness.MustSh(t, fmt.Sprintf(`f=$(find %s -name '*.full.*' | head -1); printf 'X' | dd of="$f" bs=1 seek=4000 conv=notrunc 2>/dev/null`, store))
	harness.MustSh(t, "mkdir "+dst+"/bad")
	bad := harness.Sh(t, fmt.Sprintf("buttersink file://%s/ %s/bad/", store, dst))
	if bad.Code == 0 || !strings.Contains(bad.Stderr, "error:") {
		t.Fatalf("corrupt object: exit %d, stderr %q", bad.Code, bad.Stderr)
	}
	// bsrecv sees its input cut (bss3get stops at the corrupt command)
	// and keeps the partial for a resume: incomplete, never complete-looking.
	left := harness.MustSh(t, "bsls --all --json "+dst+"/bad/")
	for _, l := range strings.Split(strings.TrimSpace(left.Stdout), "\n") {
		if l != "" && (!strings.Contains(l, `"partial":true`) || !strings.Contains(l, `"readonly":false`) || !strings.Contains(l, `"received_uuid":null`)) {
			t.Fatalf("a failed restore left something that is not a partial receive: %s", l)
		}
	}
	// usage errors exit 2
	if u := harness.Sh(t, "buttersink --bogus x"); u.Code != 2 {
		t.Fatalf("unknown option: exit %d", u.Code)
	}
	if v := harness.MustSh(t, "buttersink -V"); !strings.HasPrefix(v.Stdout, "buttersink ") {
		t.Fatalf("-V: %q", v.Stdout)
	}
}

// The ssh example as its README sets it up: a non-root account whose key
// has the filter as forced command (with --sudo), and the README's sudoers
// lines; push, pull and prune through it. Only the paths differ: the
// commands are where the test built them, the backup is on loop btrfs.
func TestExampleSSHSudoers(t *testing.T) {
	harness.RequireCommand(t, "useradd")
	harness.RequireCommand(t, "sudo")
	harness.RequireCommand(t, "visudo")
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	bin := harness.Bin(t)
	src := harness.Btrfs(t, 512)
	backupFS := harness.Btrfs(t, 512)
	pulled := harness.Btrfs(t, 512)
	snaps := makeSnapshots(t, src, 3)
	backup := backupFS + "/backup"
	harness.MustSh(t, "mkdir "+backup)
	// The account reaches the backup directory and the filter (the
	// harness keeps its directories private to root).
	if err := os.Chmod(filepath.Dir(backupFS), 0o711); err != nil {
		t.Fatal(err)
	}
	filterDir, err := os.MkdirTemp("", "bs-filter-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filterDir) })
	harness.MustSh(t, fmt.Sprintf("chmod 755 %[1]s && install -m 0755 %[2]s/bs-ssh-filter %[1]s/", filterDir, examplesDir()))

	user := "bsbk" + strconv.Itoa(os.Getpid()%100000)
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "-p", "*", user).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", user).Run() })

	readme, err := os.ReadFile(filepath.Join(examplesDir(), "ssh", "README"))
	if err != nil {
		t.Fatal(err)
	}
	var sudoers, keyLine string
	for _, l := range strings.Split(string(readme), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "backup ALL=(root) NOPASSWD: "):
			sudoers += l + "\n"
		case strings.HasPrefix(l, `command="/usr/local/bin/bs-ssh-filter --read --append --delete `):
			keyLine = l
		}
	}
	if strings.Count(sudoers, "\n") != 3 || keyLine == "" {
		t.Fatalf("README lost its sudoers lines or the pruning key line:\n%s\n%s", sudoers, keyLine)
	}
	// sudo finds the commands through secure_path: where they are here.
	sudoers = "Defaults:" + user + " secure_path=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin\n" +
		strings.NewReplacer("backup ALL", user+" ALL", "/usr/local/bin/", bin+"/").Replace(sudoers)
	rules := "/etc/sudoers.d/bs-test-" + user
	if err := os.WriteFile(rules, []byte(sudoers), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(rules) })
	harness.MustSh(t, "visudo -c -q -f "+rules)

	// The README's key options, with --sudo added as step 3 says.
	options, _, _ := strings.Cut(keyLine, " ssh-ed25519 ")
	options = strings.NewReplacer(
		"/usr/local/bin/bs-ssh-filter", filterDir+"/bs-ssh-filter --sudo",
		"/srv/backup", backup,
	).Replace(options)
	env := []string{"BS_SSH=" + s.AddKey(t, options)}
	url := "ssh://" + user + "@127.0.0.1:" + strconv.Itoa(s.Port) + backup + "/"

	// Push, as step 4 shows; a second run has nothing to do.
	harness.MustSh(t, fmt.Sprintf(`bsplan -q %[1]s/ %[2]s | bssend | bsrecv %[2]s > /dev/null
		[ -z "$(bsplan -q %[1]s/ %[2]s)" ]`, snaps, url), env...)
	for i := 1; i <= 3; i++ {
		sameTree(t, fmt.Sprintf("%s/data.%d", snaps, i), fmt.Sprintf("%s/data.%d", backup, i))
	}
	// Pull back onto another filesystem.
	harness.MustSh(t, fmt.Sprintf(`bsplan -q %[1]s %[2]s/ | bssend | bsrecv %[2]s/ > /dev/null`, url, pulled), env...)
	sameTree(t, snaps+"/data.3", pulled+"/data.3")
	// Prune what the source no longer has.
	harness.MustSh(t, fmt.Sprintf(`btrfs -q subvolume delete %[1]s/data.1
		bsplan -q -d %[1]s/ %[2]s | bsrm %[2]s > /dev/null`, snaps, url), env...)
	if _, err := os.Stat(backup + "/data.1"); err == nil {
		t.Fatal("prune over ssh left data.1")
	}
	// The key cannot leave its directory, sudo or not.
	r := harness.Sh(t, fmt.Sprintf(`bsls ssh://%s@127.0.0.1:%d%s/`, user, s.Port, src), env...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "denied") {
		t.Fatalf("listing outside the granted path: exit %d\n%s", r.Code, r.Stderr)
	}
}

// failStage makes a directory holding a stand-in for command name that
// fails (reads its input, prints one error line, exits 1) when its
// arguments contain match ("" = always) and otherwise runs the real
// command. It returns the PATH entry to put first.
func failStage(t *testing.T, name, match string) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
case " $* " in
*` + quoteArgs([]string{match}) + `*)
	cat > /dev/null
	echo "` + name + `: error: injected failure" >&2
	exit 1 ;;
esac
PATH=${PATH#*:} exec ` + name + ` "$@"
`
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// buttersink runs the commands beside it before PATH's: a link to it
	// here has only the failing one beside it.
	if err := os.Symlink(filepath.Join(harness.Bin(t), "buttersink"), filepath.Join(dir, "buttersink")); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + harness.Bin(t) + ":" + os.Getenv("PATH")
}

// TestExamplesFailingStage: each example script exits non-zero when any
// one of its stages fails, even when the stages after it end cleanly on
// the (empty) input they got, and then leaves nothing behind.
func TestExamplesFailingStage(t *testing.T) {
	harness.RequireCommand(t, "age-keygen")
	src := harness.Btrfs(t, 256)
	dst := harness.Btrfs(t, 256)
	snaps := makeSnapshots(t, src, 2)
	store, keys := t.TempDir(), t.TempDir()
	harness.MustSh(t, fmt.Sprintf(`
		age-keygen -o %[1]s/id 2>/dev/null; age-keygen -o %[1]s/wrong 2>/dev/null
		buttersink -q --age-recipient "$(age-keygen -y %[1]s/id)" %[2]s/ file://%[3]s/`, keys, snaps, store))
	empty := func(dir string) {
		t.Helper()
		if r := harness.MustSh(t, "mkdir -p "+dir+" && bsls --all --json "+dir+"/"); r.Stdout != "" {
			t.Fatalf("a failed run left subvolumes at %s:\n%s", dir, r.Stdout)
		}
	}
	check := func(what string, r harness.Result) {
		t.Helper()
		if r.Code == 0 {
			t.Errorf("%s: exit 0\nstdout:\n%s\nstderr:\n%s", what, r.Stdout, r.Stderr)
		}
	}
	ex := examplesDir()

	restore := fmt.Sprintf("bash %s/restore-s3.sh file://%s/ %s/r/ %s/", ex, store, dst, keys)
	for _, stage := range []string{"bsplan", "bss3get", "bsrecv"} {
		check("restore-s3.sh, "+stage+" failing", harness.Sh(t, restore+"id", failStage(t, stage, "")))
		empty(dst + "/r")
	}
	check("restore-s3.sh with the wrong age key", harness.Sh(t, restore+"wrong"))
	empty(dst + "/r")
	harness.MustSh(t, restore+"id")
	sameTree(t, snaps+"/data.2", dst+"/r/data.2")

	// Both copies on one filesystem: each takes its parents from its own
	// directory.
	tfs := harness.Btrfs(t, 512)
	t1, t2 := tfs+"/t1", tfs+"/t2"
	tee := fmt.Sprintf("mkdir -p %[2]s %[3]s && bash %[1]s/tee-two-destinations.sh %[4]s/ %[2]s/ %[3]s/", ex, t1, t2, snaps)
	for _, f := range [][2]string{{"bsplan", ""}, {"bssend", ""}, {"tee", ""}, {"bsrecv", t1 + "/"}, {"bsrecv", t2 + "/"}} {
		check("tee-two-destinations.sh, "+f[0]+" "+f[1]+" failing", harness.Sh(t, tee, failStage(t, f[0], f[1])))
		// The receiver that did not fail may have completed snapshots;
		// nothing partial or writable may be left anywhere.
		for _, d := range []string{t1 + "/", t2 + "/"} {
			if r := harness.MustSh(t, `bsls --all --json `+d+` | jq -c 'select(.partial == true or .readonly == false)'`); r.Stdout != "" {
				t.Fatalf("tee-two-destinations.sh, %s %s failing, left at %s:\n%s", f[0], f[1], d, r.Stdout)
			}
			harness.MustSh(t, `for s in `+d+`*; do [ ! -d "$s" ] || btrfs -q subvolume delete "$s"; done`)
		}
	}
	harness.MustSh(t, tee)
	sameTree(t, snaps+"/data.2", t2+"/data.2")

	verify := fmt.Sprintf("bash %s/verify.sh %s/data.2 %s/r/data.2", ex, snaps, dst)
	check("verify.sh, checksumdir failing on the source", harness.Sh(t, verify, failStage(t, "checksumdir", snaps+"/data.2")))
	check("verify.sh, checksumdir --check failing", harness.Sh(t, verify, failStage(t, "checksumdir", "--check")))
	harness.MustSh(t, verify)

	// buttersink (and so schedule-prune.sh and the nightly backup.sh, which
	// exec it): every stage, with deletes planned.
	// A send (data.2, gone at the destination) and a delete (data.1, gone
	// at the source) planned.
	// (Beside r/, which holds an older copy of the chain.)
	bdst := dst
	harness.MustSh(t, fmt.Sprintf("mkdir %[2]s/b && buttersink -q %[1]s/ %[2]s/b/ && btrfs -q subvolume delete %[2]s/b/data.2 %[1]s/data.1", snaps, bdst))
	for _, stage := range []string{"bsplan", "bssend", "bsrecv", "bsrm"} {
		check("buttersink -d, "+stage+" failing", harness.Sh(t, fmt.Sprintf("buttersink -q -d %s/ %s/b/", snaps, bdst), failStage(t, stage, "")))
	}
	for _, stage := range []string{"bsplan", "bssend", "bss3put"} {
		check("schedule-prune.sh, "+stage+" failing", harness.Sh(t, fmt.Sprintf("sh %s/schedule-prune.sh %s/ file://%s/s/", ex, snaps, keys), failStage(t, stage, "")))
	}
}

// TestExampleNightlyVariables: every variable of backup.env reaches the
// commands through the shipped cron line, each value as one argument (a
// schedule with spaces, a value with shell syntax), and a failing
// buttersink fails the cron job.
func TestExampleNightlyVariables(t *testing.T) {
	harness.RequireCommand(t, "flock")
	work, bin := t.TempDir(), t.TempDir()
	rec := work + "/rec"
	if err := os.WriteFile(bin+"/buttersink", []byte(`#!/bin/sh
printf '%s\n' "$@" > `+rec+`
env | grep '^AWS_' | sort >> `+rec+`
exit ${BS_EXIT:-0}
`), 0o755); err != nil {
		t.Fatal(err)
	}
	env := `SNAPSHOTS=/mnt/pool/snaps
DEST=s3://my-backups/host1/
AGE_RECIPIENTS=/etc/buttersink/recipients.txt
MAX_CHAIN=5
SCHEDULE="1y 3m 30d 24h"
SCHEDULE_TZ='Europe/Berlin'
PRUNE=yes
METRICS_FILE=/var/lib/node_exporter/buttersink.prom
AWS_ENDPOINT_URL=https://s3.example.net
AWS_PROFILE=backup
`
	if err := os.WriteFile(work+"/backup.env", []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := cronCommand(t, work)
	// cron's environment: next to nothing.
	run := func(extra ...string) harness.Result {
		c := exec.Command("env", append(append([]string{"-i", "PATH=" + bin + ":/usr/bin:/bin"}, extra...), "sh", "-c", cmd)...)
		var out strings.Builder
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return harness.Result{Stderr: out.String(), Code: code}
	}
	if r := run(); r.Code != 0 {
		t.Fatalf("cron line: exit %d: %s", r.Code, r.Stderr)
	}
	got, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"-q", "--zstd", "--age-recipients-file", "/etc/buttersink/recipients.txt",
		"--max-chain", "5", "--schedule", "1y 3m 30d 24h", "--tz", "Europe/Berlin", "--prune",
		"--metrics-file", "/var/lib/node_exporter/buttersink.prom",
		"/mnt/pool/snaps/", "s3://my-backups/host1/",
		"AWS_ENDPOINT_URL=https://s3.example.net", "AWS_PROFILE=backup"}, "\n") + "\n"
	if string(got) != want {
		t.Fatalf("buttersink got:\n%s\nwant:\n%s", got, want)
	}
	if r := run("BS_EXIT=1"); r.Code == 0 {
		t.Fatal("the cron job exits 0 when buttersink fails")
	}
	// A value is never split or evaluated.
	sentinel := work + "/sentinel"
	env2 := strings.Replace(env, `SCHEDULE="1y 3m 30d 24h"`, `SCHEDULE='1y $(touch `+sentinel+`) *'`, 1)
	if err := os.WriteFile(work+"/backup.env", []byte(env2), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(); r.Code != 0 {
		t.Fatalf("cron line: exit %d: %s", r.Code, r.Stderr)
	}
	if got, _ := os.ReadFile(rec); !strings.Contains(string(got), "\n1y $(touch "+sentinel+") *\n") {
		t.Fatalf("the schedule did not arrive as one argument:\n%s", got)
	}
	if _, err := os.Stat(sentinel); err == nil {
		t.Fatal("a value of backup.env was evaluated")
	}
}

// docExamples returns the example command lines of the README's pipeline
// cookbook and of each manual page's EXAMPLES section, continuation lines
// joined, by document.
func docExamples(t *testing.T) map[string][]string {
	t.Helper()
	docs := map[string][]string{}
	readme, err := os.ReadFile(filepath.Join(harness.Root(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "## Pipeline cookbook\n\n```sh\n")
	if !ok {
		t.Fatal("README has no pipeline cookbook")
	}
	block, _, _ = strings.Cut(block, "```")
	docs["README.md"] = joinLines(strings.Split(block, "\n"))
	pages, _ := filepath.Glob(filepath.Join(harness.Root(), "man", "*.[1578]"))
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, sec, ok := strings.Cut(string(b), "\n.Sh EXAMPLES\n")
		if !ok {
			continue
		}
		if i := strings.Index(sec, "\n.Sh "); i >= 0 {
			sec = sec[:i]
		}
		var lines []string
		literal := false
		for _, l := range strings.Split(sec, "\n") {
			switch {
			case strings.HasPrefix(l, ".Bd -literal"):
				literal = true
			case l == ".Ed":
				literal = false
			case strings.HasPrefix(l, ".Dl "):
				lines = append(lines, strings.TrimPrefix(l, ".Dl "))
			case literal:
				lines = append(lines, l)
			}
		}
		for i, l := range lines {
			lines[i] = strings.NewReplacer(`\e`, `\`, `\&`, "", `\-`, "-").Replace(l)
		}
		docs[filepath.Base(p)] = joinLines(lines)
	}
	return docs
}

// joinLines joins shell continuation lines (ending in \ or |, or a next
// line starting with |) and drops comments and blank lines.
func joinLines(in []string) []string {
	var out []string
	cont := false
	for _, l := range in {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if (cont || strings.HasPrefix(l, "|")) && len(out) > 0 {
			out[len(out)-1] += " " + l
		} else {
			out = append(out, l)
		}
		cont = strings.HasSuffix(l, "|") || strings.HasSuffix(l, `\`)
		if strings.HasSuffix(l, `\`) {
			out[len(out)-1] = strings.TrimSuffix(out[len(out)-1], `\`)
		}
	}
	return out
}

// stages splits a command line at the pipes outside quotes and
// parentheses; a line without one gives one stage.
func stages(line string) []string {
	var out []string
	var quote byte
	depth, start := 0, 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			if i+1 < len(line) && line[i+1] == '|' || i > 0 && line[i-1] == '|' {
				continue
			}
			out = append(out, line[start:i])
			start = i + 1
		}
	}
	return append(out, line[start:])
}

// TestDocumentedPipelines: the README and every manual page run their
// pipelines under set -o pipefail, and so a failure of any one stage fails
// each documented pipeline. Every command is a stand-in here (reads its
// input, prints a line, exits 0, or 1 when BS_FAIL is set): what is tested
// is the documented shell text, not the commands.
func TestDocumentedPipelines(t *testing.T) {
	bin, cwd := t.TempDir(), t.TempDir()
	shim := "#!/bin/sh\n/bin/cat > /dev/null\n[ -z \"${BS_FAIL:-}\" ] || exit 1\necho data\n"
	npipes := 0
	for doc, lines := range docExamples(t) {
		pipefail := false
		for _, l := range lines {
			if l == "set -o pipefail" {
				pipefail = true
				continue
			}
			st := stages(l)
			if len(st) < 2 {
				continue
			}
			npipes++
			if !pipefail {
				t.Errorf("%s: %q comes before (or without) set -o pipefail", doc, l)
			}
			if strings.Contains(l, ">(") {
				t.Errorf("%s: %q: pipefail does not see a process substitution fail", doc, l)
			}
			for _, s := range st {
				w := strings.Fields(s)[0]
				os.WriteFile(filepath.Join(bin, w), []byte(shim), 0o755)
			}
			run := func(script string) harness.Result {
				c := exec.Command("/bin/bash", "-c", "set -o pipefail\n"+script)
				c.Dir = cwd
				c.Env = []string{"PATH=" + bin, "HOME=" + cwd}
				out, err := c.CombinedOutput()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				return harness.Result{Stderr: string(out), Code: code}
			}
			if r := run(l); r.Code != 0 {
				t.Errorf("%s: %q fails with every stage succeeding: exit %d: %s", doc, l, r.Code, r.Stderr)
				continue
			}
			for i := range st {
				failing := append([]string{}, st...)
				failing[i] = " BS_FAIL=1 " + strings.TrimLeft(st[i], " ")
				if r := run(strings.Join(failing, "|")); r.Code == 0 {
					t.Errorf("%s: %q exits 0 when %q fails", doc, l, strings.TrimSpace(st[i]))
				}
			}
		}
	}
	if npipes < 15 {
		t.Fatalf("found only %d documented pipelines: the extraction is broken", npipes)
	}
}
