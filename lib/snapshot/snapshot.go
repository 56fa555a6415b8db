// Package snapshot is the record every command exchanges about one snapshot:
// a btrfs subvolume (from bsls on a btrfs or ssh location) or an object that
// holds one send stream (from bsls on an s3 or file location). It is one line
// of bsls output and the "snapshot", "parent" and "clones" of a plan step.
package snapshot

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/buttersink/buttersink/lib/uuid"
)

// Kinds of record.
const (
	KindSubvolume = "subvolume"
	KindObject    = "object"
	// KindDirectory is a snapshot received into a plain-directory mirror
	// (dir://): a directory with a marker.
	KindDirectory = "directory"
)

// Snapshot describes one snapshot. Fields a source cannot know are left at
// their zero value (UUIDs null, sizes null, times omitted).
type Snapshot struct {
	Kind string `json:"kind"`
	// Path is relative to the listed directory or prefix, "/"-separated.
	Path string `json:"path"`

	ID           uint64    `json:"id,omitempty"`
	UUID         uuid.UUID `json:"uuid"`
	ParentUUID   uuid.UUID `json:"parent_uuid"`
	ReceivedUUID uuid.UUID `json:"received_uuid"`
	CTransID     uint64    `json:"ctransid"`
	OTransID     uint64    `json:"otransid"`
	STransID     uint64    `json:"stransid"`
	RTransID     uint64    `json:"rtransid"`
	CTime        time.Time `json:"ctime,omitzero"`
	OTime        time.Time `json:"otime,omitzero"`
	ReadOnly     bool      `json:"readonly"`
	// Referenced and Exclusive are qgroup sizes, nil when quotas are off.
	Referenced *uint64 `json:"referenced"`
	Exclusive  *uint64 `json:"exclusive"`
	// Partial marks a writable subvolume that looks like the leftover of
	// an interrupted receive (bsls --all only); lib/inventory has the
	// rule.
	Partial bool `json:"partial,omitempty"`
	// Resume is a partial receive's resume point, when its receive
	// marker holds a valid record for this very subvolume (bsls --all).
	Resume *Resume `json:"resume,omitempty"`

	// Object records only.
	Key string `json:"key,omitempty"`
	// SendParentUUID is the effective UUID of the snapshot the stored
	// stream is relative to; zero for a full stream.
	SendParentUUID uuid.UUID `json:"send_parent_uuid,omitzero"`
	// Size is the stored (encoded) object size in bytes.
	Size *int64 `json:"size,omitempty"`
	// Encoding lists the stages applied after the raw stream, e.g. "zstd.age"; "" = raw.
	Encoding string `json:"encoding,omitempty"`
	// StreamSize is the raw send stream size when known.
	StreamSize *int64 `json:"stream_size,omitempty"`
	// Stored is when the store completed the object (S3 LastModified, a
	// file store's mtime): how old a fleet's newest backup is, read from
	// the listing alone.
	Stored time.Time `json:"stored,omitzero"`
	// Format names the object layout: "buttersink", "buttersink-v0" (the
	// original ButterSink) or "btrfs2s3".
	Format string `json:"format,omitempty"`
	// Filter is, for a directory restored with --include/--exclude, the
	// patterns that selected its content: a part of a snapshot, never
	// the whole one.
	Filter *Filter `json:"filter,omitempty"`
}

// Filter is the patterns of a selective restore (bsrecv --include and
// --exclude).
type Filter struct {
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// Resume is where an interrupted receive can go on: the stream it was
// receiving (UUID and CTransID, of the parent too for an incremental one)
// and how far it got (lib/resume: Offset bytes after the stream's first
// command, and the resume digest there).
type Resume struct {
	Offset         int64     `json:"offset"`
	Digest         Digest    `json:"digest"`
	UUID           uuid.UUID `json:"uuid"`
	CTransID       uint64    `json:"ctransid"`
	ParentUUID     uuid.UUID `json:"parent_uuid,omitzero"`
	ParentCTransID uint64    `json:"parent_ctransid,omitempty"`
}

// Digest is a SHA-256 digest, in JSON 64 lowercase hex digits.
type Digest [32]byte

// MarshalText writes the hex digits.
func (d Digest) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, d[:]), nil }

// UnmarshalText reads exactly 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("digest %q: want 64 hex digits", b)
	}
	if _, err := hex.Decode(d[:], b); err != nil {
		return fmt.Errorf("digest %q: want 64 hex digits", b)
	}
	return nil
}

// EffectiveUUID is the identity a snapshot has across machines: the
// received UUID when set, else the UUID. Two records correlate when their
// effective UUIDs are equal, or one's UUID is the other's received UUID.
func (s *Snapshot) EffectiveUUID() uuid.UUID {
	if !s.ReceivedUUID.IsZero() {
		return s.ReceivedUUID
	}
	return s.UUID
}

// IsObject reports whether s is a stored stream rather than a subvolume.
func (s *Snapshot) IsObject() bool { return s.Kind == KindObject }

// Correlates reports whether a and b are the same snapshot by identity,
// never by name.
func Correlates(a, b *Snapshot) bool {
	ea, eb := a.EffectiveUUID(), b.EffectiveUUID()
	if ea.IsZero() || eb.IsZero() {
		return false
	}
	return ea == eb || (!a.UUID.IsZero() && a.UUID == eb) || (!b.UUID.IsZero() && b.UUID == ea)
}
