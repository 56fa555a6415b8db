// Package uploadstate keeps, on the local machine, what resuming an
// interrupted upload needs and the store must never hold: the age file key
// its object is encrypted under. One record per multipart upload, a file
// of mode 0600 in a private directory, bound to the object (its whole
// location, s3://bucket/prefix/key) and the upload ID, and removed when the upload completes or is
// aborted.
package uploadstate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Format is a record's "format" field.
const Format = "bs-upload1"

// maxRecord bounds what Load reads: a header of many recipients fits.
const maxRecord = 1 << 20

// Record is the local state of one multipart upload.
type Record struct {
	Format string `json:"format"`
	// Object is the object's location (s3://bucket/prefix/key),
	// UploadID the server's ID of its multipart upload.
	Object   string `json:"object"`
	UploadID string `json:"upload_id"`
	// Recipients identifies the age recipients the header wraps the file
	// key to: a run to other recipients must not reuse it.
	Recipients string `json:"recipients"`
	// AgeHeader is the object's age header and payload nonce; AgeFileKey
	// the file key (secret).
	AgeHeader  []byte `json:"age_header"`
	AgeFileKey []byte `json:"age_file_key"`
}

// ErrNotExist is Load's error when the upload has no record.
var ErrNotExist = errors.New("no resume record")

// Dir is the directory of the records: $XDG_STATE_HOME/buttersink/uploads,
// or ~/.local/state/buttersink/uploads. It is made (mode 0700) if missing
// and refused unless it is a directory of this user that no one else can
// write into.
func Dir() (string, error) {
	dir, err := path()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("resume records: %w", err)
	}
	return dir, check(dir)
}

func path() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) {
		home := os.Getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", errors.New("resume records: neither XDG_STATE_HOME nor HOME is set")
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "buttersink", "uploads"), nil
}

func check(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("resume records: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("resume records: %s is not a private directory of this user", dir)
	}
	return nil
}

// existing is the records' directory if it is there (and private):
// removing records never makes it.
func existing() (string, bool) {
	dir, err := path()
	if err != nil || check(dir) != nil {
		return "", false
	}
	return dir, true
}

// keyPrefix names the records of one object: they are found by it when a
// new upload of the key starts and older ones are gone.
func keyPrefix(object string) string {
	sum := sha256.Sum256([]byte(object))
	return hex.EncodeToString(sum[:16]) + "-"
}

// name is the file name of a record; hashing keeps the server's upload ID
// and the key, both from outside, out of the path.
func name(object, id string) string {
	sum := sha256.Sum256([]byte(id))
	return keyPrefix(object) + hex.EncodeToString(sum[:16]) + ".json"
}

// Save writes r, created new (never through a link, never into a file
// that exists: whatever is in its place is removed first).
func Save(r Record) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	r.Format = Format
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name(r.Object, r.UploadID))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Unlinking removes a link itself, never its target.
		os.Remove(path)
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	}
	if err != nil {
		return fmt.Errorf("resume record: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("resume record: %w", err)
	}
	return nil
}

// Load reads the record of an upload. ErrNotExist when there is none;
// another error when one is there and refused: not a regular file of
// this user with mode 0600, or not the record of this upload.
func Load(object, id string) (Record, error) {
	dir, err := Dir()
	if err != nil {
		return Record{}, err
	}
	path := filepath.Join(dir, name(object, id))
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, ErrNotExist
	}
	if err != nil {
		return Record{}, fmt.Errorf("resume record %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Record{}, fmt.Errorf("resume record %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return Record{}, fmt.Errorf("resume record %s: not a private file of this user (mode 0600)", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return Record{}, fmt.Errorf("resume record %s: %w", path, err)
	}
	r, err := parse(b, object, id)
	if err != nil {
		return Record{}, fmt.Errorf("resume record %s: %w", path, err)
	}
	return r, nil
}

// parse reads a record's bytes and checks it is the one of this upload.
func parse(b []byte, object, id string) (Record, error) {
	if len(b) > maxRecord {
		return Record{}, errors.New("too big")
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, errors.New("not a resume record")
	}
	if r.Format != Format {
		return Record{}, fmt.Errorf("format %q, want %q", r.Format, Format)
	}
	if r.Object != object || r.UploadID != id {
		return Record{}, errors.New("the record of another upload")
	}
	return r, nil
}

// Remove deletes the record of an upload, if any.
func Remove(object, id string) {
	if dir, ok := existing(); ok {
		os.Remove(filepath.Join(dir, name(object, id)))
	}
}

// RemoveObject deletes every record of an object's uploads: left by uploads
// aborted elsewhere (bsrm --incomplete on another machine), they are
// dropped when the next upload of the key starts.
func RemoveObject(object string) {
	dir, ok := existing()
	if !ok {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	p := keyPrefix(object)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), p) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
