package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/buttersink/buttersink/test/harness"
)

// interruptRate is how fast the interrupted runs are fed (bytes/s): slow
// enough that a signal at a random moment lands mid-transfer.
const interruptRate = 12 << 20

// feedSlowly writes the stream to w at interruptRate and closes w; it
// stops at the first write error (the reader was killed).
func feedSlowly(w io.WriteCloser, stream []byte) {
	defer w.Close()
	const chunk = 64 << 10
	start := time.Now()
	for off := 0; off < len(stream); off += chunk {
		if _, err := w.Write(stream[off:min(off+chunk, len(stream))]); err != nil {
			return
		}
		due := start.Add(time.Duration(float64(off+chunk) / interruptRate * float64(time.Second)))
		time.Sleep(time.Until(due))
	}
}

// TestBss3putInterrupt: bss3put, fed a stream slowly, is sent SIGINT or
// SIGTERM at a random moment (fixed seed), for every stage combination and
// both stores, fifty runs in all. Each run exits 130 (or 0 if the signal
// came after the end) with one line, "bss3put: error: interrupted", no
// panic; it leaves no object, no temporary file, and no multipart upload
// but the resumable one bss3put(1) says is kept (every encoding, age with
// its key in a local resume record).
// A rerun then stores the stream and bss3get gives it back.
func TestBss3putInterrupt(t *testing.T) {
	m := harness.StartMinIO(t)
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 1, 10*1024)
	dir := t.TempDir()
	streamFile := filepath.Join(dir, "stream")
	mustOsh(t, nil, `bssend "$1/s1" > "$2"; age-keygen -o "$3/key" 2>/dev/null`, snaps, streamFile, dir)
	stream, err := os.ReadFile(streamFile)
	if err != nil {
		t.Fatal(err)
	}
	feedTime := time.Duration(float64(len(stream)) / interruptRate * float64(time.Second))
	key := filepath.Join(dir, "key")
	recipient := strings.TrimSpace(mustOsh(t, nil, `age-keygen -y "$1"`, key).Stdout)
	fileRoot := t.TempDir()
	// The age key of a kept upload is kept here.
	state := "XDG_STATE_HOME=" + t.TempDir()
	combos := []struct {
		name     string
		put, get []string
	}{
		{"none", nil, nil},
		{"zstd", []string{"--zstd"}, nil},
		{"age", []string{"-r", recipient}, []string{"-i", key}},
		{"filter", []string{"--filter", "gzip -1"}, []string{"--filter", "gzip -dc"}},
		{"all", []string{"--zstd", "-r", recipient, "--filter", "gzip -1"}, []string{"-i", key, "--filter", "gzip -dc"}},
	}
	rng := rand.New(rand.NewPCG(12, 3))
	c := m.Client()
	ctx := context.Background()
	bin := harness.Bin(t)
	run := 0
	interrupted := 0
	for _, st := range []string{"s3", "file"} {
		for _, combo := range combos {
			var url string
			for i := 0; i < 5; i++ {
				run++
				prefix := fmt.Sprintf("%s-%s-%d/", st, combo.name, i)
				if st == "s3" {
					url = "s3://" + m.Bucket + "/" + prefix
				} else {
					url = "file://" + filepath.Join(fileRoot, prefix) + "/"
				}
				sig := syscall.SIGINT
				if run%2 == 0 {
					sig = syscall.SIGTERM
				}
				// From when the command surely handles signals to just
				// after the end of its input.
				after := 100*time.Millisecond + time.Duration(rng.Int64N(int64(feedTime+200*time.Millisecond)))
				args := append([]string{"--part-size", "5MiB", "-j", "2"}, combo.put...)
				cmd := exec.Command(filepath.Join(bin, "bss3put"), append(args, url)...)
				cmd.Env = append(append(os.Environ(), m.Env()...), state)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				in, err := cmd.StdinPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go feedSlowly(in, stream)
				// A loaded machine may take longer than the 100 ms to start
				// it: the signal is sent only once the command handles it.
				waitCatches(t, cmd.Process.Pid, sig)
				time.Sleep(after)
				cmd.Process.Signal(sig)
				cmd.Wait()
				code := cmd.ProcessState.ExitCode()
				what := fmt.Sprintf("run %d (%s %s, %v after %v)", run, st, combo.name, sig, after.Round(time.Millisecond))
				if s := stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine") {
					t.Fatalf("%s: panic:\n%s", what, s)
				}
				if code == 0 {
					// The signal came after the end: the object is stored.
					if len(objRecords(t, stdout.String())) != 1 {
						t.Errorf("%s: exit 0 without a record:\n%s", what, stdout.String())
					}
					continue
				}
				interrupted++
				if code != 130 || stderr.String() != "bss3put: error: interrupted\n" {
					t.Errorf("%s: exit %d, stderr:\n%s", what, code, stderr.String())
				}
				// Nothing looks stored, nothing is left but a resumable
				// upload; unless the object was stored (and its record
				// printed) before the signal, ending the read of the next.
				// (A file store the run never got to create lists empty.)
				listed := mustOsh(t, m.Env(), `case $1 in file://*) [ -d "${1#file://}" ] || exit 0 ;; esac; bss3ls "$1"`, url).Stdout
				if stdout.Len() == 0 && len(objRecords(t, listed)) == 1 {
					// The signal landed after the object was stored whole
					// (it lists only with its digest), before its record
					// was printed: stored, not reported; the rerun sees it.
					t.Logf("%s: stored before the signal took effect", what)
					continue
				}
				if keys(t, listed) != keys(t, stdout.String()) {
					t.Errorf("%s: listed as stored:\n%s\nprinted:\n%s", what, listed, stdout.String())
				}
				if stdout.Len() > 0 {
					continue
				}
				if st == "s3" {
					objs, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String(prefix)})
					if err != nil {
						t.Fatal(err)
					}
					for _, o := range objs.Contents {
						// A kept (resumable) upload keeps its record, so
						// that bsrm --incomplete finds it (bss3put(1)).
						if strings.HasPrefix(aws.ToString(o.Key), prefix+".bs-uploads/") {
							continue
						}
						t.Errorf("%s: object left: %s", what, aws.ToString(o.Key))
					}
				} else {
					filepath.WalkDir(filepath.Join(fileRoot, prefix), func(p string, d fs.DirEntry, err error) error {
						if err == nil && !d.IsDir() {
							t.Errorf("%s: file left: %s", what, p)
						}
						return nil
					})
				}
			}
			// The rerun stores the stream (resuming a kept upload) and it
			// comes back whole.
			r := mustOsh(t, append(m.Env(), "STREAM="+streamFile, state), `bss3put --part-size 5MiB "$@" < "$STREAM"`, append(combo.put, url)...)
			recs := objRecords(t, r.Stdout)
			if len(recs) != 1 {
				t.Fatalf("%s %s rerun: %s", st, combo.name, r.Stdout)
			}
			mustOsh(t, append(m.Env(), "STREAM="+streamFile, "OBJ="+url+recs[0].Key),
				`a=$(bss3get "$@" "$OBJ" | sha256sum); b=$(sha256sum < "$STREAM"); [ "$a" = "$b" ]`, combo.get...)
			if st == "s3" {
				ups, _ := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.Bucket)})
				for _, u := range ups.Uploads {
					if strings.HasPrefix(url, "s3://"+m.Bucket+"/"+aws.ToString(u.Key)) || strings.HasPrefix(aws.ToString(u.Key), strings.TrimPrefix(url, "s3://"+m.Bucket+"/")) {
						t.Errorf("%s %s: upload left after the rerun: %s", st, combo.name, aws.ToString(u.Key))
					}
				}
			}
		}
	}
	t.Logf("%d runs, %d interrupted mid-way", run, interrupted)
	if run != 50 || interrupted < 35 {
		t.Errorf("%d runs, %d interrupted: the signals should land mid-transfer", run, interrupted)
	}
}

// TestBss3putUndigestedObject: an object under its final key that was
// completed from a multipart upload and never given its digest (what an
// older bss3put left when stopped between completing the upload and
// copying the metadata on) is not a stored stream: bss3ls and bsplan do
// not count it, and the next bss3put replaces it with the whole stream.
func TestBss3putUndigestedObject(t *testing.T) {
	m := harness.StartMinIO(t)
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 1, 6*1024)
	dir := t.TempDir()
	stream := filepath.Join(dir, "stream")
	mustOsh(t, nil, `bssend "$1/s1" > "$2"`, snaps, stream)
	// The key bss3put gives the stream, from a file store.
	recs := objRecords(t, mustOsh(t, nil, `bss3put "$1" < "$2"`, "file://"+dir+"/probe/", stream).Stdout)
	if len(recs) != 1 {
		t.Fatalf("records: %+v", recs)
	}
	key := "bk/" + recs[0].Key
	data, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	// As the old bss3put: metadata of CreateMultipartUpload (no digest),
	// the first 5 MiB only, completed.
	c := m.Client()
	ctx := context.Background()
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(m.Bucket), Key: aws.String(key),
		Metadata: map[string]string{"bs-format": "bs1", "bs-encoding": "", "bs-part-scheme": "fixed-5242880"}})
	if err != nil {
		t.Fatal(err)
	}
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(data[:5<<20])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}}); err != nil {
		t.Fatal(err)
	}
	url := "s3://" + m.Bucket + "/bk/"
	if out := mustOsh(t, m.Env(), `bss3ls "$1"`, url).Stdout; out != "" {
		t.Errorf("bss3ls lists the undigested object as stored:\n%s", out)
	}
	if out := mustOsh(t, m.Env(), `bsplan "$1" "$2"`, snaps+"/", url).Stdout; !strings.Contains(out, recs[0].UUID.String()) {
		t.Errorf("bsplan does not plan to store the stream again:\n%s", out)
	}
	r := mustOsh(t, m.Env(), `bss3put --part-size 5MiB "$1" < "$2"`, url, stream)
	if got := objRecords(t, r.Stdout); len(got) != 1 || got[0].Key != recs[0].Key || got[0].StreamSize == nil || *got[0].StreamSize != int64(len(data)) {
		t.Errorf("rerun: %s\n%s", r.Stdout, r.Stderr)
	}
	mustOsh(t, m.Env(), `a=$(bss3get "$1" | sha256sum); b=$(sha256sum < "$2"); [ "$a" = "$b" ]`, url+recs[0].Key, stream)
	if out := objRecords(t, mustOsh(t, m.Env(), `bss3ls "$1"`, url).Stdout); len(out) != 1 {
		t.Errorf("bss3ls after the rerun: %+v", out)
	}
}

// keys are the object keys of records, one a line.
func keys(t *testing.T, records string) string {
	var b strings.Builder
	for _, r := range objRecords(t, records) {
		b.WriteString(r.Key + "\n")
	}
	return b.String()
}

// waitCatches waits until process pid handles sig itself: until it has
// read 128 KiB (its input, which it reads only once its run started, after
// cli.Main's signal handling), so that the signal tests the command's
// handling, not the runtime's default at startup (SigCgt cannot tell: Go
// catches SIGINT and SIGTERM from its first instruction).
func waitCatches(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			return // it ended: the caller sees how
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "rchar:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && n >= 128<<10 {
					return
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d read no input in 20 s (to be sent %v)", pid, sig)
}
