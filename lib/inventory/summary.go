package inventory

import (
	"sort"
	"strings"
	"time"

	"github.com/buttersink/buttersink/lib/snapshot"
)

// Prefix sums up the snapshots below one prefix of a store: the part of
// their path up to its last slash. A bucket that many hosts back up to
// (s3://bucket/host1/, s3://bucket/host2/...) has one per host and
// snapshot directory, so the newest of each tells which host has stopped
// backing up.
type Prefix struct {
	// Prefix ends with a slash; "" for snapshots at the top.
	Prefix string `json:"prefix"`
	// Snapshots counts the records (objects: one per stored stream).
	Snapshots int `json:"snapshots"`
	// Size is the stored size of its objects, nil when none has one.
	Size *int64 `json:"size"`
	// Newest is the path of the snapshot with the latest Time, and Time
	// that time (zero when no record has one).
	Newest string    `json:"newest"`
	Time   time.Time `json:"time,omitzero"`
}

// Time is when a snapshot was last written: an object's time stored, else
// a subvolume's creation (otime), else its ctime; zero when unknown.
func Time(s *snapshot.Snapshot) time.Time {
	switch {
	case !s.Stored.IsZero():
		return s.Stored
	case !s.OTime.IsZero():
		return s.OTime
	}
	return s.CTime
}

// PrefixOf is the prefix path belongs to ("" at the top).
func PrefixOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1]
	}
	return ""
}

// Summary gathers Prefixes a record at a time: its memory is one Prefix
// per prefix, however many records pass.
type Summary struct {
	m map[string]*Prefix
}

// Add counts one record.
func (s *Summary) Add(r *snapshot.Snapshot) {
	if s.m == nil {
		s.m = map[string]*Prefix{}
	}
	key := PrefixOf(r.Path)
	p := s.m[key]
	if p == nil {
		p = &Prefix{Prefix: key}
		s.m[key] = p
	}
	p.Snapshots++
	if r.Size != nil && *r.Size >= 0 {
		if p.Size == nil {
			p.Size = new(int64)
		}
		*p.Size += *r.Size
	}
	// Ties go to the greater path: dated names sort by age.
	if t := Time(r); p.Newest == "" || t.After(p.Time) || (t.Equal(p.Time) && r.Path > p.Newest) {
		p.Newest, p.Time = r.Path, t
	}
}

// Prefixes returns the sums, sorted by prefix.
func (s *Summary) Prefixes() []Prefix {
	out := make([]Prefix, 0, len(s.m))
	for _, p := range s.m {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out
}

// Summarize is the Summary of recs.
func Summarize(recs []snapshot.Snapshot) []Prefix {
	var s Summary
	for i := range recs {
		s.Add(&recs[i])
	}
	return s.Prefixes()
}
