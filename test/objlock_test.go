package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/lib/uuid"
	"github.com/buttersink/buttersink/test/harness"
)

// lockBucket makes a bucket with object lock enabled (and so versioning)
// on m.
func lockBucket(t *testing.T, m *harness.MinIO, name string) {
	t.Helper()
	if _, err := m.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create bucket %s with object lock: %v", name, err)
	}
}

// TestObjectLock: on a MinIO bucket with object lock, objects bss3put
// stores with --object-lock survive bsrm (kept, with their retain-until
// date, exit 0, the others deleted) and a direct `aws s3 rm` with the
// same credentials (a delete marker hides the object; its version cannot
// be deleted, and once the marker is removed the snapshot restores);
// bsplan -d does not plan their deletion. A bucket without object lock
// is refused before any byte is sent.
func TestObjectLock(t *testing.T) {
	harness.RequireCommand(t, "aws")
	m := harness.StartMinIO(t)
	lockBucket(t, m, "bs-lock")
	env := m.Env()
	src := harness.Btrfs(t, 256)
	snaps := objSnaps(t, src, 3, 256)
	url := "s3://bs-lock/b/"

	r := osh(t, env, `bssend "$1/s1" | bss3put --object-lock COMPLIANCE:1d "$2"`, snaps, "s3://"+m.Bucket+"/nolock/")
	if r.Code == 0 || !strings.Contains(r.Stderr, `has no object lock configuration`) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
		t.Errorf("--object-lock on a bucket without it: exit %d, stderr:\n%s", r.Code, r.Stderr)
	}
	if r := osh(t, env, `bssend "$1/s1" | bss3put --object-lock COMPLIANCE:1d "$2"`, snaps, "file://"+t.TempDir()+"/"); r.Code != 2 {
		t.Errorf("--object-lock on a file:// store: exit %d, want 2: %s", r.Code, r.Stderr)
	}

	// s1 locked (a single PUT), s2 locked (multipart), s3 not locked.
	before := time.Now()
	s1 := objRecords(t, mustOsh(t, env, `bssend "$1/s1" | bss3put --object-lock COMPLIANCE:1d "$2"`, snaps, url).Stdout)[0]
	mustOsh(t, env, `head -c 12M /dev/urandom > "$1/../vol/big" && btrfs -q subvolume snapshot -r "$1/../vol" "$1/s2big"`, snaps)
	s2 := objRecords(t, mustOsh(t, env, `bssend -p "$1/s1" "$1/s2big" | bss3put --part-size 5MiB --object-lock governance:1d "$2"`, snaps, url).Stdout)[0]
	s3r := objRecords(t, mustOsh(t, env, `bssend -p "$1/s1" "$1/s3" | bss3put "$2"`, snaps, url).Stdout)[0]
	for _, c := range []struct {
		key  string
		mode string
	}{{s1.Key, "COMPLIANCE"}, {s2.Key, "GOVERNANCE"}, {s3r.Key, ""}} {
		h, err := m.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("bs-lock"), Key: aws.String("b/" + c.key)})
		if err != nil {
			t.Fatal(err)
		}
		until := aws.ToTime(h.ObjectLockRetainUntilDate)
		if string(h.ObjectLockMode) != c.mode || c.mode != "" && (until.Before(before.Add(23*time.Hour)) || until.After(time.Now().Add(25*time.Hour))) {
			t.Errorf("%s: lock mode %q until %v, want %q for a day", c.key, h.ObjectLockMode, until, c.mode)
		}
		if h.Metadata["bs-stream-sha256"] == "" {
			t.Errorf("%s: no digest in its metadata", c.key)
		}
	}
	// The multipart upload's undigested version is gone: one version each.
	vs, err := m.Client().ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String("bs-lock"), Prefix: aws.String("b/")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range vs.Versions {
		if _, err := objkey.ParseKey(strings.TrimPrefix(aws.ToString(v.Key), "b/")); err == nil {
			n++ // not the lock's or the upload records' versions
		}
	}
	if n != 3 {
		for _, v := range vs.Versions {
			t.Logf("version %s %s", aws.ToString(v.Key), aws.ToString(v.VersionId))
		}
		t.Errorf("%d object versions, want 3 (one per object)", n)
	}

	// bsplan -d with s1, s2 and s3 gone from the source: s2 and s1 are
	// retained, s3 (unlocked) is deleted; s1 stays anyway, as s2's parent.
	mustOsh(t, nil, `btrfs -q subvolume delete "$1/s1" "$1/s2big" "$1/s3"`, snaps)
	plan := mustOsh(t, env, `bsplan -d --allow-empty-source "$1/" "$2"`, snaps, url)
	if strings.Contains(plan.Stdout, s1.Key) || strings.Contains(plan.Stdout, s2.Key) || !strings.Contains(plan.Stdout, s3r.Key) {
		t.Errorf("bsplan -d plans:\n%s\nwant only %s deleted", plan.Stdout, s3r.Key)
	}
	if !strings.Contains(plan.Stderr, s2.Key+": kept, under retention until ") {
		t.Errorf("bsplan does not say why %s stays:\n%s", s2.Key, plan.Stderr)
	}

	// bsrm of steps that name all three (a plan made from a listing,
	// which shows no retention): s1 and s2 kept with their dates, s3
	// deleted, exit 0.
	ls := mustOsh(t, env, `bsls "$1" > "$2/dst.jsonl"; bsplan -d --allow-empty-source --dst-list "$2/dst.jsonl" "$3/" "$1"`, url, t.TempDir(), snaps)
	if strings.Count(ls.Stdout, `"op":"delete"`) != 3 {
		t.Fatalf("plan from the listing:\n%s", ls.Stdout)
	}
	rm := osh(t, env, `printf '%s' "$2" | bsrm "$1"`, url, ls.Stdout)
	if rm.Code != 0 {
		t.Fatalf("bsrm: exit %d\n%s%s", rm.Code, rm.Stdout, rm.Stderr)
	}
	for _, want := range []string{`"key":"` + s1.Key + `","uuid":"` + s1.UUID.Canonical() + `","status":"kept","retain_until":"`, `"key":"` + s2.Key + `","uuid":"` + s2.UUID.Canonical() + `","status":"kept","retain_until":"`, `"key":"` + s3r.Key + `","uuid":"` + s3r.UUID.Canonical() + `","status":"deleted"`} {
		if !strings.Contains(rm.Stdout, want) {
			t.Errorf("bsrm output lacks %s:\n%s", want, rm.Stdout)
		}
	}
	if !strings.Contains(rm.Stderr, s1.Key+": kept, under retention until ") {
		t.Errorf("bsrm does not say %s was kept:\n%s", s1.Key, rm.Stderr)
	}
	if r := osh(t, env, `bsrm "$1s2big"`, url); r.Code != 0 || !strings.Contains(r.Stdout, `"status":"kept"`) {
		t.Errorf("bsrm STORE/s2big: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// aws s3 rm with the backup credentials: the object is hidden behind a
	// delete marker, its locked version stays and cannot be deleted.
	mustOsh(t, env, `aws s3 rm "s3://bs-lock/b/$1" >/dev/null`, s1.Key)
	vid := strings.TrimSpace(mustOsh(t, env, `aws s3api list-object-versions --bucket bs-lock --prefix "b/$1" --query 'Versions[0].VersionId' --output text`, s1.Key).Stdout)
	if vid == "" || vid == "None" {
		t.Fatalf("the locked version of %s is gone", s1.Key)
	}
	if r := osh(t, env, `aws s3api delete-object --bucket bs-lock --key "b/$1" --version-id "$2"`, s1.Key, vid); r.Code == 0 {
		t.Errorf("deleting the locked version by id succeeded: %s", r.Stdout)
	}
	// Recovery: remove the delete marker; the snapshot restores.
	mustOsh(t, env, `m=$(aws s3api list-object-versions --bucket bs-lock --prefix "b/$1" --query 'DeleteMarkers[0].VersionId' --output text) && aws s3api delete-object --bucket bs-lock --key "b/$1" --version-id "$m" >/dev/null`, s1.Key)
	dst := harness.Btrfs(t, 256)
	mustOsh(t, env, `bsplan "$1s1" "$2/" | bss3get | bsrecv "$2/"`, url, dst)
	mustOsh(t, nil, `test "$(btrfs subvolume show "$1/s1" | awk '/Received UUID/ {print $3}')" = "$2"`, dst, s1.UUID.Canonical())
}

// TestConditionalRace: two writers of the same key at once, on S3 (a
// plain bucket and one with object lock, single PUT and multipart) and
// on a file:// store: exactly one completes; the other fails with
// "another writer stored this object first" and leaves the winner's
// object whole, and no multipart upload behind.
func TestConditionalRace(t *testing.T) {
	all := stores(t)
	m := all[0].m
	lockBucket(t, m, "bs-race-lock")
	all = append(all, store{name: "s3-lock", url: "s3://bs-race-lock/r/", env: m.Env(), m: m})
	for _, s := range all {
		sizes := []int{1 << 20, 12 << 20}
		if s.m == nil {
			sizes = sizes[:1] // a file:// store has no parts
		}
		for _, size := range sizes {
			name := s.name + "/single"
			if size > 5<<20 {
				name = s.name + "/multipart"
			}
			t.Run(name, func(t *testing.T) {
				st := s.open(t)
				ctx := context.Background()
				k, err := objkey.NewKey("race", uuid.UUID{1, 2, 3}, uuid.Zero, uint64(size), nil)
				if err != nil {
					t.Fatal(err)
				}
				key := k.String()
				data := [2][]byte{make([]byte, size), make([]byte, size)}
				var ps [2]objstore.Putter
				for i := range ps {
					rand.Read(data[i])
					if ps[i], err = st.Create(ctx, key, objstore.Meta{}, objstore.PutOptions{PartSize: 5 << 20, Concurrency: 2}); err != nil {
						t.Fatal(err)
					}
				}
				var wg sync.WaitGroup
				var errs [2]error
				for i := range ps {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := ps[i].Write(data[i]); err != nil {
							errs[i] = err
							ps[i].Abort()
							return
						}
						_, errs[i] = ps[i].Close(objstore.Meta{StreamSize: int64(size), StreamSHA256: strings.Repeat("0", 63) + string(rune('a'+i))})
					}()
				}
				wg.Wait()
				if (errs[0] == nil) == (errs[1] == nil) {
					t.Fatalf("want exactly one writer to succeed, got %v and %v", errs[0], errs[1])
				}
				won := 0
				if errs[0] != nil {
					won = 1
				}
				lost := errs[1-won]
				if !errors.Is(lost, objstore.ErrExists) || !strings.Contains(lost.Error(), "another writer stored this object first") {
					t.Errorf("loser: %v", lost)
				}
				rc, o, err := st.Open(ctx, key, objstore.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data[won]) || o.Meta.StreamSHA256[63] != byte('a'+won) {
					t.Errorf("stored object is not the winner's whole (err %v, %d bytes, meta %+v)", err, len(got), o.Meta)
				}
				if ups, err := st.ListIncomplete(ctx); err != nil || len(ups) != 0 {
					t.Errorf("incomplete uploads left: %+v %v", ups, err)
				}
			})
		}
	}
}
