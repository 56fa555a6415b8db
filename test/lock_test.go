package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/s3store"
	"github.com/buttersink/buttersink/test/harness"
)

// lockSnaps makes mnt/snaps/s1..s3: small snapshots of a few files.
func lockSnaps(t *testing.T, mnt string) string {
	t.Helper()
	mustOsh(t, nil, `
		cd "$1"; btrfs -q subvolume create vol; mkdir snaps
		for i in 1 2 3; do
			head -c 20000 /dev/urandom > vol/r$i; seq 1 $((i * 3000)) > vol/t$i; mkdir -p vol/d$i
			echo $i >> vol/r1
			btrfs -q subvolume snapshot -r vol snaps/s$i
		done`, mnt)
	return filepath.Join(mnt, "snaps")
}

// twoRuns starts the same script twice at once and returns both exit
// statuses and standard errors.
func twoRuns(t *testing.T, env []string, script string, args ...string) (codes [2]int, stderr [2]string) {
	t.Helper()
	tmp := t.TempDir()
	r := osh(t, env, `
		T=$1; shift
		run() { `+script+`; }
		run "$@" 2>"$T/a" & a=$!
		run "$@" 2>"$T/b" & b=$!
		ea=0; wait $a || ea=$?
		eb=0; wait $b || eb=$?
		echo "$ea $eb"`, append([]string{tmp}, args...)...)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	f := strings.Fields(r.Stdout)
	if len(f) != 2 {
		t.Fatalf("output %q", r.Stdout)
	}
	for i, n := range []string{"a", "b"} {
		codes[i], _ = strconv.Atoi(f[i])
		b, _ := os.ReadFile(filepath.Join(tmp, n))
		stderr[i] = string(b)
	}
	return codes, stderr
}

// checkRuns: each run completed or, without --wait, exited 75 naming the
// holder; at least one completed.
func checkRuns(t *testing.T, what string, wait bool, codes [2]int, stderr [2]string) {
	t.Helper()
	ok := 0
	for i, c := range codes {
		switch {
		case c == 0:
			ok++
		case c == cli.ExitLocked && !wait:
			// The holder is named, or "another run" while it writes
			// its record.
			if !strings.Contains(stderr[i], " is locked by ") || !strings.Contains(stderr[i], " since ") && !strings.Contains(stderr[i], " is locked by another run") {
				t.Errorf("%s: run %d exit 75 without the lock message:\n%s", what, i, stderr[i])
			}
		default:
			t.Fatalf("%s: run %d exit %d (wait %v):\n%s", what, i, c, wait, stderr[i])
		}
	}
	if ok == 0 {
		t.Fatalf("%s: no run completed: %v\n%s\n%s", what, codes, stderr[0], stderr[1])
	}
}

// TestConcurrentSyncBtrfs: two buttersink syncs to one btrfs directory
// started together, twenty times, without and with --wait: each run
// completes or exits 75 (with --wait: both complete), and the directory
// ends with every snapshot, complete.
func TestConcurrentSyncBtrfs(t *testing.T) {
	src := lockSnaps(t, harness.Btrfs(t, 256))
	dmnt := harness.Btrfs(t, 512)
	for _, wait := range []string{"", "--wait"} {
		for i := 0; i < lockReps; i++ {
			dst := filepath.Join(dmnt, fmt.Sprintf("d%s%d", wait, i))
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			codes, stderr := twoRuns(t, nil, `buttersink -q $3 "$1/" "$2/"`, src, dst, wait)
			what := fmt.Sprintf("run %d %s", i, wait)
			checkRuns(t, what, wait != "", codes, stderr)
			t1 := time.Now()
			for _, s := range []string{"s1", "s2", "s3"} {
				srComplete(t, filepath.Join(dst, s), filepath.Join(src, s))
			}
			// Same trees (checksumdir of each pair), and nothing partial
			// or writable left.
			r := mustOsh(t, nil, `
				cd "$(mktemp -d)"
				for s in s1 s2 s3; do
					[ "$(checksumdir --stdout "$1/$s" | cut -d' ' -f1)" = "$(checksumdir --stdout "$2/$s" | cut -d' ' -f1)" ] || echo "$s differs"
				done
				bsls --all --json "$2/" | jq -c 'select(.partial == true or .readonly == false)'`, src, dst)
			if r.Stdout != "" {
				t.Fatalf("%s: %s", what, r.Stdout)
			}
			// Room for the next runs.
			mustOsh(t, nil, `btrfs -q subvolume delete "$1"/s*`, dst)
			t.Logf("%s: %v in %s, checked in %s", what, codes, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
		}
	}
}

// TestConcurrentSyncStores: the same with bss3put into a file:// store
// and an S3 prefix, fewer times; every stream is stored once, complete,
// and restores.
func TestConcurrentSyncStores(t *testing.T) {
	mnt := harness.Btrfs(t, 512)
	src := lockSnaps(t, mnt)
	for _, s := range stores(t) {
		st := s.open(t)
		n := 5
		if s.name == "s3" {
			n = 3
		}
		for _, wait := range []string{"", "--wait"} {
			for i := 0; i < n; i++ {
				url := fmt.Sprintf("%sc%s%d/", s.url, wait, i)
				what := fmt.Sprintf("%s run %d %s", s.name, i, wait)
				codes, stderr := twoRuns(t, s.env, `buttersink -q $3 "$1/" "$2"`, src, url, wait)
				checkRuns(t, what, wait != "", codes, stderr)
				recs := objRecords(t, mustOsh(t, s.env, `bsls --json "$1"`, url).Stdout)
				if len(recs) != 3 {
					t.Fatalf("%s: %d streams stored, want 3: %+v", what, len(recs), recs)
				}
				for _, r := range recs {
					if o, err := st.Stat(context.Background(), "c"+wait+strconv.Itoa(i)+"/"+r.Key); err != nil || !o.Meta.Complete() {
						t.Errorf("%s: %s stored without its metadata (%v)", what, r.Key, err)
					}
				}
				if i == n-1 {
					// Restored beside the source, on one filesystem: parents
					// are taken below the destination only.
					dst := filepath.Join(mnt, fmt.Sprintf("restore-%s%s", s.name, wait))
					mustOsh(t, s.env, `mkdir "$2" && buttersink -q "$1" "$2/"`, url, dst)
					for _, sn := range []string{"s1", "s2", "s3"} {
						sameTree(t, filepath.Join(src, sn), filepath.Join(dst, sn))
					}
				}
			}
		}
		if s.m == nil {
			// No lock file is taken for a stream, no partial file is left.
			dir := strings.TrimPrefix(s.url, "file://")
			r := mustOsh(t, nil, `cd "$1" && find . -name '*.partial-*'; bss3ls "file://$1c0/" | grep -c lock || :`, dir)
			if strings.TrimSpace(r.Stdout) != "0" {
				t.Errorf("file store: %s", r.Stdout)
			}
		}
	}
}

// TestLockBsrmWaitsForUpload: bsrm never deletes what a running upload
// depends on: while bss3put stores s3 (a diff from s2), bsrm with a plan
// made before, deleting s2, exits 75, or with --wait waits and then keeps
// s2, which the new stream needs.
func TestLockBsrmWaitsForUpload(t *testing.T) {
	mnt := harness.Btrfs(t, 512)
	src := lockSnaps(t, mnt)
	for _, s := range stores(t) {
		t.Run(s.name, func(t *testing.T) {
			url := s.url + "rm/"
			mustOsh(t, s.env, `
				bssend "$1/s1" | bss3put "$2" >/dev/null
				bssend -p "$1/s1" "$1/s2" | bss3put "$2" >/dev/null
				bssend -p "$1/s2" "$1/s3" > "$3/s3.stream"
				bsls --json "$2" | jq -c --arg d "$2" 'select(.path == "s2") | {op: "delete", dst: $d, snapshot: .}' > "$3/del"
				[ -s "$3/del" ]`, src, url, mnt)
			r := osh(t, s.env, `
				{ head -c 100 "$3/s3.stream"; sleep 2; tail -c +101 "$3/s3.stream"; } | bss3put "$2" >/dev/null & p=$!
				sleep 0.7
				e=0; bsrm "$2" < "$3/del" || e=$?
				echo "nowait=$e"
				e=0; bsrm --wait "$2" < "$3/del" || e=$?
				echo "wait=$e"
				wait $p`, src, url, mnt)
			if r.Code != 0 || !strings.Contains(r.Stdout, "nowait=75") || !strings.Contains(r.Stdout, "wait=0") {
				t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			if !strings.Contains(r.Stderr, "is locked by") || !strings.Contains(r.Stderr, "kept: a stream that stays (stored since the plan was made") {
				t.Errorf("stderr:\n%s", r.Stderr)
			}
			dst := filepath.Join(harness.Btrfs(t, 256), "restore-rm-"+s.name)
			mustOsh(t, s.env, `mkdir "$2" && buttersink -q "$1" "$2/"`, url, dst)
			for _, sn := range []string{"s1", "s2", "s3"} {
				sameTree(t, filepath.Join(src, sn), filepath.Join(dst, sn))
			}
		})
	}
}

// TestLockObjectIgnored: the lock object or file, under the store's
// directory or a subdirectory, is not listed as a stream nor as an
// incomplete upload.
func TestLockObjectIgnored(t *testing.T) {
	for _, s := range stores(t) {
		t.Run(s.name, func(t *testing.T) {
			url := s.url + "ign/"
			var put string
			if s.m != nil {
				put = `printf x | aws s3 cp - "s3://$BUCKET/backups/ign/$1"`
			} else {
				d := strings.TrimPrefix(url, "file://")
				put = `mkdir -p "$(dirname "` + d + `$1")" && printf x > "` + d + `$1"`
			}
			for _, k := range []string{lock.Name, "sub/" + lock.Name} {
				mustOsh(t, s.env, put, k)
			}
			r := mustOsh(t, s.env, `bsls --json "$1"; bss3ls "$1"; bsplan "$1" /nonexistent-dst/ 2>&1 || :; bsrm -n --incomplete 0s "$1"`, url)
			if strings.Contains(r.Stdout, "lock") || strings.Contains(r.Stderr, "lock") {
				t.Errorf("the lock shows:\n%s\n%s", r.Stdout, r.Stderr)
			}
		})
	}
}

// s3LockRig is a MinIO prefix and its lock object.
func s3LockRig(t *testing.T, prefix string) (lock.Object, string) {
	t.Helper()
	m := harness.StartMinIO(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	url := "s3://" + m.Bucket + "/" + prefix + "/"
	loc, err := location.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s3store.Open(context.Background(), loc, objstore.Options{EndpointURL: m.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	obj, ok := s3store.LockObject(st)
	if !ok {
		t.Fatal("no lock object")
	}
	return obj, url
}

// The server honours the conditional writes the lock relies on.
func TestS3LockConditionalWrites(t *testing.T) {
	obj, _ := s3LockRig(t, "cond")
	ctx := context.Background()
	if _, err := obj.ReplaceLock(ctx, `"0123"`, []byte("x")); !errors.Is(err, lock.ErrNoLock) && !errors.Is(err, lock.ErrPrecondition) {
		t.Errorf("If-Match on a missing object: %v", err)
	}
	if _, _, _, err := obj.ReadLock(ctx); !errors.Is(err, lock.ErrNoLock) {
		t.Errorf("read missing: %v", err)
	}
	e1, err := obj.CreateLock(ctx, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obj.CreateLock(ctx, []byte("two")); !errors.Is(err, lock.ErrPrecondition) {
		t.Fatalf("If-None-Match: * on an existing object: %v", err)
	}
	if _, err := obj.ReplaceLock(ctx, `"0123456789abcdef0123456789abcdef"`, []byte("three")); !errors.Is(err, lock.ErrPrecondition) {
		t.Fatalf("If-Match with another ETag: %v", err)
	}
	e2, err := obj.ReplaceLock(ctx, e1, []byte("four"))
	if err != nil || e2 == e1 {
		t.Fatalf("If-Match with its ETag: %q %v", e2, err)
	}
	body, etag, age, err := obj.ReadLock(ctx)
	if err != nil || string(body) != "four" || etag != e2 || age < -2*time.Second || age > 10*time.Second {
		t.Fatalf("read: %q %q %s %v", body, etag, age, err)
	}
}

// writeHolder puts a lock object as a run with pid and ttl would have.
func writeHolder(t *testing.T, obj lock.Object, pid int, ttl int) {
	t.Helper()
	body := fmt.Sprintf(`{"owner":"bss3put","pid":%d,"host":"crashed","started":"2026-01-02T03:04:05Z","ttl_seconds":%d,"token":"t%d"}`, pid, ttl, pid)
	if _, err := obj.CreateLock(context.Background(), []byte(body)); err != nil {
		t.Fatal(err)
	}
}

// lockedCode is the exit status cli.Report gives err.
func lockedCode(err error) int {
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return -1
}

// A crashed run's lock is refused while fresh (exit 75 naming it), and
// taken over once it has expired.
func TestS3LockTakeover(t *testing.T) {
	obj, url := s3LockRig(t, "takeover")
	ctx := context.Background()
	writeHolder(t, obj, 4242, 2)
	_, err := lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "test"})
	if lockedCode(err) != cli.ExitLocked || !strings.Contains(err.Error(), url+" is locked by 4242 on crashed since ") {
		t.Fatalf("fresh lock: %v", err)
	}
	time.Sleep(3500 * time.Millisecond)
	l, err := lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "test"})
	if err != nil {
		t.Fatalf("expired lock not taken over: %v", err)
	}
	body, _, _, err := obj.ReadLock(ctx)
	if err != nil || !strings.Contains(string(body), fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Fatalf("lock now holds %q, %v", body, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := obj.ReadLock(ctx); !errors.Is(err, lock.ErrNoLock) {
		t.Fatalf("released lock still there: %v", err)
	}
}

// Of several takers of one expired lock, exactly one wins.
func TestS3LockTakersRace(t *testing.T) {
	obj, url := s3LockRig(t, "race")
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		writeHolder(t, obj, 5000+round, 1)
		time.Sleep(2500 * time.Millisecond)
		const n = 6
		var wg sync.WaitGroup
		locks := make([]*lock.Lock, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				locks[i], errs[i] = lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "taker" + strconv.Itoa(i)})
			}(i)
		}
		wg.Wait()
		won := 0
		for i := 0; i < n; i++ {
			switch {
			case errs[i] == nil:
				won++
			case lockedCode(errs[i]) != cli.ExitLocked:
				t.Fatalf("round %d taker %d: %v", round, i, errs[i])
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d takers won", round, won)
		}
		for _, l := range locks {
			if l != nil {
				if err := l.Release(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A held lock is refreshed: it outlives its TTL while its run lasts. A
// lock overwritten by someone else is lost: the run's context ends with
// ErrLost.
func TestS3LockRefreshAndLoss(t *testing.T) {
	obj, url := s3LockRig(t, "refresh")
	ctx := context.Background()
	l, err := lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "holder", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, e1, _, _ := obj.ReadLock(ctx)
	time.Sleep(4 * time.Second)
	_, e2, age, err := obj.ReadLock(ctx)
	if err != nil || e2 == e1 || age > 2*time.Second {
		t.Fatalf("not refreshed: etag %s -> %s, age %s, %v", e1, e2, age, err)
	}
	if _, err := lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "other", TTL: 2 * time.Second}); lockedCode(err) != cli.ExitLocked {
		t.Fatalf("a refreshed lock was taken: %v", err)
	}
	// Someone else writes it (a takeover): the holder notices at its next
	// refresh.
	if _, err := obj.ReplaceLock(ctx, e2, []byte(`{"owner":"thief","pid":1,"host":"h","started":"2026-01-02T03:04:05Z"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the loss of the lock went unnoticed")
	}
	if err := l.Lost(); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("lost: %v", err)
	}
	// Release never deletes a lock that is not its own.
	l.Release()
	if body, _, _, err := obj.ReadLock(ctx); err != nil || !strings.Contains(string(body), "thief") {
		t.Fatalf("after release: %q %v", body, err)
	}
	// And Hold reports the loss as the run's error.
	err = lock.Hold(ctx, func(ctx context.Context) (*lock.Lock, error) { return lock.None(ctx), nil }, func(context.Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
}

// lockReps is how often the two-run tests race (LOCK_REPS overrides).
var lockReps = func() int {
	if n, err := strconv.Atoi(os.Getenv("LOCK_REPS")); err == nil && n > 0 {
		return n
	}
	return 20
}()

// TestSSHLocked: the remote bsrecv takes the lock of its directory; its
// exit status 75 is bsrecv's over ssh, and --wait is passed on.
func TestSSHLocked(t *testing.T) {
	s := harness.StartSSHD(t, harness.SSHDOptions{})
	src := lockSnaps(t, harness.Btrfs(t, 256))
	dst := harness.Btrfs(t, 256) + "/backup/"
	mustSh(t, nil, `mkdir "$1"`, dst)
	env := []string{s.Env}
	r := sh(t, env, `
		bsrecv "$2" < <(sleep 3) & h=$!
		sleep 1
		e=0; bssend "$1/s1" | bsrecv "$3" || e=$?
		echo "nowait=$e"
		e=0; bssend "$1/s1" | bsrecv --wait "$3" || e=$?
		echo "wait=$e"
		wait $h`, src, dst, s.URL(dst))
	if r.Code != 0 || !strings.Contains(r.Stdout, "nowait=75") || !strings.Contains(r.Stdout, "wait=0") {
		t.Fatalf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "bsrecv: error: root@127.0.0.1:"+port(s)+": "+dst+" is locked by ") {
		t.Errorf("stderr:\n%s\nstdout:\n%s", r.Stderr, r.Stdout)
	}
	received(t, src+"/", dst, "s1")
}

// A lock whose holder ran in this kernel boot and PID namespace and has
// ended is taken over at once, without waiting for it to expire; one whose
// holder lives is not.
func TestS3LockDeadHolder(t *testing.T) {
	obj, url := s3LockRig(t, "dead")
	ctx := context.Background()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	boot := strings.TrimSpace(string(b)) + "/" + ns
	put := func(pid int) {
		body := fmt.Sprintf(`{"owner":"bss3put","pid":%d,"host":"here","started":"2026-01-02T03:04:05Z","ttl_seconds":120,"token":"x","boot":%q}`, pid, boot)
		if _, err := obj.CreateLock(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	live := harness.MustSh(t, `sleep 30 >/dev/null 2>&1 & echo $!`)
	pid, _ := strconv.Atoi(strings.TrimSpace(live.Stdout))
	defer syscall.Kill(pid, syscall.SIGKILL)
	put(pid)
	if _, err := lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "test"}); lockedCode(err) != cli.ExitLocked {
		t.Fatalf("the lock of a live holder was taken: %v", err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	l, err := lock.ObjectLock(ctx, obj, url, lock.Options{Owner: "test"})
	if err != nil {
		t.Fatalf("the lock of an ended holder was not taken over: %v", err)
	}
	l.Release()
}
