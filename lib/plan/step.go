package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/buttersink/buttersink/lib/snapshot"
)

// Operations of a step.
const (
	OpSend   = "send"
	OpDelete = "delete"
)

// Step is one line of bsplan output, read by bssend, bss3get and bsrm.
//
// For "send": Snapshot, Parent and Clones are records at Src (paths
// relative to Src's directory); the snapshot is to end up at Dst under the
// same relative path. Parent is nil for a full send.
// For "delete": Snapshot is a record at Dst, to be deleted.
type Step struct {
	Op       string              `json:"op"`
	Src      string              `json:"src,omitempty"`
	Dst      string              `json:"dst"`
	Snapshot snapshot.Snapshot   `json:"snapshot"`
	Parent   *snapshot.Snapshot  `json:"parent"`
	Clones   []snapshot.Snapshot `json:"clones"`
	// Size is the expected stream size in bytes; Exact tells whether it
	// was measured or estimated.
	Size  int64 `json:"size"`
	Exact bool  `json:"exact"`
	// Chain is the number of objects a restore of Snapshot reads at an
	// object-store destination (1 for a full stream); 0 for btrfs.
	Chain int `json:"chain,omitempty"`
	// Reason says why a delete step was planned ("not in source", "pruned").
	Reason string `json:"reason,omitempty"`
	// Resume, on a send, is the resume point of the partial receive of
	// this very stream at Dst: the sender skips the stream's first
	// Offset bytes after its first command, if their resume digest is
	// Digest, and sends a resumed stream (buttersink-formats(5), RESUME).
	Resume *Resume `json:"resume,omitempty"`
}

// Resume is a send step's resume point.
type Resume struct {
	Offset int64           `json:"offset"`
	Digest snapshot.Digest `json:"digest"`
}

// String is the resume point as bssend's --resume takes it: OFFSET:DIGEST
// (decimal, then 64 hex digits).
func (r Resume) String() string {
	d, _ := r.Digest.MarshalText()
	return strconv.FormatInt(r.Offset, 10) + ":" + string(d)
}

// ParseResume reads OFFSET:DIGEST.
func ParseResume(s string) (Resume, error) {
	off, dig, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(off, 10, 64)
	if !ok || err != nil || n < 0 || off != strconv.FormatInt(n, 10) {
		return Resume{}, fmt.Errorf("resume point %q: want OFFSET:DIGEST", s)
	}
	r := Resume{Offset: n}
	if err := r.Digest.UnmarshalText([]byte(dig)); err != nil {
		return Resume{}, fmt.Errorf("resume point %q: want OFFSET:DIGEST", s)
	}
	return r, nil
}
