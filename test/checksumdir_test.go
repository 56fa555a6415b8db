package test

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/checksumdir"
	"github.com/buttersink/buttersink/test/harness"
)

// fixtureScript is the original checksumdir rebuilt from its description.
func fixtureScript() string {
	return filepath.Join(harness.Root(), "test", "fixtures", "checksumdir.sh")
}

// makeTree fills $DIR/t with what trips up tree checksums: many small
// files, files larger than a read buffer, holes, hard links, symlinks,
// awkward names, empty files and directories, special files, odd modes,
// owners and times.
const makeTree = `
mkdir -p "$DIR/t" && cd "$DIR/t"
for i in $(seq 1 300); do printf 'file %d\n' "$i" > "small.$i"; done
mkdir -p d/e/f 'dir with space' emptydir
for i in $(seq 1 40); do echo "$i" > "d/e/f/n$i"; done
head -c 3000001 /dev/urandom > large1
head -c 5242880 /dev/urandom > d/large2
: > empty
ln large1 hardlink1; ln small.1 d/e/hard.small
ln -s small.1 sym; ln -s /nonexistent/target dangling; ln -s 'd/e' dirlink
echo s > 'with space'; echo s > ' leading'; echo s > 'trailing '
echo u > 'ünïcödé'; echo b > 'back\slash'; echo t > "$(printf 'tab\tname')"; echo c > "$(printf 'cr\rname')"
echo star > '*'; echo dash > '-x'; echo i > 'dir with space/in'; echo a > a-c; mkdir a; echo b > a/b
truncate -s 20M sparse; printf data | dd of=sparse bs=1 seek=7000000 conv=notrunc status=none
truncate -s 3M allhole
mkfifo fifo
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'
chmod 4755 small.2; chmod 2755 small.3; chmod 4644 small.4; chmod 2640 small.8; chmod 1777 emptydir; chmod 1770 'dir with space'
if [ "$(id -u)" = 0 ]; then
	mknod cdev c 1 3; mknod bdev b 7 0
	chown 1234:5678 small.7; chown -h 100000:65534 sym; chmod 000 small.5
fi
touch -h -d '1969-12-31 23:59:59.25' small.6 dangling
touch -d '2001-02-03 04:05:06.123456789' d/e
`

// sameFiles fails unless directories a and b hold the same named files.
func sameFiles(t *testing.T, a, b string, names ...string) {
	t.Helper()
	for _, n := range names {
		x, err := os.ReadFile(filepath.Join(a, n))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			out, _ := exec.Command("diff", filepath.Join(a, n), filepath.Join(b, n)).CombinedOutput()
			t.Errorf("%s differs from the script's:\n%s", n, out)
		}
	}
}

// compareWithScript runs the fixture script and checksumdir on $DIR/t,
// writing to $DIR/script and $DIR/go, and compares what they wrote.
func compareWithScript(t *testing.T, dir string) {
	t.Helper()
	harness.MustSh(t, `mkdir "$DIR/script" "$DIR/go"
		cd "$DIR/script" && "$FIXTURE" ../t
		cd "$DIR/go" && checksumdir ../t`, "DIR="+dir, "FIXTURE="+fixtureScript())
	sameFiles(t, filepath.Join(dir, "script"), filepath.Join(dir, "go"), "t.ls", "t.files", "t.sha256sum")
}

// TestChecksumdirMatchesScript: the three files are byte for byte what
// the original script writes, on the local filesystem and on btrfs; the
// overall digest is sha256sum's of NAME.sha256sum; sets made by the
// script verify with sha256sum -c and check clean.
func TestChecksumdirMatchesScript(t *testing.T) {
	harness.RequireCommand(t, "python3")
	for _, fs := range []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"local", func(t *testing.T) string { return t.TempDir() }},
		{"btrfs", func(t *testing.T) string { return harness.Btrfs(t, 256) }},
	} {
		t.Run(fs.name, func(t *testing.T) {
			dir := fs.dir(t)
			harness.MustSh(t, makeTree, "DIR="+dir)
			compareWithScript(t, dir)
			harness.MustSh(t, `cd "$DIR/script"
				sha256sum -c --quiet t.sha256sum
				[ "$(checksumdir --stdout ../t)" = "$(sha256sum t.sha256sum)" ]
				[ -z "$(checksumdir --check t.sha256sum ../t)" ]`, "DIR="+dir)
			// Every entry is listed, every regular file hashed.
			ls, _ := os.ReadFile(filepath.Join(dir, "go", "t.ls"))
			files, _ := os.ReadFile(filepath.Join(dir, "go", "t.files"))
			for _, want := range []string{" sym\n", " fifo\n", " sock\n", " emptydir\n", "  leading\n", " d/e/hard.small\n", " cr\rname\n"} {
				if !bytes.Contains(ls, []byte(want)) {
					t.Errorf("t.ls lacks %q", want)
				}
			}
			for _, want := range []string{"  ./hardlink1\n", "  ./large1\n", "  ./sparse\n", `  ./back\\slash` + "\n", "  ./empty\n"} {
				if !bytes.Contains(files, []byte(want)) {
					t.Errorf("t.files lacks %q", want)
				}
			}
		})
	}
}

// TestChecksumdirMountPoint: a filesystem mounted inside the tree, and a
// nested btrfs subvolume, are left out (neither listed nor hashed) by
// both the script and checksumdir.
func TestChecksumdirMountPoint(t *testing.T) {
	harness.RequireRoot(t)
	dir := harness.Btrfs(t, 256)
	harness.MustSh(t, `cd "$DIR" && mkdir -p t/mnt t/plain/inner && echo a > t/a && echo p > t/plain/inner/p
		btrfs -q subvolume create t/sv && echo s > t/sv/in-subvol
		mount -t tmpfs -o size=4m tmpfs t/mnt && echo m > t/mnt/on-tmpfs && mkdir t/mnt/sub`, "DIR="+dir)
	t.Cleanup(func() { harness.Unmount(t, filepath.Join(dir, "t", "mnt")) })
	compareWithScript(t, dir)
	ls, _ := os.ReadFile(filepath.Join(dir, "go", "t.ls"))
	files, _ := os.ReadFile(filepath.Join(dir, "go", "t.files"))
	for _, gone := range []string{"mnt", "on-tmpfs", "sv", "in-subvol"} {
		if bytes.Contains(ls, []byte(gone)) || bytes.Contains(files, []byte(gone)) {
			t.Errorf("%q is listed, but is on another filesystem:\n%s%s", gone, ls, files)
		}
	}
	if !bytes.Contains(ls, []byte(" plain/inner/p\n")) {
		t.Errorf("plain/inner/p missing:\n%s", ls)
	}
}

// checkCase changes a tree in one way and expects --check to say so.
type checkCase struct {
	name   string
	full   bool
	change string   // shell, run in $DIR/t
	want   []string // lines --check must print
}

// TestChecksumdirCheck: --check reports each kind of change, in its
// diff-like form, and exits 1; an untouched tree checks clean.
func TestChecksumdirCheck(t *testing.T) {
	harness.RequireRoot(t)
	cases := []checkCase{
		{name: "unchanged", change: `true`},
		{name: "added", change: `echo new > d/new`, want: []string{"+ d/new", "~ d: mtime"}},
		{name: "missing", change: `rm 'with space'`, want: []string{"- with space"}},
		{name: "missing dir", change: `rm -r d/e/f`, want: []string{"- d/e/f", "- d/e/f/n1", "~ d/e: links 3 -> 2, mtime 2020-02-02 02:02:02.0000000000 -> "}},
		{name: "data changed", change: `touch -r small.9 /tmp/ref.$$; printf X | dd of=small.9 conv=notrunc status=none; touch -r /tmp/ref.$$ small.9; rm /tmp/ref.$$`,
			want: []string{"! small.9: data changed"}},
		{name: "data in a hole", change: `touch -r sparse /tmp/ref.$$; printf Y | dd of=sparse bs=1 seek=100 conv=notrunc status=none; touch -r /tmp/ref.$$ sparse; rm /tmp/ref.$$`,
			want: []string{"! sparse: data changed"}},
		{name: "name with a newline", change: `touch -r small.1 /tmp/ref.$$; echo N > "$(printf 'new\nline')"; touch -r /tmp/ref.$$ "$(printf 'new\nline')"; rm /tmp/ref.$$`,
			want: []string{`! new\012line: data changed`}},
		{name: "mode", change: `chmod 4711 small.10`, want: []string{"~ small.10: mode -rw-r--r-- -> -rws--x--x"}},
		{name: "owner", change: `chown 7:8 small.11`, want: []string{"~ small.11: uid 0 -> 7, gid 0 -> 8"}},
		{name: "mtime", change: `touch -d '2010-01-01 00:00:00.5' small.12`,
			want: []string{"~ small.12: mtime 20"}},
		{name: "hard link", change: `ln small.13 d/e/f/link13; touch -r d/e/f/n1 d/e/f`,
			want: []string{"~ small.13: links 1 -> 2", "+ d/e/f/link13"}},
		{name: "type", change: `rm small.14; mkdir small.14`, want: []string{"~ small.14: mode -rw-r--r-- -> drwxr-xr-x"}},
		{name: "xattr", full: true, change: `setfattr -n user.note -v 'hello world' small.15`,
			want: []string{`~ small.15: xattr.user.note added hello\040world`}},
		{name: "symlink target", full: true, change: `ln -sfn other sym; touch -h -r small.1 sym`,
			want: []string{"~ sym: ", "target small.1 -> other"}},
		{name: "device number", full: true, change: `rm cdev; mknod cdev c 1 5; touch -r small.1 cdev`,
			want: []string{"~ cdev: ", "rdev 1,3 -> 1,5"}},
		{name: "file attribute", full: true, change: `chattr +d small.16`,
			want: []string{"~ small.16: attr added d"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			harness.MustSh(t, `mkdir -p "$DIR/t/d/e/f" "$DIR/out" && cd "$DIR/t"
				for i in $(seq 1 20); do echo "$i" > "small.$i"; echo "$i" > "d/e/f/n$i"; done
				echo s > 'with space'; ln -s small.1 sym; mknod cdev c 1 3; echo n > "$(printf 'new\nline')"
				truncate -s 5M sparse; echo end >> sparse
				touch -d '2020-02-02 02:02:02' . d d/e d/e/f
				cd "$DIR/out" && checksumdir $FULL ../t`, "DIR="+dir, "FULL="+map[bool]string{true: "--full"}[c.full])
			r := harness.Sh(t, `cd "$DIR/t" && `+c.change+`
				cd "$DIR/out" && checksumdir --check t.sha256sum ../t`, "DIR="+dir)
			if len(c.want) == 0 {
				if r.Code != 0 || r.Stdout != "" {
					t.Fatalf("unchanged tree: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
				}
				return
			}
			if r.Code != 1 {
				t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.Stdout)
				}
			}
			if !strings.Contains(r.Stderr, "checksumdir: error: ../t differs from t.sha256sum: ") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
		})
	}
}

// TestChecksumdirCheckBadSet: a damaged or malformed saved set is a
// one-line error and exit 1, never a clean check.
func TestChecksumdirCheckBadSet(t *testing.T) {
	dir := t.TempDir()
	harness.MustSh(t, `mkdir -p "$DIR/t" "$DIR/out" && echo a > "$DIR/t/a" && cd "$DIR/out" && checksumdir ../t`, "DIR="+dir)
	for _, c := range []struct{ name, script, want string }{
		{"damaged ls", `sed -i 's/ a$/ b/' t.ls`, "t.ls: does not match its sha256 in t.sha256sum"},
		{"missing files", `rm t.files`, "t.files: no such file or directory"},
		{"garbage sum file", `echo garbage > t.sha256sum`, "t.sha256sum line 1: not a sha256sum line"},
		{"sum file of other files", `sha256sum t.ls > t.sha256sum`, "does not list both a .ls and a .files file"},
		{"malformed ls", `echo 'only three fields' > t.ls; sha256sum t.ls t.files > t.sha256sum`, "t.ls line 1: 3 fields"},
		{"full wanted", `true`, "has no .full file to check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			full := ""
			if c.name == "full wanted" {
				full = "--full"
			}
			r := harness.Sh(t, `cd "$DIR/out" && rm -rf ../copy && mkdir ../copy && cp t.* ../copy/ && cd ../copy && `+c.script+`
				checksumdir `+full+` --check t.sha256sum ../t`, "DIR="+dir)
			if r.Code != 1 || !strings.Contains(r.Stderr, c.want) || strings.Count(r.Stderr, "error:") != 1 {
				t.Errorf("exit %d, want 1 with %q\nstderr:\n%s", r.Code, c.want, r.Stderr)
			}
		})
	}
}

// TestChecksumdirUnreadable: entries the user cannot read are errors
// naming them, exit 1, and no files are written.
func TestChecksumdirUnreadable(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireCommand(t, "setpriv")
	dir, err := os.MkdirTemp("", "bs-checksumdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := harness.Sh(t, `chmod 755 "$DIR" && mkdir -p "$DIR/t/closed" "$DIR/out" && chmod 777 "$DIR/out"
		echo x > "$DIR/t/ok"; echo s > "$DIR/t/secret"; echo c > "$DIR/t/closed/in"
		chmod 600 "$DIR/t/secret"; chmod 700 "$DIR/t/closed"
		cd "$DIR/out" && setpriv --reuid=65534 --regid=65534 --clear-groups checksumdir ../t`, "DIR="+dir)
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.Code, r.Stderr)
	}
	for _, w := range []string{"t/secret: permission denied", "t/closed: permission denied", "checksumdir: error: ../t: 2 entries could not be read"} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "out")); len(left) != 0 {
		t.Errorf("files written despite the errors: %v", left)
	}
}

// TestChecksumdirRefusesInside: output inside the tree is refused, as the
// script did; --stdout writes nothing and is allowed.
func TestChecksumdirRefusesInside(t *testing.T) {
	dir := t.TempDir()
	r := harness.Sh(t, `mkdir -p "$DIR/t/sub" && echo a > "$DIR/t/a" && cd "$DIR/t/sub" && checksumdir ..`, "DIR="+dir)
	if r.Code != 1 || !strings.Contains(r.Stderr, "refusing to write the checksum files inside the tree") {
		t.Errorf("exit %d\n%s", r.Code, r.Stderr)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "t", "sub")); len(left) != 0 {
		t.Errorf("files written inside the tree: %v", left)
	}
	harness.MustSh(t, `cd "$DIR/t" && [ "$(checksumdir --stdout . | wc -l)" = 1 ] && [ -z "$(ls -A sub)" ]`, "DIR="+dir)
}

// TestChecksumdirInterrupted: SIGINT while hashing ends with exit 130 and
// leaves no output files, and keeps any older set intact.
func TestChecksumdirInterrupted(t *testing.T) {
	dir := t.TempDir()
	r := harness.Sh(t, `mkdir -p "$DIR/t" "$DIR/out" && cd "$DIR/out"
		echo a > ../t/a && checksumdir ../t && cp t.sha256sum old.sha256sum
		truncate -s 1T ../t/huge
		checksumdir -j 1 ../t & pid=$!
		sleep 1; kill -INT $pid; code=0; wait $pid || code=$?
		echo "code=$code"
		ls -A; cmp t.sha256sum old.sha256sum`, "DIR="+dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, "code=130") || !strings.Contains(r.Stderr, "checksumdir: error: interrupted") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, ".tmp") {
		t.Errorf("temporary files left:\n%s", r.Stdout)
	}
}

// TestChecksumdirSortMatchesGNUSort: SortLines orders random lines with
// blanks, tabs, equal keys and high bytes exactly as LC_ALL=C sort -k N.
func TestChecksumdirSortMatchesGNUSort(t *testing.T) {
	harness.RequireCommand(t, "sort")
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte("ab -/\t.\xc3\xbc\\Z")
	var lines []string
	for i := 0; i < 3000; i++ {
		var b []byte
		for n := rng.Intn(14); n > 0; n-- {
			b = append(b, alphabet[rng.Intn(len(alphabet))])
		}
		lines = append(lines, string(b))
	}
	for _, field := range []int{1, 2, 3, 7} {
		cmd := exec.Command("sort", "--key", string(rune('0'+field)))
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		got := append([]string(nil), lines...)
		checksumdir.SortLines(got, field)
		if strings.Join(got, "\n")+"\n" != string(out) {
			t.Errorf("--key %d: SortLines differs from sort", field)
		}
	}
}

// TestChecksumdirReceivedSnapshot: the use it is for. A snapshot sent
// with btrfs send and received with btrfs receive checks clean against
// the snapshot's set, xattrs and symlink targets included (--full), and
// both have the same overall digest.
func TestChecksumdirReceivedSnapshot(t *testing.T) {
	harness.RequireCommand(t, "python3")
	harness.RequireCommand(t, "setfattr")
	mnt := harness.Btrfs(t, 512)
	harness.MustSh(t, `cd "$M" && btrfs -q subvolume create src && mkdir snaps recv out
		DIR="$M/src"; `+strings.Replace(makeTree, `mkdir -p "$DIR/t" && cd "$DIR/t"`, `cd "$DIR"`, 1)+`
		setfattr -n user.note -v 'kept by send' "$M/src/small.9"
		cd "$M" && btrfs -q subvolume snapshot -r src snaps/t
		btrfs -q send snaps/t | btrfs -q receive recv/
		cd out && checksumdir --full ../snaps/t
		checksumdir --check t.sha256sum ../recv/t
		[ "$(checksumdir --full --stdout ../recv/t)" = "$(sha256sum t.sha256sum)" ]
		grep -q 'small.9 type=file size=7 xattr.user.note=kept\\040by\\040send' t.full`, "M="+mnt)
}

// TestChecksumdirUsage: argument mistakes are usage errors (exit 2) and
// write nothing.
func TestChecksumdirUsage(t *testing.T) {
	dir := t.TempDir()
	harness.MustSh(t, `mkdir -p "$DIR/a/t" "$DIR/b/t" "$DIR/out"`, "DIR="+dir)
	for _, c := range []struct {
		args string
		code int
		want string
	}{
		{"../a/t ../b/t", 2, "would both write t.ls"},
		{"--check x.sha256sum ../a/t ../b/t", 2, "--check takes exactly one DIR"},
		{"--check x.sha256sum --stdout ../a/t", 2, "--check and --stdout do not go together"},
		{"", 2, "expected"},
		{"file:///tmp/x/", 1, "cannot read file:// locations"},
		{"../a/nonexistent", 1, "no such file or directory"},
	} {
		r := harness.Sh(t, `cd "$DIR/out" && checksumdir `+c.args, "DIR="+dir)
		if r.Code != c.code || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("checksumdir %s: exit %d, want %d with %q\n%s", c.args, r.Code, c.code, c.want, r.Stderr)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "out")); len(left) != 0 {
		t.Errorf("files written: %v", left)
	}
}

// TestChecksumdirFullDisk: no room for the output is a one-line error,
// exit 1, no temporary files left and the older set untouched.
func TestChecksumdirFullDisk(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r := harness.Sh(t, `mkdir -p "$DIR/t" "$DIR/out" && mount -t tmpfs -o size=64k tmpfs "$DIR/out"
		echo a > "$DIR/t/a"
		cd "$DIR/out" && checksumdir ../t && sha256sum t.* > ../before
		for i in $(seq 1 3000); do echo "$i" > "$DIR/t/file-with-a-long-name-$i"; done
		code=0; checksumdir ../t || code=$?
		echo "code=$code"; ls -A; sha256sum -c --quiet ../before`, "DIR="+dir)
	t.Cleanup(func() { harness.Unmount(t, out) })
	if r.Code != 0 || !strings.Contains(r.Stdout, "code=1") || !strings.Contains(r.Stderr, "no space left on device") ||
		strings.Count(r.Stderr, "\n") != 1 || strings.Contains(r.Stdout, ".tmp") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestChecksumdirCheckSpecialFiles: a FIFO or a device in place of a
// set's file (the sum file itself, or a file it names) is an error naming
// it, never blocked on or read forever; and --check ends with 130 soon
// after SIGTERM.
func TestChecksumdirCheckSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	harness.MustSh(t, `mkdir -p "$DIR/t" "$DIR/out" && echo a > "$DIR/t/a" && cd "$DIR/out" && checksumdir ../t`, "DIR="+dir)
	for _, c := range []struct{ name, script, want string }{
		{"fifo ls", `rm t.ls; mkfifo t.ls`, "t.ls: not a regular file (a fifo)"},
		{"fifo sum file", `rm t.sha256sum; mkfifo t.sha256sum`, "t.sha256sum: not a regular file (a fifo)"},
		{"device files", `rm t.files; ln -s /dev/zero t.files`, "t.files: not a regular file (a character device)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := harness.Sh(t, `cd "$DIR/out" && rm -rf ../copy && mkdir ../copy && cp t.* ../copy/ && cd ../copy && `+c.script+`
				timeout -s KILL 10 checksumdir --check t.sha256sum ../t`, "DIR="+dir)
			if r.Code != 1 || !strings.Contains(r.Stderr, c.want) || strings.Count(r.Stderr, "error:") != 1 {
				t.Errorf("exit %d, want 1 with %q\nstderr:\n%s", r.Code, c.want, r.Stderr)
			}
		})
	}
	t.Run("sigterm", func(t *testing.T) {
		r := harness.Sh(t, `cd "$DIR/out" && truncate -s 1T ../t/huge
			checksumdir -j 1 --check t.sha256sum ../t & pid=$!
			sleep 1; kill -TERM $pid; start=$(date +%s); code=0; wait $pid || code=$?
			echo "code=$code took=$(( $(date +%s) - start ))"; rm ../t/huge`, "DIR="+dir)
		if r.Code != 0 || !strings.Contains(r.Stdout, "code=130") || !strings.Contains(r.Stdout, "took=0") && !strings.Contains(r.Stdout, "took=1") ||
			!strings.HasSuffix(r.Stderr, "checksumdir: error: interrupted\n") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
		}
	})
}

// TestChecksumdirPortable: on btrfs --portable changes nothing; a copy of
// the tree on ext4 and on tmpfs (where directories count their
// subdirectories) differs in directory link counts only, and with
// --portable it gives the btrfs set exactly, checked or summed.
func TestChecksumdirPortable(t *testing.T) {
	harness.RequireCommand(t, "python3")
	mnt := harness.Btrfs(t, 256)
	harness.MustSh(t, makeTree, "DIR="+mnt)
	harness.MustSh(t, `mkdir "$M/plain" "$M/portable" && cd "$M/plain" && checksumdir ../t && cd "$M/portable" && checksumdir --portable ../t
		cmp "$M/plain/t.ls" "$M/portable/t.ls" && cmp "$M/plain/t.sha256sum" "$M/portable/t.sha256sum"`, "M="+mnt)
	for _, fs := range []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"ext4", func(t *testing.T) string { return harness.Ext4(t, 256) }},
		{"tmpfs", func(t *testing.T) string { return harness.Tmpfs(t, 256) }},
	} {
		t.Run(fs.name, func(t *testing.T) {
			dir := fs.dir(t)
			harness.MustSh(t, `cp -a "$M/t" "$D/t" && cd "$M/plain"
				! checksumdir --check t.sha256sum "$D/t" > "$D/diff" 2>/dev/null
				grep -q '^~ d/e: links 1 -> 3$' "$D/diff"
				! grep -v ': links 1 -> [0-9]*$' "$D/diff"
				[ -z "$(checksumdir --portable --check t.sha256sum "$D/t")" ]
				[ "$(checksumdir --portable --stdout "$D/t")" = "$(sha256sum t.sha256sum)" ]`, "M="+mnt, "D="+dir)
		})
	}
}
