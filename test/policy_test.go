package test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/buttersink/buttersink/lib/snapshot"
	"github.com/buttersink/buttersink/test/harness"
)

// mcBinary finds the MinIO client test/deps.sh installs: $(go env
// GOPATH)/bin/mc, then PATH.
func mcBinary(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "mc")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	p, err := exec.LookPath("mc")
	harness.Require(t, err == nil, "the MinIO client mc (test/deps.sh installs it)")
	return p
}

// minioUser creates a MinIO user with the policy of an example file
// (BUCKET replaced by the test's bucket) and returns the environment
// that makes the commands act as that user.
func minioUser(t *testing.T, m *harness.MinIO, mc, user, policyFile string) []string {
	t.Helper()
	policy, err := os.ReadFile(filepath.Join(examplesDir(), "s3-policies", policyFile))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), policyFile)
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(policy), "BUCKET", m.Bucket)), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := "secret-" + user + "-0123456789"
	name := strings.TrimSuffix(policyFile, ".minio.json")
	host := "MC_HOST_bs=" + strings.Replace(m.Endpoint, "://", "://"+m.AccessKey+":"+m.SecretKey+"@", 1)
	mustOsh(t, []string{host, "MC_CONFIG_DIR=" + t.TempDir()}, `
		"$1" --quiet admin policy create bs "$2" "$3" >/dev/null
		"$1" --quiet admin user add bs "$4" "$5" >/dev/null
		"$1" --quiet admin policy attach bs "$2" --user "$4" >/dev/null`, mc, name, p, user, secret)
	return append(m.Env(), "AWS_ACCESS_KEY_ID="+user, "AWS_SECRET_ACCESS_KEY="+secret)
}

// clientAs is an S3 client of the server with a user's credentials.
func clientAs(m *harness.MinIO, user, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(user, secret, ""),
	})
}

// lsAs lists loc as the identity of env.
func lsAs(t *testing.T, env []string, loc string) []snapshot.Snapshot {
	t.Helper()
	var out []snapshot.Snapshot
	for _, l := range strings.Split(strings.TrimSpace(mustOsh(t, env, `bsls --json "$1"`, loc).Stdout), "\n") {
		if l == "" {
			continue
		}
		var s snapshot.Snapshot
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("bsls %s: %q: %v", loc, l, err)
		}
		out = append(out, s)
	}
	return out
}

func envValue(env []string, name string) string {
	v := ""
	for _, e := range env {
		if s, ok := strings.CutPrefix(e, name+"="); ok {
			v = s
		}
	}
	return v
}

// TestExampleS3Policies: the least-privilege policies of
// examples/s3-policies on MinIO. A host's backup user backs up to its own
// prefix (full and incremental, the lock and upload records included)
// and can delete no stored stream, neither with bsrm nor directly, and
// cannot write below another host's prefix; the prune user deletes.
func TestExampleS3Policies(t *testing.T) {
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 3, 6*1024)
	m := harness.StartMinIO(t)
	mc := mcBinary(t)
	backup := minioUser(t, m, mc, "host1", "backup-user.minio.json")
	prune := minioUser(t, m, mc, "pruner", "prune-user.minio.json")
	url := "s3://" + m.Bucket + "/host1/"

	// The backup identity backs up, twice: its lock and the records of
	// its multipart uploads are deleted at the end of each run.
	mustOsh(t, backup, `
		bsplan "$1/s1" "$2" | bssend | bss3put --part-size 5MiB "$2" >/dev/null
		bsplan "$1/" "$2" | bssend | bss3put --part-size 5MiB "$2" >/dev/null`, snaps, url)
	if got := paths(lsAs(t, backup, url)); got != "s1 s2 s3" {
		t.Fatalf("after the backups the store lists %q, want s1 s2 s3", got)
	}
	c := m.Client()
	ctx := context.Background()
	ls, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String("host1/")})
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for _, o := range ls.Contents {
		k := aws.ToString(o.Key)
		if strings.Contains(k, ".buttersink.lock") || strings.Contains(k, ".bs-uploads/") {
			t.Errorf("the backup identity left %s behind", k)
		}
		if strings.HasPrefix(k, "host1/s3/") {
			key = k
		}
	}

	// It cannot delete: bsrm fails, a direct DeleteObject is denied.
	if r := osh(t, backup, `bsrm "$1s3"`, url); r.Code == 0 || !strings.Contains(r.Stderr, "Access Denied") && !strings.Contains(r.Stderr, "AccessDenied") && !strings.Contains(r.Stderr, "denied") {
		t.Errorf("bsrm as the backup identity: exit %d, stderr %q; want a refusal", r.Code, r.Stderr)
	}
	bc := clientAs(m, "host1", envValue(backup, "AWS_SECRET_ACCESS_KEY"))
	_, err = bc.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(key)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Errorf("DeleteObject %s as the backup identity: %v, want AccessDenied", key, err)
	}
	_, err = bc.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(m.Bucket), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(key)}}}})
	if got := paths(lsAs(t, backup, url)); got != "s1 s2 s3" {
		t.Fatalf("after the backup identity's deletes (DeleteObjects: %v) the store lists %q", err, got)
	}
	// Nor write below another host's prefix.
	if r := osh(t, backup, `bsplan "$1/" "$2" | bssend | bss3put "$2"`, snaps, "s3://"+m.Bucket+"/host2/"); r.Code == 0 {
		t.Errorf("the backup identity of host1 stored below host2/")
	}

	// The prune identity deletes, with bsrm and directly.
	mustOsh(t, prune, `bsrm "$1s3" >/dev/null`, url)
	if got := paths(lsAs(t, prune, url)); got != "s1 s2" {
		t.Errorf("after bsrm as the prune identity the store lists %q, want s1 s2", got)
	}
	pc := clientAs(m, "pruner", envValue(prune, "AWS_SECRET_ACCESS_KEY"))
	recs := lsAs(t, prune, url+"s2")
	if _, err := pc.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String("host1/" + recs[0].Key)}); err != nil {
		t.Errorf("DeleteObject as the prune identity: %v", err)
	}
	if got := paths(lsAs(t, prune, url)); got != "s1" {
		t.Errorf("after a DeleteObject as the prune identity the store lists %q, want s1", got)
	}
}
