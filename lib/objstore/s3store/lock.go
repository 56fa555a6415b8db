package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/objstore"
)

// Lock takes the writers' lock of the store's prefix (objstore.Locker).
func (s *s3Store) Lock(ctx context.Context, opts lock.Options, _ bool) (*lock.Lock, error) {
	return lock.ObjectLock(ctx, &s3Lock{s}, s.loc.DirString(), opts)
}

// s3Lock is the lock object of an S3 prefix.
type s3Lock struct{ s *s3Store }

func (l *s3Lock) key() string { return l.s.full(lock.Name) }

// err maps the conditional-request failures to lib/lock's errors.
func (l *s3Lock) err(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return lock.ErrPrecondition
		case "NoSuchKey", "NotFound":
			return lock.ErrNoLock
		default:
			// NoSuchBucket and the rest are the store's errors, read
			// as for any request (a 404 is not always a missing lock).
			return l.s.fail(lock.Name, err)
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return lock.ErrPrecondition
		case http.StatusNotFound:
			return lock.ErrNoLock
		}
	}
	return l.s.fail(lock.Name, err)
}

func (l *s3Lock) put(ctx context.Context, body []byte, ifMatch, ifNoneMatch *string) (string, error) {
	out, err := l.s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(l.s.loc.Bucket),
		Key:           aws.String(l.key()),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
		IfMatch:       ifMatch,
		IfNoneMatch:   ifNoneMatch,
	})
	if err != nil {
		return "", l.err(err)
	}
	return aws.ToString(out.ETag), nil
}

func (l *s3Lock) CreateLock(ctx context.Context, body []byte) (string, error) {
	return l.put(ctx, body, nil, aws.String("*"))
}

func (l *s3Lock) ReplaceLock(ctx context.Context, etag string, body []byte) (string, error) {
	return l.put(ctx, body, aws.String(etag), nil)
}

func (l *s3Lock) ReadLock(ctx context.Context) ([]byte, string, time.Duration, error) {
	out, err := l.s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(l.s.loc.Bucket), Key: aws.String(l.key())})
	if err != nil {
		return nil, "", 0, l.err(err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, 4096))
	if err != nil {
		return nil, "", 0, l.s.fail(lock.Name, err)
	}
	// The age by the server's clock: its Date header less the object's
	// Last-Modified. Without a Date, ours (then clocks must agree).
	now := time.Now()
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		if d, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			now = d
		}
	}
	return body, aws.ToString(out.ETag), now.Sub(aws.ToTime(out.LastModified)), nil
}

func (l *s3Lock) DeleteLock(ctx context.Context, etag string) error {
	_, err := l.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(l.s.loc.Bucket), Key: aws.String(l.key()), IfMatch: aws.String(etag)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
			// A server without conditional deletes; ObjectLock has
			// checked the ETag is still ours.
			_, err = l.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(l.s.loc.Bucket), Key: aws.String(l.key())})
		}
		if err != nil {
			return l.err(err)
		}
	}
	return nil
}

// LockObject is the S3 store's lock object, for tests.
func LockObject(st objstore.Store) (lock.Object, bool) {
	s, ok := st.(*s3Store)
	if !ok {
		return nil, false
	}
	return &s3Lock{s}, true
}
