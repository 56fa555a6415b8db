package version

import (
	"regexp"
	"testing"
)

func TestFull(t *testing.T) {
	for _, tt := range []struct {
		build, revision string
		modified        bool
		want            string
	}{
		{"", "", false, "v0.2.0"},
		{"", "0123456789abcdef0123456789abcdef01234567", false, "v0.2.0+g0123456789ab"},
		{"", "0123456789abcdef0123456789abcdef01234567", true, "v0.2.0+g0123456789ab.dirty"},
		{"deb1", "0123456789abcdef0123456789abcdef01234567", true, "v0.2.0+deb1"},
	} {
		if got := full("v0.2.0", tt.build, tt.revision, tt.modified); got != tt.want {
			t.Errorf("full(%q, %q, %v) = %q, want %q", tt.build, tt.revision, tt.modified, got, tt.want)
		}
	}
}

// The release is a semantic version, and every version passes
// bs-ssh-filter's argument characters (letters, digits, _ . / : = @ % + , -).
func TestRelease(t *testing.T) {
	if !regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`).MatchString(Release) {
		t.Errorf("Release %q is not a semantic version", Release)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`).MatchString(Version) {
		t.Errorf("Version %q has characters bs-ssh-filter refuses", Version)
	}
}
