// Package s3store is the object store in an S3 bucket
// (s3://bucket/prefix/), through the AWS SDK: multipart uploads that
// resume, ranged parallel reads, objects completed only when whole.
package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/uploadstate"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type s3Store struct {
	loc    location.Location
	client *s3.Client
	opts   objstore.Options

	// lockOnce and lockErr cache checkLock's answer for the run.
	lockOnce sync.Once
	lockErr  error
}

// Open returns the store below dir's bucket and prefix (dir.Snapshot is
// ignored).
func Open(ctx context.Context, dir location.Location, opts objstore.Options) (objstore.Store, error) {
	if dir.Scheme != location.S3 {
		return nil, fmt.Errorf("%s: not an s3:// location", dir)
	}
	return openS3(ctx, dir.AsDir(), opts)
}

func openS3(ctx context.Context, loc location.Location, opts objstore.Options) (*s3Store, error) {
	// The SDK's own buildable client, so that AWS_CA_BUNDLE still applies;
	// only the idle pool is widened for concurrent parts.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 64
	})
	lo := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryMaxAttempts(8),
		// Ranged GETs carry no whole-object checksum; the stream's own
		// CRCs and SHA-256 are what bss3get verifies.
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		// Parts carry the CRC32C computed here; no other request needs a
		// checksum of the SDK's choosing.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithLogger(logging.Nop{}),
	}
	if opts.Profile != "" {
		lo = append(lo, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, hint.Wrap(fmt.Errorf("%s: aws configuration: %v", loc.DirString(), err), "check AWS_PROFILE, --profile and ~/.aws/config")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := opts.EndpointURL
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = opts.PathStyle || endpoint != ""
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &s3Store{loc: loc, client: client, opts: opts}, nil
}

func (s *s3Store) Location() location.Location { return s.loc }

func (s *s3Store) prefix() string {
	if s.loc.Dir == "" {
		return ""
	}
	return s.loc.Dir + "/"
}

func (s *s3Store) full(key string) string { return s.prefix() + key }

func (s *s3Store) where(key string) string { return s.loc.DirString() + key }

// checkKeys refuses keys that would not stay below the prefix or that S3
// cannot store under it.
func (s *s3Store) checkKeys(keys ...string) error {
	for _, k := range keys {
		if err := names.Key(k, len(s.prefix())); err != nil {
			return fmt.Errorf("%s: %w", s.loc.DirString(), err)
		}
	}
	return nil
}

// fail turns an SDK error into one line naming the object and the fault,
// with a hint. It is the one place S3 errors are translated; the message
// never holds credentials.
func (s *s3Store) fail(key string, err error) error {
	what := s.where(key)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, objstore.ErrNoConditional) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var se *v4.SigningError
	if errors.As(err, &se) {
		return hint.Wrap(fmt.Errorf("%s: no usable AWS credentials", what),
			"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (--profile)")
	}
	if strings.Contains(err.Error(), "get identity: get credentials:") {
		// The SDK has no error type for an empty credential chain.
		return hint.Wrap(fmt.Errorf("%s: no AWS credentials found", what),
			"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (--profile)")
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return hint.Wrap(fmt.Errorf("%s: bucket %q does not exist", what, s.loc.Bucket), "create it first, e.g. aws s3 mb s3://"+s.loc.Bucket)
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s: %w", what, objstore.ErrNotExist)
		case "PreconditionFailed":
			// Only writes are conditional (If-None-Match: *, and the
			// metadata copy's If-Match on the object it completed).
			return fmt.Errorf("%s: %w", what, objstore.ErrStoredFirst)
		case "AccessDenied", "Forbidden", "AllAccessDisabled":
			return hint.Wrap(fmt.Errorf("%s: access denied", what), "check the credentials' policy for this bucket and prefix")
		case "InvalidAccessKeyId":
			return hint.Wrap(fmt.Errorf("%s: access key id not recognized by the server", what), "check the credentials (AWS_ACCESS_KEY_ID, --profile) and --endpoint-url")
		case "SignatureDoesNotMatch":
			return hint.Wrap(fmt.Errorf("%s: request signature rejected (wrong secret key?)", what), "check the credentials (AWS_SECRET_ACCESS_KEY, --profile)")
		case "InvalidBucketName":
			return fmt.Errorf("%s: invalid bucket name %q", what, s.loc.Bucket)
		case "PermanentRedirect", "AuthorizationHeaderMalformed":
			return hint.Wrap(fmt.Errorf("%s: bucket is in another region", what), "give --region or AWS_REGION")
		case "InvalidObjectState":
			return hint.Wrap(fmt.Errorf("%s: %w", what, objstore.ErrArchived), "request a restore: bss3get --restore-tier Bulk --restore-days 7, then run again once it is done")
		case "ObjectLockConfigurationNotFoundError":
			return hint.Wrap(fmt.Errorf("%s: bucket %q has no object lock configuration", what, s.loc.Bucket),
				"object lock can only be enabled on a bucket when it is created (aws s3api create-bucket --object-lock-enabled-for-bucket)")
		}
		return fmt.Errorf("%s: %s: %s", what, ae.ErrorCode(), ae.ErrorMessage())
	}
	var ne net.Error
	var ue *url.Error
	var rse *smithyhttp.RequestSendError
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &rse) {
		return hint.Wrap(fmt.Errorf("%s: cannot reach the s3 endpoint: %v", what, rootCause(err)), "check --endpoint-url / AWS_ENDPOINT_URL and the network")
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.HTTPStatusCode() != 0 {
		switch re.HTTPStatusCode() {
		case 404:
			return fmt.Errorf("%s: %w", what, objstore.ErrNotExist)
		case 412:
			return fmt.Errorf("%s: %w", what, objstore.ErrStoredFirst)
		case 403:
			return hint.Wrap(fmt.Errorf("%s: access denied", what), "check the credentials and their policy for this bucket")
		}
		return fmt.Errorf("%s: http status %d", what, re.HTTPStatusCode())
	}
	return fmt.Errorf("%s: %v", what, err)
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// eachObject calls fn with every object below the store's prefix, a
// ListObjectsV2 page at a time, and returns fn's first error or the
// listing's (read as the store's, after what when it is set).
func (s *s3Store) eachObject(ctx context.Context, what string, fn func(types.Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.loc.Bucket),
		Prefix: aws.String(s.prefix()),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			if what != "" {
				err = fmt.Errorf("%s: %w", what, err)
			}
			return s.fail("", err)
		}
		for _, o := range page.Contents {
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *s3Store) List(ctx context.Context) ([]objstore.Object, error) {
	var out []objstore.Object
	err := s.eachObject(ctx, "", func(o types.Object) error {
		k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix())
		if strings.HasPrefix(k, uploadRecords) || strings.Contains(k, "/"+uploadRecords) {
			return nil // this store's (or a deeper one's) bookkeeping
		}
		out = append(out, objstore.Object{Key: k, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified), StorageClass: string(o.StorageClass),
			Multipart: strings.Contains(aws.ToString(o.ETag), "-")})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (objstore.Object, error) {
	if err := s.checkKeys(key); err != nil {
		return objstore.Object{}, err
	}
	h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.full(key))})
	if err != nil {
		return objstore.Object{}, s.fail(key, err)
	}
	return objstore.Object{
		Key: key, Size: aws.ToInt64(h.ContentLength), Modified: aws.ToTime(h.LastModified),
		StorageClass: string(h.StorageClass),
		RetainUntil:  aws.ToTime(h.ObjectLockRetainUntilDate),
		Restore:      aws.ToString(h.Restore), ArchiveStatus: string(h.ArchiveStatus),
		Meta: objstore.MetaFromMap(func(k string) (string, bool) {
			v, ok := h.Metadata[k]
			return v, ok
		}),
	}, nil
}

func (s *s3Store) Delete(ctx context.Context, keys ...string) error {
	if err := s.checkKeys(keys...); err != nil {
		return err
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		batch := keys[:n]
		keys = keys[n:]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.full(k))}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.loc.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.fail(batch[0], err)
		}
		for _, e := range out.Errors {
			k := strings.TrimPrefix(aws.ToString(e.Key), s.prefix())
			return s.fail(k, &smithy.GenericAPIError{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message)})
		}
	}
	return nil
}

func (s *s3Store) ListIncomplete(ctx context.Context) ([]objstore.Upload, error) {
	ups, err := s.listUploads(ctx, s.prefix())
	if err != nil {
		return nil, err
	}
	if len(ups) == 0 && s.prefix() != "" {
		// Some S3-compatible servers (MinIO) match an upload's prefix
		// only against the whole key: list every upload and filter here.
		all, err := s.listUploads(ctx, "")
		if err != nil {
			return nil, err
		}
		for _, u := range all {
			if strings.HasPrefix(u.Internal, s.prefix()) {
				ups = append(ups, u)
			}
		}
	}
	// MinIO, once restarted, lists none by prefix at all: ask for the
	// exact keys recorded when their uploads started.
	rec, err := s.recordedUploads(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, u := range ups {
		seen[u.ID] = true
	}
	for _, u := range rec {
		if !seen[u.ID] {
			seen[u.ID] = true
			ups = append(ups, u)
		}
	}
	return ups, nil
}

func (s *s3Store) listUploads(ctx context.Context, prefix string) ([]objstore.Upload, error) {
	var out []objstore.Upload
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.loc.Bucket), Prefix: aws.String(prefix)}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, s.fail("", err)
		}
		for _, u := range page.Uploads {
			out = append(out, objstore.Upload{
				Key:      strings.TrimPrefix(aws.ToString(u.Key), s.prefix()),
				ID:       aws.ToString(u.UploadId),
				Started:  aws.ToTime(u.Initiated),
				Internal: aws.ToString(u.Key),
			})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

func (s *s3Store) Abort(ctx context.Context, u objstore.Upload) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.loc.Bucket), Key: aws.String(u.Internal), UploadId: aws.String(u.ID),
	})
	if err != nil {
		if e := s.fail(u.Key, err); !errors.Is(e, objstore.ErrNotExist) {
			return e
		}
	}
	uploadstate.Remove(s.where(u.Key), u.ID)
	if left, err := s.findUpload(ctx, u.Key); err == nil && left == nil {
		s.forgetUpload(ctx, u.Key)
	}
	return nil
}

// listParts returns the parts an interrupted upload holds.
func (s *s3Store) listParts(ctx context.Context, key, id string) (map[int32]types.Part, error) {
	parts := map[int32]types.Part{}
	in := &s3.ListPartsInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.full(key)), UploadId: aws.String(id)}
	for {
		page, err := s.client.ListParts(ctx, in)
		if err != nil {
			return nil, s.fail(key, err)
		}
		for _, p := range page.Parts {
			parts[aws.ToInt32(p.PartNumber)] = p
		}
		if !aws.ToBool(page.IsTruncated) {
			return parts, nil
		}
		in.PartNumberMarker = page.NextPartNumberMarker
	}
}

// exactUploads returns the unfinished uploads of exactly the object key
// full (prefix included); listing by prefix also gives longer keys.
func (s *s3Store) exactUploads(ctx context.Context, full string) ([]objstore.Upload, error) {
	ups, err := s.listUploads(ctx, full)
	if err != nil {
		return nil, err
	}
	exact := ups[:0]
	for _, u := range ups {
		if u.Internal == full {
			exact = append(exact, u)
		}
	}
	return exact, nil
}

// findUpload returns the newest unfinished upload of exactly key, or nil.
func (s *s3Store) findUpload(ctx context.Context, key string) (*objstore.Upload, error) {
	ups, err := s.exactUploads(ctx, s.full(key))
	if err != nil {
		return nil, err
	}
	var best *objstore.Upload
	for i := range ups {
		if best == nil || ups[i].Started.After(best.Started) {
			best = &ups[i]
		}
	}
	return best, nil
}

func (s *s3Store) Create(ctx context.Context, key string, meta objstore.Meta, opts objstore.PutOptions) (objstore.Putter, error) {
	if err := s.checkKeys(key); err != nil {
		return nil, err
	}
	if err := CheckPartSize(opts.PartSize); err != nil {
		return nil, err
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 4
	}
	if err := s.checkLock(ctx); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	meta.PartScheme = PartScheme(opts.PartSize)
	ctx, cancel := context.WithCancelCause(ctx)
	p := &s3Putter{s: s, ctx: ctx, cancel: cancel, key: key, meta: meta, opts: opts,
		pool: make(chan []byte, opts.Concurrency)}
	up, err := s.findUpload(ctx, key)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if up == nil {
		// Local records of this key's uploads aborted elsewhere.
		uploadstate.RemoveObject(s.where(key))
		return p, nil
	}
	p.uploadID = up.ID
	if p.existing, err = s.listParts(ctx, key, up.ID); err != nil {
		cancel(nil)
		return nil, err
	}
	opts.Log("resuming upload", "key", key, "parts", len(p.existing))
	// Uploads started before records were kept get one now.
	if err := s.noteUpload(ctx, key); err != nil {
		cancel(nil)
		return nil, err
	}
	if opts.Started != nil {
		if err := opts.Started(up.ID, true); err != nil {
			cancel(nil)
			return nil, err
		}
	}
	return p, nil
}

// s3Putter cuts what is written into parts and uploads up to Concurrency
// of them at once. Part buffers come from a pool of Concurrency buffers,
// so memory stays at Concurrency × part size whatever the stream's length.
type s3Putter struct {
	s      *s3Store
	ctx    context.Context
	cancel context.CancelCauseFunc
	key    string
	meta   objstore.Meta
	opts   objstore.PutOptions

	uploadID string
	noted    bool // its record (noteUpload) is written
	existing map[int32]types.Part

	buf       []byte // the part being filled
	partNum   int    // parts handed off so far
	allocated int
	partBytes int64 // Concurrency × the biggest part size so far
	pool      chan []byte
	wg        sync.WaitGroup

	mu    sync.Mutex
	done  []types.CompletedPart
	err   error
	size  int64
	sent  int
	kept  int
	ended bool
}

func (p *s3Putter) setErr(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
		p.cancel(err)
	}
	p.mu.Unlock()
}

func (p *s3Putter) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stopped is the error once the upload's context is done: the first
// error, else why the context ended (an interrupt, or Abort).
func (p *s3Putter) stopped() error {
	if err := p.firstErr(); err != nil {
		return err
	}
	return p.s.fail(p.key, context.Cause(p.ctx))
}

// getBuf returns an empty buffer able to hold part n.
func (p *s3Putter) getBuf(n int) ([]byte, error) {
	size := PartSize(p.opts.PartSize, n)
	if all := size * int64(p.opts.Concurrency); all > p.partBytes {
		p.partBytes = all
		if p.opts.PartMemory != nil {
			p.opts.PartMemory(all)
		}
	}
	var b []byte
	if p.allocated < p.opts.Concurrency {
		p.allocated++
	} else {
		select {
		case b = <-p.pool:
		case <-p.ctx.Done():
			return nil, p.stopped()
		}
	}
	if int64(cap(b)) < size {
		putBuffer(b)
		b = getBuffer(size)
	}
	return b[:0], nil
}

// release hands the buffers back for the next object, once no part
// upload uses them any more.
func (p *s3Putter) release() {
	p.wg.Wait()
	putBuffer(p.buf)
	p.buf = nil
	for {
		select {
		case b := <-p.pool:
			putBuffer(b)
		default:
			return
		}
	}
}

// Write must not be called concurrently with itself, Close or Abort, nor
// after them: the caller (the encoder's goroutines included) is done
// writing before it closes or aborts. A Write after them is refused, as
// is one once the context is done, so a part buffer handed back by
// release is never written into.
func (p *s3Putter) Write(b []byte) (int, error) {
	if p.ended {
		return 0, fmt.Errorf("%s: write after close", p.s.where(p.key))
	}
	if err := p.firstErr(); err != nil {
		return 0, err
	}
	if p.ctx.Err() != nil {
		return 0, p.stopped()
	}
	total := len(b)
	for len(b) > 0 {
		if p.buf == nil {
			buf, err := p.getBuf(p.partNum + 1)
			if err != nil {
				return total - len(b), err
			}
			p.buf = buf
		}
		want := int(PartSize(p.opts.PartSize, p.partNum+1))
		n := copy(p.buf[len(p.buf):want], b)
		p.buf = p.buf[:len(p.buf)+n]
		b = b[n:]
		p.size += int64(n)
		if len(p.buf) == want {
			if p.partNum+1 > MaxParts {
				err := fmt.Errorf("%s: stream exceeds %d parts (use a bigger --part-size)", p.s.where(p.key), MaxParts)
				p.setErr(err)
				return total - len(b), err
			}
			if err := p.flush(); err != nil {
				return total - len(b), err
			}
		}
	}
	return total, nil
}

// flush hands the full buffer off as the next part: kept when the resumed
// upload already holds it with the same size and CRC32C, else uploaded.
func (p *s3Putter) flush() error {
	if p.uploadID == "" {
		// Recorded first, so that no upload exists unrecorded.
		if err := p.s.noteUpload(p.ctx, p.key); err != nil {
			p.setErr(err)
			return err
		}
		p.noted = true
		out, err := p.s.client.CreateMultipartUpload(p.ctx, &s3.CreateMultipartUploadInput{
			Bucket:   aws.String(p.s.loc.Bucket),
			Key:      aws.String(p.s.full(p.key)),
			Metadata: p.meta.Map(),
			// The object gets a full-object CRC32C, which the server
			// combines from the parts' (none is sent at the end, so a
			// server that only knows composite checksums works too).
			// With it, MinIO's metadata copy below is metadata-only;
			// with a composite one it rewrites the whole object to
			// compute a full-object checksum of its own.
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			ChecksumType:      types.ChecksumTypeFullObject,
			// No storage class yet: the metadata copy at the end reads
			// the object, which an archive class (GLACIER, DEEP_ARCHIVE)
			// would refuse. The copy sets the class.
			ServerSideEncryption: types.ServerSideEncryption(p.s.opts.SSE),
			ContentType:          aws.String("application/octet-stream"),
		})
		if err != nil {
			err = p.s.fail(p.key, err)
			p.setErr(err)
			return err
		}
		p.uploadID = aws.ToString(out.UploadId)
		if p.opts.Started != nil {
			if err := p.opts.Started(p.uploadID, false); err != nil {
				p.setErr(err)
				return err
			}
		}
	}
	p.partNum++
	num := int32(p.partNum)
	data := p.buf
	p.buf = nil
	sum := crc32.Checksum(data, castagnoli)
	var sb [4]byte
	binary.BigEndian.PutUint32(sb[:], sum)
	crc := base64.StdEncoding.EncodeToString(sb[:])
	old, ok := p.existing[num]
	if ok && (aws.ToInt64(old.Size) != int64(len(data)) || aws.ToString(old.ChecksumCRC32C) != crc) {
		ok = false
		if p.opts.Mismatch != nil && p.opts.Mismatch(int(num)) {
			p.existing = nil
		}
	}
	if ok {
		p.opts.Log("part kept", "key", p.key, "part", num, "size", len(data))
		p.mu.Lock()
		p.kept++
		p.done = append(p.done, types.CompletedPart{PartNumber: aws.Int32(num), ETag: old.ETag, ChecksumCRC32C: aws.String(crc)})
		p.mu.Unlock()
		p.pool <- data
		return nil
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { p.pool <- data }()
		out, err := p.s.client.UploadPart(p.ctx, &s3.UploadPartInput{
			Bucket:         aws.String(p.s.loc.Bucket),
			Key:            aws.String(p.s.full(p.key)),
			UploadId:       aws.String(p.uploadID),
			PartNumber:     aws.Int32(num),
			Body:           bytes.NewReader(data),
			ContentLength:  aws.Int64(int64(len(data))),
			ChecksumCRC32C: aws.String(crc),
		}, unsignedPayload)
		if err != nil {
			p.setErr(p.s.fail(p.key, fmt.Errorf("part %d: %w", num, err)))
			return
		}
		p.opts.Log("part sent", "key", p.key, "part", num, "size", len(data))
		p.mu.Lock()
		p.sent++
		p.done = append(p.done, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32C: aws.String(crc)})
		p.mu.Unlock()
	}()
	return nil
}

// unsignedPayload skips the SDK's SHA-256 of every part body for the
// request signature: each part carries its CRC32C, which the server checks.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// Close completes the upload, conditionally: it never replaces an object
// (ErrExists). The object under its final key carries
// the digest only after the metadata copy; when a step fails or is
// interrupted, Close leaves no object that looks stored: a non-resumable
// upload (Discard) is aborted, and an object completed without its digest
// is deleted. A resumable upload whose completion failed stays for the
// next run.
func (p *s3Putter) Close(meta objstore.Meta) (objstore.Object, error) {
	if p.ended {
		return objstore.Object{}, fmt.Errorf("%s: closed twice", p.s.where(p.key))
	}
	p.ended = true
	defer p.release()
	defer p.cancel(nil)
	meta.PartScheme = p.meta.PartScheme
	meta.EncodedSize = p.size
	meta.Format = objstore.MetaFormat
	fail := func(err error) (objstore.Object, error) {
		p.wg.Wait()
		p.discard()
		return objstore.Object{}, err
	}
	if err := p.firstErr(); err != nil {
		return fail(err)
	}
	if p.ctx.Err() != nil {
		return fail(p.stopped())
	}
	if p.uploadID == "" {
		return p.putSingle(meta)
	}
	if len(p.buf) > 0 || p.partNum == 0 {
		if err := p.flush(); err != nil {
			return fail(err)
		}
	}
	p.wg.Wait()
	if err := p.firstErr(); err != nil {
		return fail(err)
	}
	sort.Slice(p.done, func(i, j int) bool { return *p.done[i].PartNumber < *p.done[j].PartNumber })
	p.opts.Log("upload parts", "key", p.key, "sent", p.sent, "kept", p.kept)
	done, err := p.s.client.CompleteMultipartUpload(p.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(p.s.loc.Bucket),
		Key:             aws.String(p.s.full(p.key)),
		UploadId:        aws.String(p.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: p.done},
		// Never replace an object (412 when the key is stored).
		IfNoneMatch: aws.String("*"),
	})
	if err != nil {
		err = p.s.fail(p.key, fmt.Errorf("complete upload: %w", conditional(err)))
		if errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrNoConditional) {
			// The object is another's: leave it, and drop the upload,
			// which can never complete.
			p.abortUpload()
			return objstore.Object{}, err
		}
		// An interrupted request may still have completed the upload.
		p.discard()
		p.removeUndigested()
		return objstore.Object{}, err
	}
	p.opts.Log("upload completed", "key", p.key)
	// The digest is only known now, and S3 takes metadata only when an
	// object is created (CreateMultipartUpload, before the first part):
	// set it by copying the object onto itself with new metadata. Until
	// then the object carries the metadata of CreateMultipartUpload,
	// without a digest, which no lister counts as a stored stream.
	if err := p.s.replaceMeta(p.ctx, p.key, p.size, aws.ToString(done.ETag), meta); err != nil {
		if errors.Is(err, objstore.ErrExists) {
			// Deleted and stored again by another writer meanwhile:
			// the object is not ours to remove.
			return objstore.Object{}, err
		}
		p.removeUndigested()
		return objstore.Object{}, err
	}
	if v := aws.ToString(done.VersionId); v != "" {
		// A versioned bucket (every bucket with object lock) keeps the
		// completed version without its digest beside the copy: it is
		// this run's own, never locked (CreateMultipartUpload sets no
		// retention), and of no use.
		p.s.client.DeleteObject(p.ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.s.loc.Bucket), Key: aws.String(p.s.full(p.key)), VersionId: aws.String(v)})
	}
	p.s.forgetUpload(p.ctx, p.key)
	uploadstate.Remove(p.s.where(p.key), p.uploadID)
	return objstore.Object{Key: p.key, Size: p.size, Modified: time.Now(), Meta: meta}, nil
}

// cleanupTimeout bounds the requests that clean up after a failure or an
// interrupt: they run after the run's context is done.
const cleanupTimeout = 30 * time.Second

func (p *s3Putter) cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(p.ctx), cleanupTimeout)
}

// discard aborts the multipart upload when it cannot be resumed.
func (p *s3Putter) discard() {
	if p.opts.Discard {
		p.abortUpload()
	}
}

// abortUpload aborts the multipart upload, if any, and removes its record.
func (p *s3Putter) abortUpload() {
	if !p.noted && p.uploadID == "" {
		return
	}
	ctx, cancel := p.cleanupContext()
	defer cancel()
	ids := []string{p.uploadID}
	if p.uploadID == "" {
		// Stopped while creating it: the server may have made the upload
		// without this run learning its ID. Ask for the key's uploads;
		// if that fails, the record stays for bsrm --incomplete.
		ups, err := p.s.exactUploads(ctx, p.s.full(p.key))
		if err != nil {
			return
		}
		ids = ids[:0]
		for _, u := range ups {
			ids = append(ids, u.ID)
		}
	}
	for _, id := range ids {
		if _, err := p.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(p.s.loc.Bucket), Key: aws.String(p.s.full(p.key)), UploadId: aws.String(id),
		}); err != nil && !isNoSuchUpload(err) {
			return // the record stays: bsrm --incomplete finds the upload
		}
		uploadstate.Remove(p.s.where(p.key), id)
	}
	p.s.forgetUpload(ctx, p.key)
}

// removeUndigested deletes the object under the key when it has no
// digest: an upload completed whose metadata copy did not happen.
func (p *s3Putter) removeUndigested() {
	ctx, cancel := p.cleanupContext()
	defer cancel()
	o, err := p.s.Stat(ctx, p.key)
	if err != nil || o.Meta.Complete() {
		return
	}
	p.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.s.loc.Bucket), Key: aws.String(p.s.full(p.key))})
}

func (p *s3Putter) putSingle(meta objstore.Meta) (objstore.Object, error) {
	data := p.buf
	sum := crc32.Checksum(data, castagnoli)
	var sb [4]byte
	binary.BigEndian.PutUint32(sb[:], sum)
	_, err := p.s.client.PutObject(p.ctx, &s3.PutObjectInput{
		Bucket:               aws.String(p.s.loc.Bucket),
		Key:                  aws.String(p.s.full(p.key)),
		Body:                 bytes.NewReader(data),
		ContentLength:        aws.Int64(int64(len(data))),
		ChecksumCRC32C:       aws.String(base64.StdEncoding.EncodeToString(sb[:])),
		Metadata:             meta.Map(),
		StorageClass:         types.StorageClass(p.s.opts.StorageClass),
		ServerSideEncryption: types.ServerSideEncryption(p.s.opts.SSE),
		ContentType:          aws.String("application/octet-stream"),
		// Never replace an object (412 when the key is stored).
		IfNoneMatch:               aws.String("*"),
		ObjectLockMode:            p.s.lockMode(),
		ObjectLockRetainUntilDate: p.s.retainUntil(),
	}, unsignedPayload)
	if err != nil {
		return objstore.Object{}, p.s.fail(p.key, conditional(err))
	}
	p.opts.Log("object sent", "key", p.key, "size", len(data))
	return objstore.Object{Key: p.key, Size: int64(len(data)), Modified: time.Now(), Meta: meta}, nil
}

// replaceMeta sets an object's metadata by copying it onto itself, in
// parts of 5 GiB above CopyObject's limit. The copy's source must still
// have etag, the object the upload completed: never another's.
func (s *s3Store) replaceMeta(ctx context.Context, key string, size int64, etag string, meta objstore.Meta) error {
	src := url.PathEscape(s.loc.Bucket) + "/" + escapeKey(s.full(key))
	if size <= MaxPartSize {
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:               aws.String(s.loc.Bucket),
			Key:                  aws.String(s.full(key)),
			CopySource:           aws.String(src),
			CopySourceIfMatch:    aws.String(etag),
			MetadataDirective:    types.MetadataDirectiveReplace,
			Metadata:             meta.Map(),
			StorageClass:         types.StorageClass(s.opts.StorageClass),
			ServerSideEncryption: types.ServerSideEncryption(s.opts.SSE),
			ContentType:          aws.String("application/octet-stream"),
			// The retention goes on the copy, the object that stays.
			ObjectLockMode:            s.lockMode(),
			ObjectLockRetainUntilDate: s.retainUntil(),
		})
		if err != nil {
			return s.fail(key, fmt.Errorf("set metadata: %w", err))
		}
		return nil
	}
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:                    aws.String(s.loc.Bucket),
		Key:                       aws.String(s.full(key)),
		Metadata:                  meta.Map(),
		StorageClass:              types.StorageClass(s.opts.StorageClass),
		ServerSideEncryption:      types.ServerSideEncryption(s.opts.SSE),
		ContentType:               aws.String("application/octet-stream"),
		ObjectLockMode:            s.lockMode(),
		ObjectLockRetainUntilDate: s.retainUntil(),
	})
	if err != nil {
		return s.fail(key, fmt.Errorf("set metadata: %w", err))
	}
	id := out.UploadId
	abort := func(err error) error {
		s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.full(key)), UploadId: id})
		return s.fail(key, fmt.Errorf("set metadata: %w", err))
	}
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < size; off, n = off+MaxPartSize, n+1 {
		end := min(off+MaxPartSize, size) - 1
		pc, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.full(key)), UploadId: id,
			PartNumber: aws.Int32(n), CopySource: aws.String(src), CopySourceIfMatch: aws.String(etag),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			return abort(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: pc.CopyPartResult.ETag})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.full(key)), UploadId: id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(err)
	}
	return nil
}

func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Abort stops the upload. Parts already sent stay in the unfinished
// multipart upload so that the next run of the same stream resumes; when
// discard is set (encodings that are not reproducible, like age) the
// upload is aborted instead. The caller has stopped writing: the part
// buffers go back to the free list.
func (p *s3Putter) Abort() {
	if p.ended {
		return
	}
	p.ended = true
	p.cancel(errors.New("aborted"))
	p.release()
	p.discard()
}

var _ io.Writer = (*s3Putter)(nil)
