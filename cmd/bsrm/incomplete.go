package bsrm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/objstore"
)

// IncompleteResult is the output line for one incomplete upload discarded
// by bsrm --incomplete.
type IncompleteResult struct {
	Op  string `json:"op"`
	Dst string `json:"dst"`
	Key string `json:"key"`
	// UploadID is the S3 multipart upload id, or the random suffix of a
	// file store's temporary file.
	UploadID string    `json:"upload_id"`
	Started  time.Time `json:"started"`
	// Size is the bytes written so far (file stores, and sets).
	Size int64 `json:"size,omitempty"`
	// Pieces is, for the pieces of a stream stored as several objects
	// whose set is not whole (upload_id ""), how many were deleted.
	Pieces int `json:"pieces,omitempty"`
	// Status is "aborted" or "dry-run".
	Status string `json:"status"`
}

// OpAbort is the op of an IncompleteResult.
const OpAbort = "abort"

// ParseAge reads a --incomplete age: a Go duration (90m, 24h, 1h30m, 0s)
// or a whole number of days (7d).
func ParseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(t, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("invalid age %q (want e.g. 24h, 90m or 7d)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid age %q (want e.g. 24h, 90m or 7d)", s)
	}
	return d, nil
}

// incomplete discards, in each object-store directory, the uploads that
// were started and never completed before now-age: S3 multipart uploads
// (aborted, so the server frees their parts) and the temporary files of
// interrupted writes to a file store. One line per upload.
func incomplete(ctx context.Context, env *cli.Env, dirs []location.Location, age time.Duration, o Options) error {
	for _, d := range dirs {
		if !d.IsObjectStore() {
			return cli.UsageError("--incomplete: %s is not an object store (s3:// or file://)", d.DirString())
		}
	}
	out := jsonl.NewWriter(env.Stdout)
	n := 0
	for _, d := range dirs {
		st, err := stores.Open(ctx, d, o.Objects)
		if err != nil {
			return err
		}
		var ups []objstore.Upload
		var sets []objstore.IncompleteSet
		if o.DryRun {
			if ups, err = objstore.StaleUploads(ctx, st, age); err == nil {
				sets, err = objstore.IncompleteSets(ctx, st, age)
			}
		} else {
			// Under the store's lock: a running upload is never aborted.
			err = lock.Hold(ctx, func(ctx context.Context) (*lock.Lock, error) {
				return objstore.Lock(ctx, st, o.Lock.Options(env.Name, env.Log), false)
			}, func(ctx context.Context) error {
				// What was aborted before a failure gets its lines too.
				var err error
				if ups, err = objstore.AbortIncomplete(ctx, st, age); err != nil {
					return err
				}
				sets, err = deleteSets(ctx, st, age)
				return err
			})
		}
		if werr := writeAborted(out, d, ups, o.DryRun, env); werr != nil {
			return werr
		}
		if werr := writeSets(out, d, sets, o.DryRun); werr != nil {
			return werr
		}
		n += len(ups) + len(sets)
		if err != nil {
			return err
		}
	}
	summary(env, o.DryRun, "aborted", "would abort", n, "incomplete uploads")
	return nil
}

func writeAborted(out *jsonl.Writer, d location.Location, ups []objstore.Upload, dryRun bool, env *cli.Env) error {
	status := "aborted"
	if dryRun {
		status = "dry-run"
	}
	for _, u := range ups {
		if !dryRun {
			env.Log.Debug("aborted incomplete upload", "key", d.DirString()+u.Key, "id", u.ID, "started", u.Started)
		}
		r := IncompleteResult{Op: OpAbort, Dst: d.DirString(), Key: u.Key, UploadID: u.ID, Started: u.Started.UTC(), Size: u.Size, Status: status}
		if err := out.Write(&r); err != nil {
			return err
		}
	}
	return nil
}

// deleteSets deletes the pieces of the incomplete sets (objstore.IncompleteSet)
// whose newest piece is older than age. The store's lock is held.
func deleteSets(ctx context.Context, st objstore.Store, age time.Duration) ([]objstore.IncompleteSet, error) {
	sets, err := objstore.IncompleteSets(ctx, st, age)
	if err != nil {
		return nil, err
	}
	for i, s := range sets {
		if err := st.Delete(ctx, s.Keys...); err != nil {
			return sets[:i], err
		}
	}
	return sets, nil
}

func writeSets(out *jsonl.Writer, d location.Location, sets []objstore.IncompleteSet, dryRun bool) error {
	status := "aborted"
	if dryRun {
		status = "dry-run"
	}
	for _, s := range sets {
		r := IncompleteResult{Op: OpAbort, Dst: d.DirString(), Key: s.Key, Started: s.Modified.UTC(), Size: s.Size, Pieces: len(s.Keys), Status: status}
		if err := out.Write(&r); err != nil {
			return err
		}
	}
	return nil
}
