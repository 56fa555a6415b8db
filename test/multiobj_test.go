package test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objkey"
	"github.com/buttersink/buttersink/test/harness"
)

// pieceKeys returns the stored objects of a stream's set, in piece order,
// by key (the lock and other objects left out).
func pieceKeys(t *testing.T, st objstore.Store, prefix string) []objstore.Object {
	t.Helper()
	objs, err := st.List(context.Background())
	if errors.Is(err, objstore.ErrNoStore) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []objstore.Object
	for _, o := range objs {
		if strings.HasPrefix(o.Key, prefix) {
			if _, err := objkey.ParseKey(o.Key); err == nil {
				out = append(out, o)
			}
		}
	}
	piece := func(o objstore.Object) int { k, _ := objkey.ParseKey(o.Key); return max(k.Piece, 1) }
	sort.Slice(out, func(i, j int) bool { return piece(out[i]) < piece(out[j]) })
	return out
}

// TestBss3Pieces: with the maximum object size lowered, a 100 MiB stream
// is stored as several objects, raw and through zstd and age, on S3 and
// file://; bsls lists one stream of their summed size, bss3get restores
// it byte-exact, the stock tools decode the pieces' concatenation, and
// bsrm deletes every piece.
func TestBss3Pieces(t *testing.T) {
	harness.RequireCommand(t, "age-keygen")
	harness.RequireCommand(t, "zstd")
	keyDir := t.TempDir()
	mustOsh(t, nil, `age-keygen -o "$1/key" 2>/dev/null && age-keygen -y "$1/key" > "$1/recipients"`, keyDir)
	stream := filepath.Join(t.TempDir(), "stream")
	f, err := os.Create(stream)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := genStream(f, 100<<20, 1)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	encodings := []struct{ name, put, get, decode string }{
		{"raw", "", "", "cat"},
		{"zstd-age", "--zstd -R " + keyDir + "/recipients", "-i " + keyDir + "/key", "age -d -i " + keyDir + "/key | zstd -dc"},
	}
	for _, s := range stores(t) {
		for _, e := range encodings {
			t.Run(s.name+"/"+e.name, func(t *testing.T) {
				url := s.url + e.name + "/"
				st := s.open(t)
				r := mustOsh(t, s.env, `bss3put --part-size 5MiB --max-object-size 20MiB `+e.put+` "$1" < "$2"`, url, stream)
				recs := objRecords(t, r.Stdout)
				pieces := pieceKeys(t, st, e.name+"/")
				if len(recs) != 1 || len(pieces) < 3 {
					t.Fatalf("bss3put printed %d records, stored %d objects (want 1, at least 3):\n%s", len(recs), len(pieces), r.Stdout)
				}
				var total int64
				for i, o := range pieces {
					total += o.Size
					if i < len(pieces)-1 && o.Size != 20<<20 {
						t.Errorf("piece %d (%s) is %d bytes, want 20 MiB", i+1, o.Key, o.Size)
					}
				}
				ls := objRecords(t, mustOsh(t, s.env, `bsls --json "$1"`, url).Stdout)
				if len(ls) != 1 || ls[0].Size == nil || *ls[0].Size != total || ls[0].StreamSize == nil || ls[0].Key != strings.TrimPrefix(pieces[0].Key, e.name+"/") || *recs[0].Size != total {
					t.Fatalf("bsls lists %+v, want one stream of %d bytes under %s", ls, total, pieces[0].Key)
				}
				got := mustOsh(t, s.env, `bss3get `+e.get+` "$1$2" | sha256sum | cut -d' ' -f1`, url, ls[0].Key).Stdout
				if strings.TrimSpace(got) != sum {
					t.Fatalf("bss3get restores sha256 %s, want %s", got, sum)
				}
				if s.m == nil {
					var files []string
					for _, o := range pieces {
						files = append(files, `"`+strings.TrimPrefix(url, "file://")+strings.TrimPrefix(o.Key, e.name+"/")+`"`)
					}
					got = mustOsh(t, nil, `cat `+strings.Join(files, " ")+` | `+e.decode+` | sha256sum | cut -d' ' -f1`).Stdout
					if strings.TrimSpace(got) != sum {
						t.Fatalf("the pieces' concatenation decodes to sha256 %s, want %s", got, sum)
					}
				}
				// A piece's own key is not a stream.
				if r := osh(t, s.env, `bss3get "$1$2" > /dev/null`, url, strings.TrimPrefix(pieces[1].Key, e.name+"/")); r.Code == 0 || !strings.Contains(r.Stderr, "a piece of a stream") {
					t.Errorf("bss3get of a piece: %d %s", r.Code, r.Stderr)
				}
				// A rerun finds the set stored.
				if r := mustOsh(t, s.env, `bss3put -v --part-size 5MiB --max-object-size 20MiB `+e.put+` "$1" < "$2" 2>&1 >/dev/null`, url, stream); !strings.Contains(r.Stdout, "already stored") {
					t.Errorf("rerun did not find the set stored:\n%s", r.Stdout)
				}
				r = mustOsh(t, s.env, `bsrm "$1gen"`, url)
				if n := strings.Count(r.Stdout, `"deleted"`); n != 1 {
					t.Errorf("bsrm printed %d deleted lines:\n%s", n, r.Stdout)
				}
				if left := pieceKeys(t, st, e.name+"/"); len(left) != 0 {
					t.Errorf("bsrm left %d pieces: %v", len(left), left)
				}
			})
		}
	}
}

// TestBss3PiecesInterrupted: bss3put killed (SIGKILL) in the middle of a
// set leaves pieces that no listing shows as a stream, and that bsrm
// --incomplete names as one set; a rerun completes the set, keeping the
// pieces stored, and the stream restores byte-exact.
func TestBss3PiecesInterrupted(t *testing.T) {
	harness.RequireCommand(t, "zstd")
	stream := filepath.Join(t.TempDir(), "stream")
	f, err := os.Create(stream)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := genStream(f, 100<<20, 2)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stores(t) {
		t.Run(s.name, func(t *testing.T) {
			url := s.url + "int/"
			st := s.open(t)
			args := []string{"--part-size", "5MiB", "--max-object-size", "20MiB", "--zstd", url}
			cmd := exec.Command(filepath.Join(harness.Bin(t), "bss3put"), args...)
			cmd.Env = append(os.Environ(), s.env...)
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				f, _ := os.Open(stream)
				defer f.Close()
				io.Copy(in, f)
				in.Close()
			}()
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if len(pieceKeys(t, st, "int/")) >= 2 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatal("no second piece stored")
				}
			}
			cmd.Process.Kill()
			cmd.Wait()
			before := pieceKeys(t, st, "int/")
			if ls := objRecords(t, mustOsh(t, s.env, `bsls --json "$1"`, url).Stdout); len(ls) != 0 {
				t.Fatalf("bsls lists the cut set as a stream: %+v", ls)
			}
			all := objRecords(t, mustOsh(t, s.env, `bsls --all --json "$1"`, url).Stdout)
			if len(all) != 1 || !all[0].Partial || all[0].Path != "gen" {
				t.Errorf("bsls --all lists %+v, want the cut set, partial", all)
			}
			r := mustOsh(t, s.env, `bsrm -n --incomplete 0s "$1"`, url)
			if !strings.Contains(r.Stdout, `"pieces":`+strconv.Itoa(len(before))) {
				t.Errorf("bsrm --incomplete -n does not name the set of %d pieces:\n%s", len(before), r.Stdout)
			}
			r = mustOsh(t, s.env, `s=$1; shift; bss3put -v "$@" < "$s" 2>&1 >/dev/null`, append([]string{stream}, args...)...)
			if !strings.Contains(r.Stdout, "resuming a stream stored as several objects") {
				t.Errorf("rerun did not resume the set:\n%s", r.Stdout)
			}
			ls := objRecords(t, mustOsh(t, s.env, `bsls --json "$1"`, url).Stdout)
			if len(ls) != 1 {
				t.Fatalf("after the rerun bsls lists %d streams", len(ls))
			}
			got := mustOsh(t, s.env, `bss3get "$1$2" | sha256sum | cut -d' ' -f1`, url, ls[0].Key).Stdout
			if strings.TrimSpace(got) != sum {
				t.Fatalf("bss3get restores sha256 %s, want %s", got, sum)
			}
			if r := mustOsh(t, s.env, `bsrm -n --incomplete 0s "$1"`, url); strings.Contains(r.Stdout, "pieces") {
				t.Errorf("bsrm --incomplete finds a whole set incomplete:\n%s", r.Stdout)
			}
		})
	}
}

// TestBss3PiecesBtrfs: a real btrfs send stream of about 80 MiB, stored as
// several objects (zstd, on file://), restores into btrfs through the
// planner, bss3get and bsrecv, the tree equal to the source.
func TestBss3PiecesBtrfs(t *testing.T) {
	harness.RequireCommand(t, "zstd")
	src := harness.Btrfs(t, 512)
	snaps := objSnaps(t, src, 1, 80<<10)
	dst := harness.Btrfs(t, 512)
	url := "file://" + t.TempDir() + "/store/"
	mustOsh(t, nil, `bsplan "$1/" "$2" | bssend | bss3put --zstd --part-size 5MiB --max-object-size 20MiB "$2"`, snaps, url)
	loc := store{url: url}
	if n := len(pieceKeys(t, loc.open(t), "s1/")); n < 3 {
		t.Fatalf("stored as %d objects, want at least 3", n)
	}
	mustOsh(t, nil, `bsplan "$1" "$2/" | bss3get | bsrecv "$2/"`, url, dst)
	sameTrees(t, filepath.Join(snaps, "s1"), filepath.Join(dst, "s1"))
}
