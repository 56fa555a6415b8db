package location

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		in   string
		want Location
		str  string
	}{
		{"/mnt/snaps/", Location{Scheme: Btrfs, Dir: "/mnt/snaps"}, "/mnt/snaps/"},
		{"/mnt/snaps", Location{Scheme: Btrfs, Dir: "/mnt", Snapshot: "snaps"}, "/mnt/snaps"},
		{"/", Location{Scheme: Btrfs, Dir: "/"}, "/"},
		{"btrfs:///mnt//a/./b/", Location{Scheme: Btrfs, Dir: "/mnt/a/b"}, "/mnt/a/b/"},
		{"snaps/", Location{Scheme: Btrfs, Dir: filepath.Join(wd, "snaps")}, filepath.Join(wd, "snaps") + "/"},
		{".", Location{Scheme: Btrfs, Dir: wd}, wd + "/"},
		{"file:///backup/", Location{Scheme: File, Dir: "/backup"}, "file:///backup/"},
		{"file:///backup/home.1", Location{Scheme: File, Dir: "/backup", Snapshot: "home.1"}, "file:///backup/home.1"},
		{"dir:///restore/", Location{Scheme: Dir, Dir: "/restore"}, "dir:///restore/"},
		{"dir:///restore//a/../home.1", Location{Scheme: Dir, Dir: "/restore", Snapshot: "home.1"}, "dir:///restore/home.1"},
		{"DIR:///", Location{Scheme: Dir, Dir: "/"}, "dir:///"},
		{"s3://bucket", Location{Scheme: S3, Bucket: "bucket"}, "s3://bucket/"},
		{"s3://bucket/", Location{Scheme: S3, Bucket: "bucket"}, "s3://bucket/"},
		{"s3://bucket/a/b/", Location{Scheme: S3, Bucket: "bucket", Dir: "a/b"}, "s3://bucket/a/b/"},
		{"s3://bucket/a/snap", Location{Scheme: S3, Bucket: "bucket", Dir: "a", Snapshot: "snap"}, "s3://bucket/a/snap"},
		{"s3://bucket/snap", Location{Scheme: S3, Bucket: "bucket", Snapshot: "snap"}, "s3://bucket/snap"},
		{"ssh://host/dir/", Location{Scheme: SSH, Host: "host", Dir: "/dir"}, "ssh://host/dir/"},
		{"ssh://me@host:2222/d/s", Location{Scheme: SSH, User: "me", Host: "host", Port: 2222, Dir: "/d", Snapshot: "s"}, "ssh://me@host:2222/d/s"},
		{"ssh://[::1]:22/d/", Location{Scheme: SSH, Host: "::1", Port: 22, Dir: "/d"}, "ssh://[::1]:22/d/"},
		{"SSH://h/", Location{Scheme: SSH, Host: "h", Dir: "/"}, "ssh://h/"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.String() != tt.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		again, err := Parse(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q: %+v, %v", tt.in, again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, reason string }{
		{"", "empty"},
		{"ftp://x/", "unknown scheme"},
		{"host:/dir", "unknown form"},
		{"btrfs://rel/", "absolute"},
		{"file://rel/", "absolute"},
		{"dir://rel/", "absolute"},
		{"dir://", "absolute"},
		{"s3://", "missing bucket"},
		{"s3://ab/", "3 to 63"},
		{"s3://Bucket/", "lowercase"},
		{"s3://bucket/a//b/", "empty path component"},
		{"s3://bucket/../b/", "not allowed"},
		{"ssh://host", "missing remote directory"},
		{"ssh:///dir/", "missing host"},
		{"ssh://h:0/d/", "invalid port"},
		{"ssh://h:x/d/", "invalid port"},
		{"ssh://-oProxyCommand=x/d/", "may not start"},
		{"ssh://h;rm/d/", "invalid character"},
		{"ssh://a b@h/d/", "invalid user"},
		{"ssh://h/d/../etc/", "'..'"},
		{"/a\nb", "control character"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tt.in)
			continue
		}
		if !strings.Contains(err.Error(), tt.reason) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error %q, want one line mentioning %q", tt.in, err, tt.reason)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/a/b/", "s3://bucket/p/x", "ssh://u@h:22/d/", "file:///x/", "btrfs:///y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(l.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", l.String(), s, err)
		}
		if again != l {
			t.Fatalf("round trip %q: %+v != %+v", s, again, l)
		}
	})
}
