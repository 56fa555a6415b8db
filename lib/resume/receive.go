package resume

import (
	"time"

	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/uuid"
)

// What a receiver does with this package:
//
//	whole stream:   d := resume.Start(s.Version); then for every command
//	                s.Commands hands out: apply it, then d.Command(hdr[:])
//	                with hdr := c.Header(); now and then, after syncing,
//	                w.Write(resume.NewRecord(subvolUUID, s.Subvol, d, now))
//	                (w := resume.NewWriter(marker file)).
//	resumed stream: rec, ok, _ := resume.Load(dir, base); only if ok and
//	                rec.Subvol is the partial subvolume's UUID and
//	                rec.Resumes(s.Subvol, *s.Resume): d, _ := rec.Digester(),
//	                then as above with s.ResumeCommands.
//
// The first and RESUME commands are never fed to a digest.

// Start is the digest of a whole stream of protocol version, before its
// second command.
func Start(version uint32) *Digester {
	d, err := NewDigester(sendstream.AppendHeader(nil, version&^sendstream.ResumeFlag))
	if err != nil {
		panic(err) // a header made here is always one
	}
	return d
}

// NewRecord is the record of the receive into the subvolume subvol of the
// stream whose first command says h, at d's point.
func NewRecord(subvol uuid.UUID, h sendstream.Head, d *Digester, now time.Time) Record {
	r := Record{Subvol: subvol, UUID: h.UUID, CTransID: h.CTransID, Point: d.Point(), State: d.State(), Time: now}
	if h.Snapshot {
		r.CloneUUID, r.CloneCTransID = h.CloneUUID, h.CloneCTransID
	}
	return r
}

// Resumes reports whether a resumed stream whose first command says h
// and whose RESUME says rf continues the receive r records: the same
// stream, from r's very point. (Whether r belongs to the subvolume at
// hand, r.Subvol, is the caller's to check.)
func (r *Record) Resumes(h sendstream.Head, rf sendstream.ResumeFrom) bool {
	clone, ctid := uuid.Zero, uint64(0)
	if h.Snapshot {
		clone, ctid = h.CloneUUID, h.CloneCTransID
	}
	return r.UUID == h.UUID && r.CTransID == h.CTransID && r.CloneUUID == clone && r.CloneCTransID == ctid &&
		r.Point.Offset == rf.Offset && r.Point.Digest == rf.Digest
}
