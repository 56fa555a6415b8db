// Package bss3put is the command bss3put: it stores send streams from stdin in an object store, one
// object per stream.
package bss3put

import (
	"context"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/lock"
	"github.com/buttersink/buttersink/lib/metrics"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/objopts"
	"github.com/buttersink/buttersink/lib/objstore/s3store"
	"github.com/buttersink/buttersink/lib/stage"
)

type flags struct {
	cli.Globals
	Store objstore.Flags `embed:""`
	Lock  lock.Flags     `embed:""`
	Stats metrics.Flags  `embed:""`

	StorageClass  string            `name:"storage-class" placeholder:"CLASS" help:"S3 storage class of new objects (STANDARD, STANDARD_IA, GLACIER, DEEP_ARCHIVE, ...)."`
	SSE           string            `name:"sse" placeholder:"ALG" help:"Server-side encryption of new objects: AES256 or aws:kms."`
	ObjectLock    string            `name:"object-lock" placeholder:"MODE:DURATION" help:"S3 Object Lock retention of new objects: GOVERNANCE or COMPLIANCE, for DURATION days (30d), weeks (8w) or years (1y); the bucket must have object lock enabled."`
	Zstd          zstdLevel         `name:"zstd" placeholder:"LEVEL" help:"Compress with zstd, at LEVEL 1-22 (default 3)."`
	AgeRecipient  []string          `sep:"none" name:"age-recipient" short:"r" placeholder:"R" help:"Encrypt with age to recipient R (age1...); repeatable."`
	AgeRecipients []string          `sep:"none" name:"age-recipients-file" short:"R" placeholder:"FILE" type:"existingfile" help:"Encrypt with age to the recipients in FILE; repeatable."`
	Filter        []string          `sep:"none" name:"filter" placeholder:"CMD" help:"Pipe the (compressed, encrypted) stream through 'sh -c CMD'; repeatable, applied in order."`
	PartSize      objstore.ByteSize `name:"part-size" placeholder:"SIZE" help:"Multipart part size (5MiB-5GiB); default: 8MiB doubling every 1,000 parts."`
	MaxObjectSize objstore.ByteSize `name:"max-object-size" placeholder:"SIZE" help:"Store a stream larger than SIZE as several objects of at most SIZE (at least one part); default 5TiB, S3's limit."`
	Concurrency   int               `name:"concurrency" short:"j" default:"4" help:"Parts uploaded at once."`
	Location      string            `arg:"" name:"location" help:"Store directory: s3://bucket/prefix/ or file:///dir/."`
}

// Main runs bss3put on args (those after the command's name) and returns its
// exit status; cmd/bs-s3 (the multi-call binary) runs it and exits.
func Main(args []string) int {
	var f flags
	return cli.Main(args, "bss3put", "Store the send streams read from stdin in an object store, one object per stream.", &f, func(ctx context.Context, env *cli.Env) error {
		rec := f.Stats.Recorder(f.Location)
		env.AtExit(rec.AtExit(env.Log))
		dst, err := location.Parse(f.Location)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		if err := s3store.CheckPartSize(int64(f.PartSize)); err != nil {
			return cli.UsageError("--part-size: %v", err)
		}
		if m := int64(f.MaxObjectSize); m != 0 && (m < s3store.PartSize(int64(f.PartSize), 1) || m > objstore.MaxObjectSize) {
			return cli.UsageError("--max-object-size %d: want one part (%d bytes) to 5 TiB", m, s3store.PartSize(int64(f.PartSize), 1))
		}
		if f.Concurrency < 1 || f.Concurrency > 64 {
			return cli.UsageError("--concurrency %d: want 1 to 64", f.Concurrency)
		}
		recipients, err := stage.ParseRecipients(f.AgeRecipient, f.AgeRecipients)
		if err != nil {
			return cli.UsageError("%v", err)
		}
		enc := stage.Encoding{Zstd: f.Zstd > 0, ZstdLevel: int(f.Zstd), Recipients: recipients, Stderr: env.Stderr}
		for _, c := range f.Filter {
			fl, err := stage.NewFilter(c)
			if err != nil {
				return cli.UsageError("--filter: %v", err)
			}
			enc.Filters = append(enc.Filters, fl)
		}
		store := f.Store.Options()
		store.StorageClass, store.SSE = f.StorageClass, f.SSE
		if f.ObjectLock != "" {
			if dst.Scheme != location.S3 {
				return cli.UsageError("--object-lock: only s3:// stores have object lock (%s)", dst)
			}
			if store.Lock, err = objopts.ParseRetention(f.ObjectLock); err != nil {
				return cli.UsageError("--object-lock: %v", err)
			}
		}
		return Put(ctx, env, PutOptions{
			Dst: dst, Store: store, Encoding: enc, PartSize: int64(f.PartSize), MaxObjectSize: int64(f.MaxObjectSize), Concurrency: f.Concurrency, MemoryLimit: true,
			Lock: f.Lock.Options(env.Name, env.Log), Stats: &rec.Stats,
		})
	})
}
