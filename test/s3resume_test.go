package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/stage"
	"github.com/buttersink/buttersink/test/harness"
)

// genStream writes a send stream of one snapshot "gen" carrying about
// size bytes of file data: alternating MiB of random bytes (which zstd
// cannot shrink) and of text (which it can), the same for the same size
// every time, as bssend regenerates a stream (another seed gives other
// random bytes under the same snapshot). It returns the stream's SHA-256.
func genStream(w io.Writer, size, seed int64) (string, error) {
	h := sha256.New()
	out := io.MultiWriter(w, h)
	b := sendstream.AppendHeader(nil, 1)
	ct := make([]byte, 8)
	binary.LittleEndian.PutUint64(ct, 7)
	b = sendstream.AppendCommand(b, 1, sendstream.CmdSubvol, sendstream.Attr{Type: sendstream.AttrPath, Value: []byte("gen")},
		sendstream.Attr{Type: sendstream.AttrUUID, Value: bytes.Repeat([]byte{0x5a}, 16)}, sendstream.Attr{Type: sendstream.AttrCTransID, Value: ct})
	rnd := make([]byte, 1<<20)
	rand.New(rand.NewSource(seed)).Read(rnd)
	var text bytes.Buffer
	for i := 0; text.Len() < 1<<20; i++ {
		fmt.Fprintf(&text, "line %d of a file that compresses well\n", i)
	}
	txt := text.Bytes()[:1<<20]
	const chunk = 64 << 10
	off := make([]byte, 8)
	for pos := int64(0); pos < size; pos += chunk {
		mib := pos >> 20
		src := txt
		if mib%2 == 0 {
			src = rnd
		}
		data := src[pos&(1<<20-1):][:chunk]
		if pos&(1<<20-1) == 0 {
			// Each MiB differs from the others by its first bytes.
			data = append(fmt.Appendf(nil, "%d-", mib), data[len(fmt.Sprint(mib))+1:]...)
		}
		binary.LittleEndian.PutUint64(off, uint64(pos))
		b = sendstream.AppendCommand(b, 1, sendstream.CmdWrite, sendstream.Attr{Type: sendstream.AttrPath, Value: []byte("f")},
			sendstream.Attr{Type: sendstream.AttrFileOffset, Value: off}, sendstream.Attr{Type: sendstream.AttrData, Value: data})
		if len(b) >= 1<<20 {
			if _, err := out.Write(b); err != nil {
				return "", err
			}
			b = b[:0]
		}
	}
	b = sendstream.AppendCommand(b, 1, sendstream.CmdEnd)
	if _, err := out.Write(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// countingProxy forwards every request to the server and counts the
// body bytes of the object data PUT (parts and single objects, not the
// store's bookkeeping): what an upload costs on the wire.
type countingProxy struct {
	put atomic.Int64
	url string
}

func startCountingProxy(t *testing.T, endpoint string) *countingProxy {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cp := &countingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// A killed client cuts its requests: not news.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && !strings.Contains(r.URL.Path, "/.bs-uploads/") && !strings.Contains(r.URL.Path, "/.buttersink.lock") &&
			r.Header.Get("X-Amz-Copy-Source") == "" && r.ContentLength > 0 {
			cp.put.Add(r.ContentLength)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cp.url = srv.URL
	return cp
}

// putRun is one bss3put of a generated stream through the proxy. With
// killAt > 0 it is killed (SIGKILL) once that many object bytes were PUT;
// then killed tells whether it was (it may have finished first).
type putRun struct {
	t        *testing.T
	env      []string
	args     []string
	size     int64
	killAt   int64
	seed     int64
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	sum      string
	killed   bool
	exitCode int
}

func (r *putRun) run(proxy *countingProxy) {
	t := r.t
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.Bin(t), "bss3put"), r.args...)
	cmd.Env = append(append(os.Environ(), r.env...), "AWS_ENDPOINT_URL="+proxy.url)
	cmd.Stdout, cmd.Stderr = &r.stdout, &r.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fed := make(chan string, 1)
	go func() {
		sum, _ := genStream(in, r.size, 9+r.seed)
		in.Close()
		fed <- sum
	}()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	if r.killAt > 0 {
		tick := time.NewTicker(5 * time.Millisecond)
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-tick.C:
				if proxy.put.Load() >= r.killAt {
					cmd.Process.Kill()
					r.killed = true
					<-done
					break wait
				}
			}
		}
		tick.Stop()
	} else {
		<-done
	}
	r.exitCode = cmd.ProcessState.ExitCode()
	if !r.killed {
		r.sum = <-fed
	}
}

// heldBytes is what the server holds of the one multipart upload below
// prefix: its key, upload ID and the sizes of its parts.
func heldBytes(t *testing.T, m *harness.MinIO, prefix string) (key, id string, held int64, parts int) {
	t.Helper()
	ctx := context.Background()
	c := m.Client()
	// MinIO matches an upload's prefix only against its whole key.
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, u := range ups.Uploads {
		if !strings.HasPrefix(aws.ToString(u.Key), prefix) {
			continue
		}
		n++
		key, id = aws.ToString(u.Key), aws.ToString(u.UploadId)
	}
	if n != 1 {
		t.Fatalf("%d uploads below %s, want 1", n, prefix)
	}
	in := &s3.ListPartsInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: aws.String(id)}
	for {
		lp, err := c.ListParts(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range lp.Parts {
			held += aws.ToInt64(p.Size)
			parts++
		}
		if !aws.ToBool(lp.IsTruncated) {
			return
		}
		in.PartNumberMarker = lp.NextPartNumberMarker
	}
}

// stockDecode reads an object from the server and runs it through a shell
// pipeline of stock tools; it returns the SHA-256 of what comes out.
func stockDecode(t *testing.T, m *harness.MinIO, key, pipeline string, env ...string) string {
	t.Helper()
	g, err := m.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Body.Close()
	cmd := exec.Command("bash", "-o", "pipefail", "-c", pipeline+" | sha256sum")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = g.Body
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pipeline, err, stderr.String())
	}
	return strings.Fields(string(out))[0]
}

// records lists the resume records below a state directory.
func records(t *testing.T, state string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(state, "buttersink", "uploads"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(state, "buttersink", "uploads", e.Name()))
	}
	return out
}

// ageKey makes an age identity file in dir and returns it and its recipient.
func ageKey(t *testing.T, dir string) (string, string) {
	t.Helper()
	harness.RequireCommand(t, "age-keygen")
	harness.RequireCommand(t, "age")
	harness.RequireCommand(t, "zstd")
	key := filepath.Join(dir, "key")
	r := mustOsh(t, nil, `age-keygen -o "$1" 2>/dev/null && age-keygen -y "$1"`, key)
	return key, strings.TrimSpace(r.Stdout)
}

// TestBss3putResumeKilled: `bss3put --zstd -r R -R FILE` of a 1 GiB
// stream is killed (SIGKILL) five times at random points (fixed seed)
// between 10% and 90% of the upload; each rerun completes the object,
// PUTs at most what the server did not hold plus one part per upload
// slot, and the object decodes with the stock `age -d | zstd -d` to the
// exact stream. The resume record is private while the upload is
// interrupted and gone once it completes.
func TestBss3putResumeKilled(t *testing.T) {
	m := harness.StartMinIO(t)
	dir := t.TempDir()
	key, recipient := ageKey(t, dir)
	_, recipient2 := ageKey(t, t.TempDir())
	rfile := filepath.Join(dir, "recipients")
	os.WriteFile(rfile, []byte(recipient2+"\n"), 0o644)
	state := t.TempDir()
	env := append(m.Env(), "XDG_STATE_HOME="+state)
	proxy := startCountingProxy(t, m.Endpoint)
	size := int64(envInt("BS_S3RESUME_MIB", 1024)) << 20
	const part, conc = 8 << 20, 4
	prefix := "kill/"
	args := []string{"-v", "--zstd", "-r", recipient, "-R", rfile, "--part-size", "8MiB", "-j", fmt.Sprint(conc), "s3://" + m.Bucket + "/" + prefix}
	// The encoded size, to aim the kills: the stream repeats every 2 MiB,
	// so that of its first 64 MiB tells.
	var est countWriter
	enc, err := stage.NewEncoder(&est, stage.Encoding{Zstd: true, ZstdLevel: 3})
	if err != nil {
		t.Fatal(err)
	}
	genStream(enc, 64<<20, 9)
	enc.Close()
	encoded := int64(est) * (size >> 20) / 64
	objKey := ""
	rng := rand.New(rand.NewSource(17))
	for i := 0; i < 5; i++ {
		if objKey != "" {
			if _, err := m.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(objKey)}); err != nil {
				t.Fatal(err)
			}
		}
		frac := 0.1 + 0.8*rng.Float64()
		killed := &putRun{t: t, env: env, args: args, size: size, killAt: int64(frac * float64(encoded))}
		proxy.put.Store(0)
		killed.run(proxy)
		if !killed.killed {
			t.Fatalf("run %d: not killed at %.0f%% (exit %d)\n%s", i, 100*frac, killed.exitCode, killed.stderr.String())
		}
		_, _, held, parts := heldBytes(t, m, prefix)
		recs := records(t, state)
		if len(recs) != 1 {
			t.Fatalf("run %d: %d resume records, want 1", i, len(recs))
		}
		if fi, err := os.Lstat(recs[0]); err != nil || fi.Mode() != 0o600 {
			t.Errorf("run %d: resume record %v %v, want a file of mode 0600", i, fi, err)
		}
		if b, _ := os.ReadFile(recs[0]); !bytes.Contains(b, []byte("age_file_key")) {
			t.Errorf("run %d: record without the key: %s", i, b)
		}
		rerun := &putRun{t: t, env: env, args: args, size: size}
		proxy.put.Store(0)
		rerun.run(proxy)
		if rerun.exitCode != 0 {
			t.Fatalf("run %d rerun: exit %d\n%s", i, rerun.exitCode, rerun.stderr.String())
		}
		sent := proxy.put.Load()
		objKey = prefix + objRecords(t, rerun.stdout.String())[0].Key
		head, err := m.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(objKey)})
		if err != nil {
			t.Fatal(err)
		}
		encoded = aws.ToInt64(head.ContentLength)
		bound := encoded - held + conc*part
		t.Logf("run %d: killed at %.0f%% of the upload (%d parts, %d of %d bytes held), rerun sent %d bytes (bound %d)", i, 100*float64(held)/float64(encoded), parts, held, encoded, sent, bound)
		if float64(held) < 0.05*float64(encoded) || held > encoded {
			t.Errorf("run %d: killed with %d of %d bytes held", i, held, encoded)
		}
		if sent > bound {
			t.Errorf("run %d: rerun sent %d bytes, more than %d remaining + %d×%d", i, sent, encoded-held, conc, part)
		}
		if strings.Contains(rerun.stderr.String(), "WARN") {
			t.Errorf("run %d: rerun warned:\n%s", i, rerun.stderr.String())
		}
		if recs := records(t, state); len(recs) != 0 {
			t.Errorf("run %d: resume records left after completion: %v", i, recs)
		}
		if got := stockDecode(t, m, objKey, `age -d -i "$KEY" | zstd -d`, "KEY="+key); got != rerun.sum {
			t.Fatalf("run %d: age -d | zstd -d gives sha256 %s, stream %s", i, got, rerun.sum)
		}
	}
}

// countWriter counts what is written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// killAndRerun kills one bss3put of a generated stream of size bytes
// once killAt object bytes were PUT, then reruns it to the end. It
// returns the rerun, the bytes the server held between the two and the
// bytes the rerun PUT.
func killAndRerun(t *testing.T, m *harness.MinIO, proxy *countingProxy, env, args []string, prefix string, size, killAt, rerunSeed int64, between func()) (rerun *putRun, held, sent int64, heldParts int) {
	t.Helper()
	killed := &putRun{t: t, env: env, args: args, size: size, killAt: killAt}
	proxy.put.Store(0)
	killed.run(proxy)
	if !killed.killed {
		t.Fatalf("not killed (exit %d)\n%s", killed.exitCode, killed.stderr.String())
	}
	_, _, held, heldParts = heldBytes(t, m, prefix)
	if heldParts == 0 {
		t.Fatalf("killed before the server held a part")
	}
	if between != nil {
		between()
	}
	rerun = &putRun{t: t, env: env, args: args, size: size, seed: rerunSeed}
	proxy.put.Store(0)
	rerun.run(proxy)
	if rerun.exitCode != 0 {
		t.Fatalf("rerun: exit %d\n%s", rerun.exitCode, rerun.stderr.String())
	}
	return rerun, held, proxy.put.Load(), heldParts
}

// TestBss3putResumeEncodings: every encoding, alone and combined,
// resumes: the rerun keeps every part the server holds and the object
// decodes to the stream. A filter whose output is not reproducible makes
// the rerun store the object again from the start, with a warning, and so
// does a rerun whose stream is not the one the first run read. The
// age key's record is refused when it is a link, not private, or the
// record of another upload (the rerun then starts over, writing a new
// record, never through the link), and removed by bsrm --incomplete
// with the upload.
func TestBss3putResumeEncodings(t *testing.T) {
	m := harness.StartMinIO(t)
	dir := t.TempDir()
	key, recipient := ageKey(t, dir)
	state := t.TempDir()
	env := append(m.Env(), "XDG_STATE_HOME="+state)
	proxy := startCountingProxy(t, m.Endpoint)
	const size, part, conc = 40 << 20, 5 << 20, 2
	type tc struct {
		name         string
		put, get     []string
		reproducible bool
		rerunSeed    int64
		between      func(t *testing.T)
		warn         string
	}
	record := func(t *testing.T) string {
		recs := records(t, state)
		if len(recs) != 1 {
			t.Fatalf("%d resume records, want 1", len(recs))
		}
		if fi, err := os.Lstat(recs[0]); err != nil || fi.Mode() != 0o600 {
			t.Fatalf("resume record %v %v, want mode 0600", fi, err)
		}
		return recs[0]
	}
	target := filepath.Join(dir, "target")
	age := []string{"-r", recipient}
	ageGet := []string{"-i", key}
	cases := []tc{
		{name: "zstd", put: []string{"--zstd"}, reproducible: true},
		{name: "age", put: age, get: ageGet, reproducible: true},
		{name: "filter", put: []string{"--filter", "gzip -n -1"}, get: []string{"--filter", "gzip -dc"}, reproducible: true},
		{name: "all", put: []string{"--zstd", "-r", recipient, "--filter", "gzip -n -1"}, get: []string{"-i", key, "--filter", "gzip -dc"}, reproducible: true},
		{name: "random-filter", put: []string{"--filter", "{ head -c 16 /dev/urandom; cat; }"}, get: []string{"--filter", "tail -c +17"},
			warn: "filter whose output is not reproducible"},
		// The rerun's stream is not the one the first run read.
		{name: "other-stream", put: []string{"--zstd", "-r", recipient}, get: ageGet, rerunSeed: 1, warn: "another stream"},
		{name: "record-link", put: age, get: ageGet, warn: "refused", between: func(t *testing.T) {
			r := record(t)
			os.WriteFile(target, []byte("keep"), 0o600)
			os.Remove(r)
			if err := os.Symlink(target, r); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "record-mode", put: age, get: ageGet, warn: "refused", between: func(t *testing.T) {
			os.Chmod(record(t), 0o644)
		}},
		{name: "record-other-upload", put: age, get: ageGet, warn: "refused", between: func(t *testing.T) {
			r := record(t)
			b, _ := os.ReadFile(r)
			b = regexp.MustCompile(`"upload_id":"[^"]*"`).ReplaceAll(b, []byte(`"upload_id":"another"`))
			os.WriteFile(r, b, 0o600)
		}},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, tc{name: "record-other-owner", put: age, get: ageGet, warn: "refused", between: func(t *testing.T) {
			os.Chown(record(t), 65534, 65534)
		}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := c.name + "/"
			url := "s3://" + m.Bucket + "/" + prefix
			args := append(append([]string{"-v", "--part-size", "5MiB", "-j", fmt.Sprint(conc)}, c.put...), url)
			between := func() {
				if c.between != nil {
					c.between(t)
				}
			}
			rerun, held, sent, heldParts := killAndRerun(t, m, proxy, env, args, prefix, size, 3*part, c.rerunSeed, between)
			stderr := rerun.stderr.String()
			kept := strings.Count(stderr, "part kept")
			recs := objRecords(t, rerun.stdout.String())
			head, err := m.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(prefix + recs[0].Key)})
			if err != nil {
				t.Fatal(err)
			}
			encoded := aws.ToInt64(head.ContentLength)
			t.Logf("%d parts (%d bytes) held, %d kept, rerun sent %d of %d bytes", heldParts, held, kept, sent, encoded)
			if c.reproducible {
				if kept != heldParts || sent > encoded-held+conc*part || strings.Contains(stderr, "WARN") {
					t.Errorf("kept %d of %d parts held, sent %d bytes (%d remaining)\n%s", kept, heldParts, sent, encoded-held, stderr)
				}
			} else if kept != 0 || !strings.Contains(stderr, c.warn) || !strings.Contains(stderr, "storing the object again from the start") {
				t.Errorf("kept %d parts, want a restart with a warning (%q)\n%s", kept, c.warn, stderr)
			}
			got := mustOsh(t, env, `bss3get "$@" | sha256sum`, append(c.get, url+recs[0].Key)...).Stdout
			if strings.Fields(got)[0] != rerun.sum {
				t.Errorf("bss3get gives sha256 %s, stream %s", got, rerun.sum)
			}
			if recs := records(t, state); len(recs) != 0 {
				t.Errorf("resume records left: %v", recs)
			}
			if b, err := os.ReadFile(target); c.name == "record-link" && (err != nil || string(b) != "keep") {
				t.Errorf("the link's target was touched: %q %v", b, err)
			}
		})
	}

	// bsrm --incomplete aborts the upload and removes its record.
	t.Run("abort", func(t *testing.T) {
		prefix := "abort/"
		url := "s3://" + m.Bucket + "/" + prefix
		killed := &putRun{t: t, env: env, args: []string{"--zstd", "-r", recipient, "--part-size", "5MiB", url}, size: size, killAt: 2 * part}
		proxy.put.Store(0)
		killed.run(proxy)
		if !killed.killed {
			t.Fatalf("not killed (exit %d)\n%s", killed.exitCode, killed.stderr.String())
		}
		record(t)
		mustOsh(t, env, `bsrm --incomplete 0s "$1"`, url)
		if recs := records(t, state); len(recs) != 0 {
			t.Errorf("resume records left after bsrm --incomplete: %v", recs)
		}
	})
}
