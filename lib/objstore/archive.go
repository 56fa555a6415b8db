package objstore

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ArchiveState says whether an object's bytes can be read now.
type ArchiveState int

const (
	// Readable: not archived, or a restored copy is available.
	Readable ArchiveState = iota
	// Archived: a restore request must come first.
	Archived
	// Restoring: a restore was requested and is not done yet.
	Restoring
)

// restoreHeader is S3's x-amz-restore value: ongoing-request="true" while
// a restore runs, "false" with an expiry-date once the copy is readable.
var restoreHeader = regexp.MustCompile(`ongoing-request\s*=\s*"(true|false)"`)

// ArchiveStateOf tells from what Stat returned whether o can be read.
// GLACIER and DEEP_ARCHIVE objects, and Intelligent-Tiering objects in an
// archive tier (ArchiveStatus), must be restored first; GLACIER_IR and the
// other classes read at once.
func ArchiveStateOf(o Object) ArchiveState {
	if m := restoreHeader.FindStringSubmatch(o.Restore); m != nil {
		if m[1] == "true" {
			return Restoring
		}
		return Readable
	}
	switch strings.ToUpper(o.StorageClass) {
	case "GLACIER", "DEEP_ARCHIVE":
		return Archived
	}
	if o.ArchiveStatus != "" {
		return Archived
	}
	return Readable
}

// Restorer is a store whose archived objects can be restored (S3).
type Restorer interface {
	// Restore asks for a readable copy of key for days days, at tier
	// (Standard, Bulk or Expedited). A restore already in progress is
	// not an error.
	Restore(ctx context.Context, key, tier string, days int) error
}

// RestoreTiers are the tiers Restore takes.
var RestoreTiers = []string{"Standard", "Bulk", "Expedited"}

// RestoreWait is roughly how long S3 takes to restore an object of class
// at tier (AWS's published typical times), for telling when to come back.
func RestoreWait(class, tier string) time.Duration {
	deep := strings.EqualFold(class, "DEEP_ARCHIVE")
	switch {
	case strings.EqualFold(tier, "Expedited"):
		return 5 * time.Minute
	case strings.EqualFold(tier, "Bulk") && deep:
		return 48 * time.Hour
	case strings.EqualFold(tier, "Bulk"):
		return 12 * time.Hour
	case deep:
		return 12 * time.Hour
	}
	return 5 * time.Hour
}

// ParseRestoreTier returns tier spelled as S3 wants it.
func ParseRestoreTier(tier string) (string, error) {
	for _, t := range RestoreTiers {
		if strings.EqualFold(t, tier) {
			return t, nil
		}
	}
	return "", fmt.Errorf("restore tier %q: want Standard, Bulk or Expedited", tier)
}
