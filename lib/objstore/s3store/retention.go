package s3store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/objstore"
)

// checkLock refuses, once per run, to write with a retention (Options.Lock)
// into a bucket without object lock: S3 would refuse every object, after
// its bytes were sent.
func (s *s3Store) checkLock(ctx context.Context) error {
	if s.opts.Lock.Mode == "" {
		return nil
	}
	s.lockOnce.Do(func() {
		out, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(s.loc.Bucket)})
		switch {
		case err != nil:
			s.lockErr = s.fail("", fmt.Errorf("object lock: %w", err))
		case out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled:
			s.lockErr = s.fail("", &smithy.GenericAPIError{Code: "ObjectLockConfigurationNotFoundError"})
		}
	})
	return s.lockErr
}

// lockMode and retainUntil are the retention of an object completed now
// (none without Options.Lock).
func (s *s3Store) lockMode() types.ObjectLockMode { return types.ObjectLockMode(s.opts.Lock.Mode) }

func (s *s3Store) retainUntil() *time.Time {
	if s.opts.Lock.Mode == "" {
		return nil
	}
	t := time.Now().UTC().Add(time.Duration(s.opts.Lock.Days) * 24 * time.Hour).Truncate(time.Second)
	return &t
}

// conditional names a refused If-None-Match: a server that does not
// implement it cannot keep two writers from replacing each other's
// object, and the put stores nothing rather than store unconditionally.
func conditional(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
		return hint.Wrap(objstore.ErrNoConditional, "use a server that implements If-None-Match on PutObject and CompleteMultipartUpload (AWS S3, MinIO), or a file:// store")
	}
	return err
}

// Restore requests a readable copy of an archived object (RestoreObject).
func (s *s3Store) Restore(ctx context.Context, key, tier string, days int) error {
	if err := s.checkKeys(key); err != nil {
		return err
	}
	_, err := s.client.RestoreObject(ctx, &s3.RestoreObjectInput{
		Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.full(key)),
		RestoreRequest: &types.RestoreRequest{Days: aws.Int32(int32(days)), GlacierJobParameters: &types.GlacierJobParameters{Tier: types.Tier(tier)}},
	})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "RestoreAlreadyInProgress" {
		return nil
	}
	if err != nil {
		return s.fail(key, fmt.Errorf("restore: %w", err))
	}
	return nil
}
