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
	m := &MinIO{AccessKey: "bs" + randomHex(8), SecretKey: randomHex(20), Bucket: "bs-test", DataDir: filepath.Join(dir, "data")}
	var cmd *exec.Cmd
	var logf *os.File
	var exited chan struct{}
	for attempt := 0; ; attempt++ {
		port, cport := freePort(t), freePort(t)
		m.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
		cmd = exec.Command(bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
			"--console-address", fmt.Sprintf("127.0.0.1:%d", cport), m.DataDir)
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off")
		logf, err = os.Create(filepath.Join(dir, "minio.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start minio: %v", err)
		}
		exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(cmd, exited)
		if waitReady(m.Endpoint, exited, 30*time.Second) {
			break
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		logf.Close()
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
			t.Fatalf("minio did not become ready: %s", log)
		}
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logf.Close()
	})
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
