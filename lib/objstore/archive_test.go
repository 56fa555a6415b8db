package objstore

import (
	"testing"
	"time"
)

// TestArchiveStateOf: the states S3's HeadObject shapes give (storage
// class, x-amz-restore, x-amz-archive-status).
func TestArchiveStateOf(t *testing.T) {
	tests := []struct {
		name string
		o    Object
		want ArchiveState
	}{
		{"standard", Object{StorageClass: "STANDARD"}, Readable},
		{"no class (S3 omits STANDARD)", Object{}, Readable},
		{"glacier instant retrieval", Object{StorageClass: "GLACIER_IR"}, Readable},
		{"glacier", Object{StorageClass: "GLACIER"}, Archived},
		{"deep archive", Object{StorageClass: "DEEP_ARCHIVE"}, Archived},
		{"glacier restoring", Object{StorageClass: "GLACIER", Restore: `ongoing-request="true"`}, Restoring},
		{"glacier restored", Object{StorageClass: "GLACIER", Restore: `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`}, Readable},
		{"deep archive restored", Object{StorageClass: "DEEP_ARCHIVE", Restore: `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`}, Readable},
		{"intelligent tiering archive", Object{StorageClass: "INTELLIGENT_TIERING", ArchiveStatus: "ARCHIVE_ACCESS"}, Archived},
		{"intelligent tiering deep archive restoring", Object{StorageClass: "INTELLIGENT_TIERING", ArchiveStatus: "DEEP_ARCHIVE_ACCESS", Restore: `ongoing-request="true"`}, Restoring},
		{"intelligent tiering frequent", Object{StorageClass: "INTELLIGENT_TIERING"}, Readable},
		{"garbage restore header", Object{StorageClass: "GLACIER", Restore: `ongoing-request=maybe`}, Archived},
	}
	for _, tc := range tests {
		if got := ArchiveStateOf(tc.o); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestRetained(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		until time.Time
		want  bool
	}{{time.Time{}, false}, {now.Add(-time.Second), false}, {now, false}, {now.Add(time.Second), true}} {
		if got := (Object{RetainUntil: tc.until}).Retained(now); got != tc.want {
			t.Errorf("retain until %v at %v: %v", tc.until, now, got)
		}
	}
}

// FuzzArchiveStateOf: whatever headers a server sends, the state is one
// of the three.
func FuzzArchiveStateOf(f *testing.F) {
	f.Add("GLACIER", `ongoing-request="true"`, "")
	f.Add("DEEP_ARCHIVE", `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`, "")
	f.Add("INTELLIGENT_TIERING", "", "ARCHIVE_ACCESS")
	f.Fuzz(func(t *testing.T, class, restore, archive string) {
		if s := ArchiveStateOf(Object{StorageClass: class, Restore: restore, ArchiveStatus: archive}); s < Readable || s > Restoring {
			t.Fatalf("state %d", s)
		}
	})
}
