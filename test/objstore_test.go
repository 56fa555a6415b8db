package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
	"github.com/buttersink/buttersink/lib/objstore/s3store"
	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/test/harness"
)

// osh runs a script with positional parameters and extra environment.
func osh(t *testing.T, env []string, script string, args ...string) harness.Result {
	t.Helper()
	var q []string
	for _, a := range args {
		q = append(q, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return harness.Sh(t, "set -- "+strings.Join(q, " ")+"\n"+script, env...)
}

func mustOsh(t *testing.T, env []string, script string, args ...string) harness.Result {
	t.Helper()
	r := osh(t, env, script, args...)
	if r.Code != 0 {
		t.Fatalf("%s\nexit %d\nstdout:\n%s\nstderr:\n%s", script, r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// objSnaps makes mnt/vol and n read-only snapshots mnt/snaps/s1..sn, each
// adding a random file of kib KiB and a compressible one, and changing an
// earlier file, so that every incremental stream carries data.
func objSnaps(t *testing.T, mnt string, n, kib int) string {
	t.Helper()
	mustOsh(t, nil, `
		cd "$1"; btrfs -q subvolume create vol; mkdir snaps
		for i in $(seq 1 $2); do
			head -c $(($3 * 1024)) /dev/urandom > vol/r$i
			seq 1 $((i * 20000)) > vol/text$i
			mkdir -p vol/d$i && ln -s ../r$i vol/d$i/link && setfattr -n user.i -v $i vol/r$i
			[ $i -gt 1 ] && dd if=/dev/urandom of=vol/r1 bs=4096 count=3 seek=$i conv=notrunc status=none
			btrfs -q subvolume snapshot -r vol snaps/s$i
		done`, mnt, strconv.Itoa(n), strconv.Itoa(kib))
	return filepath.Join(mnt, "snaps")
}

// sameTrees compares the snapshots' trees (contents, modes, xattrs, links).
func sameTrees(t *testing.T, a, b string) {
	t.Helper()
	r := osh(t, nil, `diff -r --no-dereference "$1" "$2" && diff <(cd "$1" && getfattr -R -d . 2>/dev/null | sort) <(cd "$2" && getfattr -R -d . 2>/dev/null | sort) && diff <(cd "$1" && find . -printf '%M %s %U %T@ %p\n' | sort) <(cd "$2" && find . -printf '%M %s %U %T@ %p\n' | sort)`, a, b)
	if r.Code != 0 {
		t.Fatalf("%s and %s differ:\n%s%s", a, b, r.Stdout, r.Stderr)
	}
}

func objRecords(t *testing.T, out string) []snapshot.Snapshot {
	t.Helper()
	recs, err := jsonl.ReadAll[snapshot.Snapshot](strings.NewReader(out), "output")
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	return recs
}

// store is one backend for the tests: a location and the environment
// that reaches it.
type store struct {
	name string
	url  string // the store directory, with trailing slash
	env  []string
	m    *harness.MinIO
}

func stores(t *testing.T) []store {
	m := harness.StartMinIO(t)
	dir := t.TempDir()
	return []store{
		{name: "s3", url: "s3://" + m.Bucket + "/backups/", env: m.Env(), m: m},
		{name: "file", url: "file://" + dir + "/backups/", env: nil},
	}
}

func (s store) open(t *testing.T) objstore.Store {
	t.Helper()
	loc, err := location.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	opts := objstore.Options{}
	if s.m != nil {
		for _, kv := range s.env {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		opts.EndpointURL = s.m.Endpoint
	}
	open := filestore.Open
	if loc.Scheme == location.S3 {
		open = s3store.Open
	}
	st, err := open(context.Background(), loc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBss3RoundTrip: a five-snapshot chain btrfs → store → btrfs through
// the planner, raw and with zstd, age and a filter, on S3 and file://;
// restored trees equal the sources, and the stock tools decode objects.
func TestBss3RoundTrip(t *testing.T) {
	harness.RequireCommand(t, "age-keygen")
	harness.RequireCommand(t, "zstd")
	src := harness.Btrfs(t, 512)
	snaps := objSnaps(t, src, 5, 1500)
	keyDir := t.TempDir()
	mustOsh(t, nil, `age-keygen -o "$1/key" 2>/dev/null && age-keygen -y "$1/key" > "$1/recipients"`, keyDir)
	encodings := []struct {
		name        string
		put, get    string
		stockDecode string // shell pipeline from the object to the raw stream
	}{
		{"raw", "", "", "cat"},
		{"zstd", "--zstd=5", "", "zstd -dc"},
		{"zstd-age-filter", `--zstd -R ` + keyDir + `/recipients --filter 'gzip -1'`, `-i ` + keyDir + `/key --filter 'gzip -dc'`,
			"gzip -dc | age -d -i " + keyDir + "/key | zstd -dc"},
	}
	for _, s := range stores(t) {
		for _, e := range encodings {
			t.Run(s.name+"/"+e.name, func(t *testing.T) {
				url := s.url + e.name + "/"
				dst := harness.Btrfs(t, 512)
				streams := filepath.Join(t.TempDir(), "streams")
				r := mustOsh(t, s.env, `bsplan "$1/" "$2" | bssend | tee "$3" | bss3put --part-size 5MiB `+e.put+` "$2"`, snaps, url, streams)
				recs := objRecords(t, r.Stdout)
				if len(recs) != 5 {
					t.Fatalf("bss3put printed %d records, want 5:\n%s", len(recs), r.Stdout)
				}
				ls := objRecords(t, mustOsh(t, s.env, `bsls "$1"`, url).Stdout)
				if len(ls) != 5 {
					t.Fatalf("bsls lists %d objects, want 5", len(ls))
				}
				for i, rec := range ls {
					wantEnc := map[string]string{"raw": "", "zstd": "zstd", "zstd-age-filter": "zstd.age.f-gzip"}[e.name]
					if rec.Kind != "object" || rec.Encoding != wantEnc || rec.Format != "buttersink" || !rec.ReadOnly ||
						rec.Path != "s"+strconv.Itoa(i+1) || (i == 0) != rec.SendParentUUID.IsZero() {
						t.Errorf("record %d: %+v", i, rec)
					}
				}
				mustOsh(t, s.env, `bsplan "$1" "$2/" | bss3get `+e.get+` | bsrecv "$2/"`, url, dst)
				for i := 1; i <= 5; i++ {
					sameTrees(t, filepath.Join(snaps, "s"+strconv.Itoa(i)), filepath.Join(dst, "s"+strconv.Itoa(i)))
				}
				// Nothing left to send either way.
				if out := mustOsh(t, s.env, `bsplan "$1/" "$2"`, snaps, url).Stdout; strings.TrimSpace(out) != "" {
					t.Errorf("second backup plans steps:\n%s", out)
				}
				// A rerun of the same streams skips what is stored.
				r = mustOsh(t, s.env, `bss3put -v `+e.put+` "$1" < "$2" 2>&1 >/dev/null | grep -c 'already stored key='`, url, streams)
				if strings.TrimSpace(r.Stdout) != "5" {
					t.Errorf("rerun did not skip stored streams: %s", r.Stdout)
				}
				// The stock tools decode an object to the stored stream.
				key := ls[2].Key
				var fetch, sha string
				if s.m != nil {
					fetch = `aws s3 cp "s3://$BUCKET/backups/` + e.name + `/$1" -`
					sha = `aws s3api head-object --bucket "$BUCKET" --key "backups/` + e.name + `/$1" --query Metadata.\"bs-stream-sha256\" --output text`
				} else {
					p := strings.TrimPrefix(url, "file://")
					fetch = `cat "` + p + `$1"`
					sha = `getfattr --only-values -n user.bs.stream.sha256 "` + p + `$1"`
				}
				r = mustOsh(t, s.env, `a=$(`+fetch+` | `+e.stockDecode+` | sha256sum | cut -d' ' -f1); b=$(`+sha+`); echo $a $b; [ "$a" = "$b" ]`, key)
			})
		}
	}
}

// TestBss3putResume: bss3put killed after some parts; the rerun keeps the
// parts the server holds (ListParts) and sends only the rest.
func TestBss3putResume(t *testing.T) {
	m := harness.StartMinIO(t)
	src := harness.Btrfs(t, 512)
	snaps := objSnaps(t, src, 1, 60*1024)
	stream := filepath.Join(t.TempDir(), "stream")
	mustOsh(t, nil, `bssend "$1/s1" > "$2"`, snaps, stream)
	fi, _ := os.Stat(stream)
	const part = 5 << 20
	total := int((fi.Size() + part - 1) / part)
	url := "s3://" + m.Bucket + "/resume/"

	// First run: feed 35 MiB, wait until the server holds parts, SIGKILL.
	cmd := exec.Command(filepath.Join(harness.Bin(t), "bss3put"), "-v", "--part-size", "5MiB", "--concurrency", "2", url)
	cmd.Env = append(os.Environ(), m.Env()...)
	in, _ := cmd.StdinPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(stream)
	io.CopyN(in, f, 35<<20)
	f.Close()
	c := m.Client()
	ctx := context.Background()
	var uploadID, key string
	deadline := time.Now().Add(60 * time.Second)
	for {
		ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.Bucket)})
		if err == nil && len(ups.Uploads) == 1 {
			uploadID, key = aws.ToString(ups.Uploads[0].UploadId), aws.ToString(ups.Uploads[0].Key)
			lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID)})
			if err == nil && len(lp.Parts) >= 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no parts on the server: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	in.Close()
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(key)}); err == nil {
		t.Fatal("object visible after the killed upload")
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID)})
	if err != nil {
		t.Fatal(err)
	}
	onServer := map[int]bool{}
	for _, p := range lp.Parts {
		if aws.ToString(p.ChecksumCRC32C) == "" {
			t.Fatalf("part %d has no CRC32C on the server", aws.ToInt32(p.PartNumber))
		}
		onServer[int(aws.ToInt32(p.PartNumber))] = true
	}
	// A part the server holds with wrong content must be sent again:
	// overwrite one with garbage of the right size.
	var spoiled int
	for n := range onServer {
		spoiled = n
		break
	}
	garbage := make([]byte, part)
	rand.Read(garbage)
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
		PartNumber: aws.Int32(int32(spoiled)), Body: bytes.NewReader(garbage), ChecksumAlgorithm: "CRC32C"}); err != nil {
		t.Fatal(err)
	}

	// Rerun with the whole stream.
	r := mustOsh(t, m.Env(), `bss3put -v --part-size 5MiB "$1" < "$2"`, url, stream)
	kept := map[int]bool{}
	sent := map[int]bool{}
	re := regexp.MustCompile(`part (sent|kept) .*part=(\d+) `)
	for _, mm := range re.FindAllStringSubmatch(r.Stderr, -1) {
		n, _ := strconv.Atoi(mm[2])
		if mm[1] == "kept" {
			kept[n] = true
		} else {
			sent[n] = true
		}
	}
	for n := 1; n <= total; n++ {
		wantKept := onServer[n] && n != spoiled
		if kept[n] != wantKept || sent[n] == wantKept {
			t.Errorf("part %d: kept=%v sent=%v, server had it=%v (spoiled %d)", n, kept[n], sent[n], onServer[n], spoiled)
		}
	}
	if len(kept)+len(sent) != total || len(kept) < 3 {
		t.Errorf("kept %d + sent %d parts, want %d in all and >= 3 kept\n%s", len(kept), len(sent), total, r.Stderr)
	}
	// The object is whole: its stream hashes like the source's.
	recs := objRecords(t, r.Stdout)
	mustOsh(t, m.Env(), `a=$(bss3get "$1$2" | sha256sum); b=$(sha256sum < "$3"); [ "$a" = "$b" ]`, url, recs[0].Key, stream)
	if ups, _ := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.Bucket)}); len(ups.Uploads) != 0 {
		t.Errorf("uploads left: %d", len(ups.Uploads))
	}
}

// TestBss3putMemoryBound: bss3put's peak RSS stays below the bound
// bss3put(1) gives, n × part size + 64 MiB, on a stream several times
// that size, with and without stages.
func TestBss3putMemoryBound(t *testing.T) {
	m := harness.StartMinIO(t)
	src := harness.Btrfs(t, 1024)
	stream := filepath.Join(t.TempDir(), "stream")
	// Half random, half base64 text: zstd works on both kinds of block.
	mustOsh(t, nil, `
		cd "$1"; btrfs -q subvolume create vol
		for i in 1 2 3 4 5; do
			head -c 40M /dev/urandom > vol/r$i
			head -c 30M /dev/urandom | base64 > vol/t$i
		done
		btrfs -q subvolume snapshot -r vol snap
		bssend snap > "$2"`, src, stream)
	fi, err := os.Stat(stream)
	if err != nil {
		t.Fatal(err)
	}
	r := mustOsh(t, nil, `age-keygen 2>/dev/null | sed -n 's/^# public key: //p'`)
	key := strings.TrimSpace(r.Stdout)
	harness.RequireCommand(t, "/usr/bin/time")
	for _, c := range []struct {
		name  string
		flags []string
		n     int64
	}{
		{"plain", nil, 4},
		{"zstd", []string{"--zstd"}, 4},
		{"zstd-age", []string{"--zstd", "-r", key}, 2},
		{"zstd-j8", []string{"--zstd", "-j8"}, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			const part = 5 << 20
			bound := c.n*part + 64<<20
			if fi.Size() < 3*bound {
				t.Fatalf("stream of %d bytes is too small to test a bound of %d", fi.Size(), bound)
			}
			args := append([]string{"-q", "--part-size", "5MiB", "-j", strconv.FormatInt(c.n, 10)}, c.flags...)
			// Through /usr/bin/time: a process started by os/exec (vfork)
			// inherits this test's peak RSS as its own at exec, so its
			// rusage would report ours.
			r := osh(t, m.Env(), `in=$1; shift; /usr/bin/time -f %M -o /dev/fd/3 bss3put "$@" < "$in" 3>&1 > /dev/null`,
				append([]string{stream}, append(args, "s3://"+m.Bucket+"/mem-"+c.name+"/")...)...)
			if r.Code != 0 {
				t.Fatalf("bss3put %v: exit %d\n%s", args, r.Code, r.Stderr)
			}
			kib, err := strconv.ParseInt(strings.TrimSpace(r.Stdout), 10, 64)
			if err != nil {
				t.Fatalf("/usr/bin/time: %q", r.Stdout)
			}
			rss := kib << 10
			t.Logf("peak RSS %d MiB, bound %d MiB", rss>>20, bound>>20)
			if rss >= bound {
				t.Errorf("peak RSS %d MiB over the bound %d MiB (%d × %d MiB parts + 64 MiB)", rss>>20, bound>>20, c.n, part>>20)
			}
		})
	}
}

// TestBss3putFileStoreFull: a file:// store on a disk that fills up (a
// USB disk) fails the upload with one line naming the cause, leaves no
// object and no temporary file, and takes the stream once there is room.
func TestBss3putFileStoreFull(t *testing.T) {
	src := harness.Btrfs(t, 600)
	stream := filepath.Join(t.TempDir(), "stream")
	mustOsh(t, nil, `
		cd "$1"; btrfs -q subvolume create vol
		head -c 300M /dev/urandom > vol/big
		btrfs -q subvolume snapshot -r vol snap
		bssend snap > "$2"`, src, stream)
	disk := harness.Btrfs(t, 200)
	store := "file://" + disk + "/bk/"
	r := osh(t, nil, `bss3put "$1" < "$2"`, store, stream)
	if r.Code != 1 || r.Stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "bss3put: error: ") || !strings.Contains(lines[0], "no space left on device") {
		t.Fatalf("want one error line naming the full disk; stderr:\n%s", r.Stderr)
	}
	if left := mustOsh(t, nil, `find "$1/bk" -type f`, disk).Stdout; left != "" {
		t.Fatalf("files left in the store:\n%s", left)
	}
	if out := mustOsh(t, nil, `bsls "$1"`, store).Stdout; out != "" {
		t.Fatalf("bsls lists:\n%s", out)
	}
	// With room (a bigger disk) the same stream is stored whole.
	disk = harness.Btrfs(t, 600)
	store = "file://" + disk + "/bk/"
	recs := objRecords(t, mustOsh(t, nil, `bss3put "$1" < "$2"`, store, stream).Stdout)
	mustOsh(t, nil, `a=$(bss3get "$1$2" | sha256sum); b=$(sha256sum < "$3"); [ "$a" = "$b" ]`, store, recs[0].Key, stream)
}

// TestBss3getCorrupt: a flipped byte, a truncated object or a wrong digest
// fail bss3get before the END command, so bsrecv completes no snapshot.
func TestBss3getCorrupt(t *testing.T) {
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 2, 4096)
	for _, s := range stores(t) {
		t.Run(s.name, func(t *testing.T) {
			st := s.open(t)
			ctx := context.Background()
			recs := objRecords(t, mustOsh(t, s.env, `bssend "$1/s1" "$1/s2" | bss3put "$2"`, snaps, s.url).Stdout)
			key := recs[0].Key
			o, err := st.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			rc, _, err := st.Open(ctx, key, objstore.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := io.ReadAll(rc)
			rc.Close()
			replace := func(body []byte, meta objstore.Meta) {
				t.Helper()
				// A store never replaces an object: delete it first.
				if err := st.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				p, err := st.Create(ctx, key, meta, objstore.PutOptions{})
				if err != nil {
					t.Fatal(err)
				}
				p.Write(body)
				if _, err := p.Close(meta); err != nil {
					t.Fatal(err)
				}
			}
			flipped := append([]byte(nil), orig...)
			flipped[len(flipped)/2] ^= 1
			wrongSHA := o.Meta
			wrongSHA.StreamSHA256 = strings.Repeat("0", 64)
			cases := []struct {
				name string
				body []byte
				meta objstore.Meta
				want string
			}{
				{"flipped byte", flipped, o.Meta, "corrupt"},
				{"truncated", orig[:len(orig)-4000], o.Meta, "corrupt"},
				{"wrong digest", orig, wrongSHA, "does not match"},
			}
			for _, c := range cases {
				replace(c.body, c.meta)
				dst := harness.Btrfs(t, 256)
				r := osh(t, s.env, `bss3get "$1$2" > "$3/out"; echo "get=$?" >&2; bsrecv "$3/" < "$3/out"`, s.url, key, dst)
				if r.Code == 0 || !strings.Contains(r.Stderr, c.want) || strings.Contains(r.Stderr, "get=0") {
					t.Errorf("%s: exit %d, stderr:\n%s", c.name, r.Code, r.Stderr)
				}
				if lines := strings.Count(r.Stderr, "bss3get: error:"); lines != 1 {
					t.Errorf("%s: %d bss3get error lines:\n%s", c.name, lines, r.Stderr)
				}
				// No END was written: the receiver holds no complete snapshot.
				out := mustOsh(t, nil, `bsls "$1/"; tail -c 10 "$1/out" | od -An -tx1`, dst).Stdout
				if strings.Contains(out, `"readonly":true`) {
					t.Errorf("%s: a snapshot was completed:\n%s", c.name, out)
				}
				if c.name == "wrong digest" {
					if fi, _ := os.Stat(filepath.Join(dst, "out")); fi.Size() != o.Meta.StreamSize-10 {
						t.Errorf("wrong digest: wrote %d bytes, want all but the END command (%d)", fi.Size(), o.Meta.StreamSize-10)
					}
				}
			}
			replace(orig, o.Meta)
			dst := harness.Btrfs(t, 256)
			mustOsh(t, s.env, `bss3get "$1$2" | bsrecv "$3/"`, s.url, key, dst)
			sameTrees(t, filepath.Join(snaps, "s1"), filepath.Join(dst, "s1"))
		})
	}
}

// TestBss3Errors: each fault is one clear error line with a hint and a
// non-zero exit, and secrets never show.
func TestBss3Errors(t *testing.T) {
	harness.RequireCommand(t, "age-keygen")
	m := harness.StartMinIO(t)
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 1, 1024)
	dir := t.TempDir()
	mustOsh(t, nil, `age-keygen -o "$1/key" 2>/dev/null; age-keygen -o "$1/other" 2>/dev/null; age-keygen -y "$1/key" > "$1/rcpt"`, dir)
	url := "s3://" + m.Bucket + "/err/"
	rec := objRecords(t, mustOsh(t, m.Env(), `bssend "$1/s1" | bss3put -R "$2/rcpt" "$3"`, snaps, dir, url).Stdout)[0]
	env := m.Env()
	cases := []struct {
		name, script string
		env          []string
		want         string
	}{
		{"wrong age identity", `bss3get -i "$2/other" "$3$4" | cat >/dev/null`, env, "wrong age identity"},
		{"no age identity", `bss3get "$3$4" | cat >/dev/null`, env, "no --age-identity"},
		{"missing credentials", `bsls "$3"`, append(append([]string(nil), env...), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="), "no AWS credentials found"},
		{"nonexistent bucket", `bssend "$1/s1" | bss3put s3://no-such-bucket/x/`, env, `bucket "no-such-bucket" does not exist`},
		{"unknown key id", `bsls "$3"`, append(append([]string(nil), env...), "AWS_ACCESS_KEY_ID=AKIANOTAKEY"), "access key id not recognized"},
		{"wrong secret", `bsls "$3"`, append(append([]string(nil), env...), "AWS_SECRET_ACCESS_KEY=wrong-secret-123"), "signature rejected"},
		// bss3put's first request (its lock) is refused as for bsls.
		{"unknown key id, put", `bssend "$1/s1" | bss3put "$3"x/`, append(append([]string(nil), env...), "AWS_ACCESS_KEY_ID=AKIANOTAKEY"), "access key id not recognized"},
		{"missing object", `bss3get "$3"s1/3f2a1b4c-0d5e-4f60-8a7b-9c0d1e2f3a4b.full.ct1.bs1 | cat`, env, "object does not exist"},
		{"not a stream", `echo hello | bss3put "$3"`, env, "bss3put: error: stdin:"},
		{"unreachable endpoint", `bsls "$3"`, append(append([]string(nil), env...), "AWS_ENDPOINT_URL=http://127.0.0.1:1"), "cannot reach the s3 endpoint"},
		{"bad plan step", `echo '{"op":"delete"}' | bss3get | cat`, env, "restores only send steps"},
	}
	for _, c := range cases {
		r := osh(t, c.env, c.script, snaps, dir, url, rec.Key)
		errs := regexp.MustCompile(`(?m)^(bss3put|bss3get|bsls): error: .*$`).FindAllString(r.Stderr, -1)
		if r.Code == 0 || len(errs) != 1 || !strings.Contains(errs[0], c.want) {
			t.Errorf("%s: exit %d, want one error line with %q; stderr:\n%s", c.name, r.Code, c.want, r.Stderr)
		}
		if strings.Contains(r.Stderr, m.SecretKey) || strings.Contains(r.Stdout, m.SecretKey) {
			t.Errorf("%s: the secret key shows in the output", c.name)
		}
	}
}

// TestBss3Legacy: objects of the original ButterSink and of btrfs2s3 are
// listed with their format and restored (CRC-verified).
func TestBss3Legacy(t *testing.T) {
	m := harness.StartMinIO(t)
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 2, 2048)
	dst := harness.Btrfs(t, 256)
	env := m.Env()
	// Upload as the old tools would: raw streams (btrfs2s3's through gzip).
	mustOsh(t, env, `
		u1=$(btrfs subvolume show "$1/s1" | awk '$1=="UUID:"{print $2}')
		u2=$(btrfs subvolume show "$1/s2" | awk '$1=="UUID:"{print $2}')
		p=$(btrfs subvolume show "$1/s1" | awk '$1=="Parent" && $2=="UUID:"{print $3}')
		btrfs send -q "$1/s1" | aws s3 cp - "s3://$BUCKET/old/s1/${u1}_None"
		btrfs send -q -p "$1/s1" "$1/s2" | aws s3 cp - "s3://$BUCKET/old/s2/${u2}_${u1}"
		btrfs send -q "$1/s1" | gzip | aws s3 cp - "s3://$BUCKET/b2s3/vol.ctim2026-01-01T00:00:00+00:00.ctid7.uuid${u1}.sndp00000000-0000-0000-0000-000000000000.prnt${p}.mdvn1.seqn0"
		aws s3 cp - "s3://$BUCKET/old/s1.bs" < /dev/null`, snaps)
	old := objRecords(t, mustOsh(t, env, `bsls "s3://$BUCKET/old/"`).Stdout)
	if len(old) != 2 || old[0].Format != "buttersink-v0" || !old[0].SendParentUUID.IsZero() || old[1].SendParentUUID != old[0].UUID {
		t.Fatalf("original ButterSink objects: %+v", old)
	}
	b2 := objRecords(t, mustOsh(t, env, `bsls "s3://$BUCKET/b2s3/"`).Stdout)
	if len(b2) != 1 || b2[0].Format != "btrfs2s3" || b2[0].CTransID != 7 || b2[0].Path != "vol.2026-01-01T00:00:00+00:00.7" {
		t.Fatalf("btrfs2s3 objects: %+v", b2)
	}
	mustOsh(t, env, `bss3get "s3://$BUCKET/old/$1" "s3://$BUCKET/old/$2" | bsrecv "$3/"`, old[0].Key, old[1].Key, dst)
	sameTrees(t, filepath.Join(snaps, "s2"), filepath.Join(dst, "s2"))
	dst2 := harness.Btrfs(t, 256)
	mustOsh(t, env, `bss3get --filter 'gzip -dc' "s3://$BUCKET/b2s3/$1" | bsrecv "$2/"`, b2[0].Key, dst2)
	sameTrees(t, filepath.Join(snaps, "s1"), filepath.Join(dst2, "s1"))
}

// killedPut starts bss3put on url, feeds it the first n bytes of stream,
// waits until ready reports that the store holds some of it, and kills it
// (SIGKILL, nothing cleaned up), as an interrupted upload.
func killedPut(t *testing.T, env []string, url, stream string, n int64, ready func() bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.Bin(t), "bss3put"), "--part-size", "5MiB", "--concurrency", "2", url)
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(stream)
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(in, f, n)
	f.Close()
	for deadline := time.Now().Add(60 * time.Second); !ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the interrupted upload never reached the store: %s", stderr.String())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	in.Close()
}

// abortLines parses bsrm --incomplete output: key → status, and checks
// each line's shape.
func abortLines(t *testing.T, out, dst string) map[string]string {
	t.Helper()
	type line struct {
		Op       string    `json:"op"`
		Dst      string    `json:"dst"`
		Key      string    `json:"key"`
		UploadID string    `json:"upload_id"`
		Started  time.Time `json:"started"`
		Status   string    `json:"status"`
	}
	lines, err := jsonl.ReadAll[line](strings.NewReader(out), "bsrm output")
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	got := map[string]string{}
	for _, l := range lines {
		if l.Op != "abort" || l.Dst != dst || l.UploadID == "" || l.Started.IsZero() || time.Since(l.Started) > 3*time.Hour {
			t.Errorf("bsrm --incomplete line %+v", l)
		}
		got[l.UploadID] = l.Status
	}
	return got
}

// TestBsrmIncomplete: bsrm --incomplete AGE aborts the multipart uploads an
// interrupted bss3put left on S3 (server side: the upload and its parts
// are gone), and removes the temporary files of interrupted writes to a
// file store; younger ones, other prefixes and objects stay.
func TestBsrmIncomplete(t *testing.T) {
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 2, 16*1024)
	dir := t.TempDir()
	mustOsh(t, nil, `bssend "$1/s1" > "$2/s1"; bssend "$1/s2" > "$2/s2"`, snaps, dir)
	s1, s2 := filepath.Join(dir, "s1"), filepath.Join(dir, "s2")

	t.Run("s3", func(t *testing.T) {
		m := harness.StartMinIO(t)
		c := m.Client()
		ctx := context.Background()
		url := "s3://" + m.Bucket + "/inc/"
		uploads := func() map[string]types.MultipartUpload {
			out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.Bucket)})
			if err != nil {
				t.Fatal(err)
			}
			ups := map[string]types.MultipartUpload{}
			for _, u := range out.Uploads {
				ups[aws.ToString(u.UploadId)] = u
			}
			return ups
		}
		hasParts := func(u types.MultipartUpload) bool {
			lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(m.Bucket), Key: u.Key, UploadId: u.UploadId})
			return err == nil && len(lp.Parts) > 0
		}
		// interrupted runs bss3put on stream until the server holds a
		// part of a new upload, kills it and returns that upload.
		interrupted := func(stream string) types.MultipartUpload {
			known := uploads()
			var found types.MultipartUpload
			killedPut(t, m.Env(), url, stream, 12<<20, func() bool {
				for id, u := range uploads() {
					if _, ok := known[id]; !ok && hasParts(u) {
						found = u
						return true
					}
				}
				return false
			})
			return found
		}
		old := interrupted(s1)
		// An upload outside the prefix is never touched.
		other, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(m.Bucket), Key: aws.String("other/x")})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		young := interrupted(s2)
		oldID, youngID, otherID := aws.ToString(old.UploadId), aws.ToString(young.UploadId), aws.ToString(other.UploadId)
		if !strings.HasPrefix(aws.ToString(old.Key), "inc/s1/") || !strings.HasPrefix(aws.ToString(young.Key), "inc/s2/") {
			t.Fatalf("uploads of %s and %s", aws.ToString(old.Key), aws.ToString(young.Key))
		}
		left := func(want ...string) {
			t.Helper()
			ups := uploads()
			if len(ups) != len(want) {
				t.Errorf("%d uploads on the server, want %d", len(ups), len(want))
			}
			for _, id := range want {
				if _, ok := ups[id]; !ok {
					t.Errorf("upload %s is gone", id)
				}
			}
		}

		// Younger than an hour: nothing to do.
		if r := mustOsh(t, m.Env(), `bsrm --incomplete 1h "$1"`, url); r.Stdout != "" {
			t.Errorf("bsrm --incomplete 1h printed:\n%s", r.Stdout)
		}
		left(oldID, youngID, otherID)
		// A dry run names both and aborts nothing.
		got := abortLines(t, mustOsh(t, m.Env(), `bsrm -n --incomplete 0s "$1"`, url).Stdout, url)
		if len(got) != 2 || got[oldID] != "dry-run" || got[youngID] != "dry-run" {
			t.Errorf("dry run: %v", got)
		}
		left(oldID, youngID, otherID)
		// An age between the two uploads' starts: the old one only.
		mid := aws.ToTime(old.Initiated).Add(aws.ToTime(young.Initiated).Sub(aws.ToTime(old.Initiated)) / 2)
		age := time.Since(mid).Round(time.Millisecond).String()
		got = abortLines(t, mustOsh(t, m.Env(), `bsrm --incomplete "$2" "$1"`, url, age).Stdout, url)
		if len(got) != 1 || got[oldID] != "aborted" {
			t.Errorf("bsrm --incomplete %s (between the two): %v", age, got)
		}
		left(youngID, otherID)
		if _, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(m.Bucket), Key: old.Key, UploadId: old.UploadId}); err == nil {
			t.Error("the aborted upload's parts are still listed")
		}
		// 0s: every incomplete upload below the prefix.
		got = abortLines(t, mustOsh(t, m.Env(), `bsrm --incomplete 0s "$1"`, url).Stdout, url)
		if len(got) != 1 || got[youngID] != "aborted" {
			t.Errorf("bsrm --incomplete 0s: %v", got)
		}
		left(otherID)
		// A fresh upload of the stream sends it whole and completes.
		mustOsh(t, m.Env(), `bss3put "$1" < "$2"; bsls "$1" | grep -c '"key"' | grep -qx 1`, url, s1)
	})

	t.Run("file", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "store")
		url := "file://" + base + "/"
		rec := objRecords(t, mustOsh(t, nil, `bss3put "$1" < "$2"`, url, s1).Stdout)[0]
		partials := func() map[string]string { // upload id → path
			out := map[string]string{}
			filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if _, id, ok := strings.Cut(d.Name(), ".partial-"); ok {
						out[id] = p
					}
				}
				return nil
			})
			return out
		}
		interrupted := func() (string, string) {
			known := partials()
			var id, p string
			killedPut(t, nil, url, s2, 12<<20, func() bool {
				for i, q := range partials() {
					if fi, err := os.Stat(q); known[i] == "" && err == nil && fi.Size() >= 1<<20 {
						id, p = i, q
						return true
					}
				}
				return false
			})
			return id, p
		}
		oldID, oldPath := interrupted()
		two := time.Now().Add(-2 * time.Hour)
		if err := os.Chtimes(oldPath, two, two); err != nil {
			t.Fatal(err)
		}
		youngID, youngPath := interrupted()
		if filepath.Base(oldPath) == filepath.Base(youngPath) || !strings.HasPrefix(filepath.Base(oldPath), ".") {
			t.Fatalf("temporary files %s, %s", oldPath, youngPath)
		}

		got := abortLines(t, mustOsh(t, nil, `bsrm --incomplete 1h "$1"`, url).Stdout, url)
		if len(got) != 1 || got[oldID] != "aborted" {
			t.Errorf("bsrm --incomplete 1h: %v", got)
		}
		if _, err := os.Stat(oldPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it removed", oldPath, err)
		}
		if _, err := os.Stat(youngPath); err != nil {
			t.Errorf("the young temporary file: %v", err)
		}
		got = abortLines(t, mustOsh(t, nil, `bsrm -n --incomplete 0s "$1"`, url).Stdout, url)
		if len(got) != 1 || got[youngID] != "dry-run" {
			t.Errorf("dry run: %v", got)
		}
		if _, err := os.Stat(youngPath); err != nil {
			t.Errorf("the dry run removed %s: %v", youngPath, err)
		}
		got = abortLines(t, mustOsh(t, nil, `bsrm --incomplete 0s "$1"`, url).Stdout, url)
		if len(got) != 1 || got[youngID] != "aborted" {
			t.Errorf("bsrm --incomplete 0s: %v", got)
		}
		if n := len(partials()); n != 0 {
			t.Errorf("%d temporary files left", n)
		}
		// The directory the interrupted writes were in is gone, the
		// complete object is untouched.
		if _, err := os.Stat(filepath.Dir(youngPath)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it removed with its last temporary file", filepath.Dir(youngPath), err)
		}
		ls := objRecords(t, mustOsh(t, nil, `bsls "$1"`, url).Stdout)
		if len(ls) != 1 || ls[0].Key != rec.Key {
			t.Errorf("objects after bsrm --incomplete: %+v", ls)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, c := range []struct{ args, want string }{
			{`--incomplete 1x file:///tmp/x/`, "invalid age"},
			{`--incomplete=-1h file:///tmp/x/`, "invalid age"},
			{`--incomplete 1h /tmp/x/`, "not an object store"},
			{`--incomplete 1h file:///tmp/x/name`, "store directories"},
		} {
			r := osh(t, nil, `bsrm `+c.args)
			if r.Code != 2 || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("bsrm %s: exit %d, stderr %s", c.args, r.Code, r.Stderr)
			}
		}
	})
}

// recordingProxy forwards requests to endpoint and keeps each one's
// method, path, query and headers.
type recordingProxy struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method string
	path   string
	query  url.Values
	header http.Header
}

func startRecordingProxy(t *testing.T, endpoint string) (*recordingProxy, string) {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := &recordingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		rp.reqs = append(rp.reqs, recorded{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone()})
		rp.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rp, srv.URL
}

func (rp *recordingProxy) take() []recorded {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	r := rp.reqs
	rp.reqs = nil
	return r
}

// TestS3PutRequests looks at what bss3put sends: parts and single puts
// carry the CRC32C computed here and no checksum of the SDK's choosing; a
// multipart upload asks for a full-object CRC32C (so the server verifies
// the whole object and can set the metadata without rewriting it) and gets
// its storage class from the metadata copy, so that archive classes,
// which refuse reading, work. The stored objects have the class, the
// metadata, and a CRC32C equal to the object's.
func TestS3PutRequests(t *testing.T) {
	m := harness.StartMinIO(t)
	rp, proxyURL := startRecordingProxy(t, m.Endpoint)
	env := append(m.Env(), "AWS_ENDPOINT_URL="+proxyURL)
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 2, 3*1024)
	ctx := context.Background()
	cl := m.Client()
	sdkChosen := []string{"X-Amz-Sdk-Checksum-Algorithm", "X-Amz-Trailer", "X-Amz-Checksum-Crc32", "X-Amz-Checksum-Crc64nvme", "X-Amz-Checksum-Sha1", "X-Amz-Checksum-Sha256"}
	for _, c := range []struct {
		name, snap, put string
		multipart       bool
	}{
		{"multipart", "s2", "--part-size 5MiB", true},
		{"single", "s1", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := "s3://" + m.Bucket + "/" + c.name + "/"
			rp.take()
			rec := objRecords(t, mustOsh(t, env, `bssend "$1/$2" | bss3put --storage-class REDUCED_REDUNDANCY `+c.put+` "$3"`, snaps, c.snap, url).Stdout)[0]
			var parts, creates, copies, puts int
			for _, r := range rp.take() {
				// The writers' lock and the record of a started upload
				// (bsrm --incomplete) are bookkeeping, not the stream.
				if strings.Contains(r.path, "/.buttersink.lock") || strings.Contains(r.path, "/.bs-uploads/") {
					continue
				}
				for _, h := range sdkChosen {
					if v := r.header.Get(h); v != "" {
						t.Errorf("%s %v: SDK-chosen checksum header %s: %s", r.method, r.query, h, v)
					}
				}
				switch {
				case r.method == "PUT" && r.query.Has("partNumber"):
					parts++
					if r.header.Get("X-Amz-Checksum-Crc32c") == "" {
						t.Errorf("part %s without its CRC32C", r.query.Get("partNumber"))
					}
				case r.method == "POST" && r.query.Has("uploadId"):
					// Completing never replaces an object.
					if r.header.Get("If-None-Match") != "*" {
						t.Error("multipart upload completed without If-None-Match: *")
					}
				case r.method == "POST" && r.query.Has("uploads"):
					creates++
					if a, ty := r.header.Get("X-Amz-Checksum-Algorithm"), r.header.Get("X-Amz-Checksum-Type"); a != "CRC32C" || ty != "FULL_OBJECT" {
						t.Errorf("multipart upload created with checksum %q type %q, want CRC32C FULL_OBJECT", a, ty)
					}
					if sc := r.header.Get("X-Amz-Storage-Class"); sc != "" {
						t.Errorf("multipart upload created with storage class %q, want it from the copy", sc)
					}
				case r.method == "PUT" && r.header.Get("X-Amz-Copy-Source") != "":
					copies++
					if sc := r.header.Get("X-Amz-Storage-Class"); sc != "REDUCED_REDUNDANCY" {
						t.Errorf("metadata copy with storage class %q", sc)
					}
					if a := r.header.Get("X-Amz-Checksum-Algorithm"); a != "" {
						t.Errorf("metadata copy asks for a new %s checksum (the server would rewrite the object)", a)
					}
				case r.method == "PUT" && strings.Contains(r.path, "/.bs-uploads/"):
					// The record of a multipart upload in progress.
					if !c.multipart {
						t.Errorf("single put records an upload: %s", r.path)
					}
				case r.method == "PUT":
					puts++
					if r.header.Get("X-Amz-Checksum-Crc32c") == "" {
						t.Error("single put without its CRC32C")
					}
					if r.header.Get("If-None-Match") != "*" {
						t.Error("single put without If-None-Match: *")
					}
					if sc := r.header.Get("X-Amz-Storage-Class"); sc != "REDUCED_REDUNDANCY" {
						t.Errorf("single put with storage class %q", sc)
					}
				}
			}
			if c.multipart && (parts != 2 || creates != 1 || copies != 1 || puts != 0) || !c.multipart && (parts+creates+copies != 0 || puts != 1) {
				t.Errorf("%d parts, %d uploads created, %d copies, %d single puts", parts, creates, copies, puts)
			}

			key := aws.String(c.name + "/" + rec.Key)
			h, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: key, ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			if h.StorageClass != "REDUCED_REDUNDANCY" || len(h.Metadata["bs-stream-sha256"]) != 64 || h.Metadata["bs-encoded-size"] != strconv.FormatInt(aws.ToInt64(h.ContentLength), 10) {
				t.Errorf("stored with class %q, metadata %v", h.StorageClass, h.Metadata)
			}
			obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.Bucket), Key: key})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var sum [4]byte
			binary.BigEndian.PutUint32(sum[:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
			if want := base64.StdEncoding.EncodeToString(sum[:]); aws.ToString(h.ChecksumCRC32C) != want || h.ChecksumType != types.ChecksumTypeFullObject {
				t.Errorf("object checksum CRC32C %q type %q, want %s of the whole object", aws.ToString(h.ChecksumCRC32C), h.ChecksumType, want)
			}
		})
	}
}
