package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIO is a MinIO server run for one test: on 127.0.0.1, a free port, a
// temporary data directory and random root credentials, with one bucket.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Bucket    string
	DataDir   string

	bin, dir, addr, caddr string
	cmd                   *exec.Cmd
	logf                  *os.File
	exited                chan struct{}
}

// start runs the server on m's addresses and waits until it is ready.
func (m *MinIO) start(t testing.TB) bool {
	m.cmd = exec.Command(m.bin, "server", "--quiet", "--address", m.addr, "--console-address", m.caddr, m.DataDir)
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	var err error
	if m.logf, err = os.OpenFile(filepath.Join(m.dir, "minio.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
		t.Fatal(err)
	}
	m.cmd.Stdout, m.cmd.Stderr = m.logf, m.logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	m.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(m.cmd, m.exited)
	return waitReady(m.Endpoint, m.exited, 30*time.Second)
}

func (m *MinIO) kill() {
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
	m.logf.Close()
}

// stop ends the server: SIGTERM, SIGKILL after 10 s.
func (m *MinIO) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
	m.logf.Close()
}

// Restart stops the server and starts it again on the same address and
// data, as a host reboot would: what it kept only in memory is gone.
func (m *MinIO) Restart(t testing.TB) {
	t.Helper()
	m.stop()
	if !m.start(t) {
		log, _ := os.ReadFile(filepath.Join(m.dir, "minio.log"))
		t.Fatalf("minio did not come back: %s", log)
	}
	// The object layer can lag behind "ready".
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		_, err := m.Client().HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String(m.Bucket)})
		if err == nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("after restart: %v", err)
		}
	}
}

// MinIOBinary finds the server: $MINIO_BIN, /root/go/bin/minio, $(go env
// GOPATH)/bin/minio, then PATH.
func MinIOBinary() string {
	cands := []string{os.Getenv("MINIO_BIN"), "/root/go/bin/minio"}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		cands = append(cands, filepath.Join(strings.TrimSpace(string(out)), "bin", "minio"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// StartMinIO starts a server with bucket "bs-test" and stops it (and
// removes its data) at cleanup.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin := MinIOBinary()
	Require(t, bin != "", "the MinIO server (MINIO_BIN, /root/go/bin/minio or $(go env GOPATH)/bin/minio)")
	dir, err := os.MkdirTemp("", "bs-minio-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m := &MinIO{AccessKey: "bs" + randomHex(8), SecretKey: randomHex(20), Bucket: "bs-test", DataDir: filepath.Join(dir, "data"), bin: bin, dir: dir}
	for attempt := 0; ; attempt++ {
		m.addr, m.caddr = fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		m.Endpoint = "http://" + m.addr
		if m.start(t) {
			break
		}
		m.kill()
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
			t.Fatalf("minio did not become ready: %s", log)
		}
	}
	t.Cleanup(m.stop)
	// "ready" can come before the object layer is initialized: retry.
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		_, err := m.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(m.Bucket)})
		if err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("create bucket: %v", err)
		}
	}
	return m
}

func waitReady(endpoint string, exited chan struct{}, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get(endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Env is the environment that points the commands (and the aws CLI) at the
// server with its root credentials.
func (m *MinIO) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_ENDPOINT_URL=" + m.Endpoint,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_CA_BUNDLE=",
		"BUCKET=" + m.Bucket,
	}
}

// Client is an S3 client of the server with root credentials, for tests to
// look at the server's side independently of the code under test.
func (m *MinIO) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
	})
}
