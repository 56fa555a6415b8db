package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/buttersink/buttersink/lib/objstore"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/buttersink/buttersink/lib/names"
)

// uploadRecords is the directory, below a store's prefix, of the records
// of multipart uploads started and not yet completed or discarded: one
// small object per key, named by the SHA-256 of the key and holding the
// key. S3 lists multipart uploads by prefix, but MinIO after a restart
// finds them only by their exact key; these records are how
// ListIncomplete knows which keys to ask for. The names are never stream
// keys (ParseKey refuses them), so listings skip them.
const uploadRecords = ".bs-uploads/"

func (s *s3Store) recordKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix() + uploadRecords + hex.EncodeToString(sum[:])
}

// noteUpload records that key has a multipart upload in progress.
func (s *s3Store) noteUpload(ctx context.Context, key string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.recordKey(key)),
		Body: strings.NewReader(key), ContentLength: aws.Int64(int64(len(key))),
		ContentType: aws.String("text/plain"),
	})
	if err != nil {
		return s.fail(key, fmt.Errorf("record upload: %w", err))
	}
	return nil
}

// forgetUpload removes key's record. A record left behind only costs
// ListIncomplete one request.
func (s *s3Store) forgetUpload(ctx context.Context, key string) {
	s.client.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.recordKey(key))})
}

// recordedUploads returns the uploads of the keys that have a record in
// the store's directory or below it (a store at a deeper prefix keeps
// its own), each found by its exact key.
func (s *s3Store) recordedUploads(ctx context.Context) ([]objstore.Upload, error) {
	var out []objstore.Upload
	err := s.eachObject(ctx, "list upload records", func(o types.Object) error {
		obj := aws.ToString(o.Key)
		i := strings.LastIndex("/"+obj, "/"+uploadRecords)
		if i < 0 || strings.Contains(obj[i+len(uploadRecords):], "/") {
			return nil
		}
		full, err := s.readRecord(ctx, obj, obj[:i])
		if err != nil || full == "" {
			return err
		}
		ups, err := s.exactUploads(ctx, full)
		out = append(out, ups...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readRecord returns the full key a record at prefix holds, or "" for an
// object there that is not a record of a valid key (gone meanwhile, or
// foreign).
func (s *s3Store) readRecord(ctx context.Context, obj, prefix string) (string, error) {
	rel := strings.TrimPrefix(obj, s.prefix())
	g, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(obj)})
	if err != nil {
		e := s.fail(rel, err)
		if errors.Is(e, objstore.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("read upload record: %w", e)
	}
	defer g.Body.Close()
	b, err := io.ReadAll(io.LimitReader(g.Body, names.KeyMax+1))
	if err != nil {
		return "", s.fail(rel, fmt.Errorf("read upload record: %w", err))
	}
	key := string(b)
	sum := sha256.Sum256(b)
	if names.Key(key, len(prefix)) != nil || prefix+uploadRecords+hex.EncodeToString(sum[:]) != obj {
		return "", nil
	}
	return prefix + key, nil
}

// isNoSuchUpload reports S3's "that upload is gone" (completed or
// aborted meanwhile): nothing is left to abort.
func isNoSuchUpload(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}
