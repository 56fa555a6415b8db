// Package location parses the locations every command takes:
//
//	[btrfs://]/abs/dir/[snapshot]        local btrfs (relative paths allowed without scheme)
//	ssh://[user@]host[:port]/dir/[snapshot]
//	s3://bucket/prefix/[snapshot]
//	file:///dir/[snapshot]                object store on a plain directory
//	dir:///dir/[snapshot]                 plain-directory mirror (received snapshots as directories)
//
// A trailing slash means every read-only snapshot below the directory,
// recursively; without it the last component names one snapshot.
package location

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Scheme is the kind of store a location points at.
type Scheme string

// Schemes.
const (
	Btrfs Scheme = "btrfs"
	SSH   Scheme = "ssh"
	S3    Scheme = "s3"
	File  Scheme = "file"
	// Dir is a plain-directory mirror: each received snapshot a
	// directory with a marker beside it, on any filesystem.
	Dir Scheme = "dir"
)

// Location is a parsed location.
type Location struct {
	Scheme Scheme
	// SSH only.
	User string
	Host string
	Port int
	// S3 only.
	Bucket string
	// Dir is the directory: an absolute, clean path for btrfs, ssh, file
	// and dir ("/" for the root); the key prefix without leading or trailing
	// slash for s3 ("" for the bucket root).
	Dir string
	// Snapshot is the one snapshot named, relative to Dir; "" means every
	// snapshot below Dir.
	Snapshot string
}

// IsObjectStore reports whether the location stores send streams as
// objects (s3, file) rather than subvolumes (btrfs, ssh).
func (l Location) IsObjectStore() bool { return l.Scheme == S3 || l.Scheme == File }

// IsRemote reports whether the location is reached through ssh.
func (l Location) IsRemote() bool { return l.Scheme == SSH }

// String is the canonical form, which Parse reads back to the same value.
func (l Location) String() string {
	s := l.DirString()
	return s + l.Snapshot
}

// DirString is the canonical form of the directory, with a trailing slash.
func (l Location) DirString() string {
	switch l.Scheme {
	case S3:
		if l.Dir == "" {
			return "s3://" + l.Bucket + "/"
		}
		return "s3://" + l.Bucket + "/" + l.Dir + "/"
	case SSH:
		h := l.Host
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		if l.User != "" {
			h = l.User + "@" + h
		}
		if l.Port != 0 {
			h += ":" + strconv.Itoa(l.Port)
		}
		return "ssh://" + h + slashed(l.Dir)
	case File:
		return "file://" + slashed(l.Dir)
	case Dir:
		return "dir://" + slashed(l.Dir)
	default:
		return slashed(l.Dir)
	}
}

// Path is the directory or snapshot path on its host (btrfs, ssh, file, dir)
// or the key prefix (s3), without trailing slash.
func (l Location) Path() string {
	if l.Snapshot == "" {
		return l.Dir
	}
	if l.Scheme == S3 && l.Dir == "" {
		return l.Snapshot
	}
	return path.Join(l.Dir, l.Snapshot)
}

// AsDir returns the location of the directory itself (Snapshot dropped).
func (l Location) AsDir() Location { l.Snapshot = ""; return l }

// SSHTarget is [user@]host as the ssh client takes it.
func (l Location) SSHTarget() string {
	if l.User != "" {
		return l.User + "@" + l.Host
	}
	return l.Host
}

func slashed(dir string) string {
	if dir == "/" {
		return "/"
	}
	return dir + "/"
}

// Error is a malformed location.
type Error struct {
	Location string
	Reason   string
}

func (e *Error) Error() string { return fmt.Sprintf("location %q: %s", e.Location, e.Reason) }

// Parse reads a location. Relative paths without scheme are made
// absolute against the working directory.
func Parse(s string) (Location, error) {
	bad := func(format string, a ...any) (Location, error) {
		return Location{}, &Error{Location: s, Reason: fmt.Sprintf(format, a...)}
	}
	if s == "" {
		return bad("empty")
	}
	if strings.ContainsAny(s, "\x00\n\r") {
		return bad("contains a control character")
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if strings.Contains(s, ":") && !strings.Contains(strings.SplitN(s, ":", 2)[0], "/") && !strings.HasPrefix(s, ".") {
			// Catch scp-style "host:/dir" and unknown "scheme:..." early.
			return bad("unknown form; use ssh://host/dir/ for remote, or ./%s for a local name with a colon", s)
		}
		return parseLocal(s, s, Btrfs)
	}
	switch Scheme(strings.ToLower(scheme)) {
	case Btrfs:
		if !strings.HasPrefix(rest, "/") {
			return bad("btrfs:// needs an absolute path, as btrfs:///dir/")
		}
		return parseLocal(s, rest, Btrfs)
	case File:
		if !strings.HasPrefix(rest, "/") {
			return bad("file:// needs an absolute path, as file:///dir/")
		}
		return parseLocal(s, rest, File)
	case Dir:
		if !strings.HasPrefix(rest, "/") {
			return bad("dir:// needs an absolute path, as dir:///dir/")
		}
		return parseLocal(s, rest, Dir)
	case S3:
		return parseS3(s, rest)
	case SSH:
		return parseSSH(s, rest)
	default:
		return bad("unknown scheme %q (want btrfs, ssh, s3, file or dir)", scheme)
	}
}

func parseLocal(orig, p string, scheme Scheme) (Location, error) {
	trailing := strings.HasSuffix(p, "/") || p == "." || p == ".." || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return Location{}, &Error{Location: orig, Reason: "relative path and no working directory: " + err.Error()}
		}
		p = filepath.Join(wd, p)
	}
	p = filepath.Clean(p)
	l := Location{Scheme: scheme, Dir: p}
	if !trailing && p != "/" {
		l.Dir, l.Snapshot = filepath.Dir(p), filepath.Base(p)
	}
	return l, nil
}

func parseS3(orig, rest string) (Location, error) {
	bad := func(format string, a ...any) (Location, error) {
		return Location{}, &Error{Location: orig, Reason: fmt.Sprintf(format, a...)}
	}
	bucket, key, _ := strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != "" {
		return bad("%s", err)
	}
	l := Location{Scheme: S3, Bucket: bucket}
	if key == "" {
		return l, nil
	}
	trailing := strings.HasSuffix(key, "/")
	key = strings.Trim(key, "/")
	for _, c := range strings.Split(key, "/") {
		switch c {
		case "":
			return bad("empty path component")
		case ".", "..":
			return bad("%q is not allowed in a key prefix", c)
		}
	}
	if trailing {
		l.Dir = key
	} else if i := strings.LastIndexByte(key, '/'); i >= 0 {
		l.Dir, l.Snapshot = key[:i], key[i+1:]
	} else {
		l.Snapshot = key
	}
	return l, nil
}

func checkBucket(b string) string {
	if b == "" {
		return "missing bucket name, as s3://bucket/prefix/"
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Sprintf("bucket name %q must be 3 to 63 characters", b)
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Sprintf("bucket name %q may hold only lowercase letters, digits, '.', '-' and '_'", b)
		}
	}
	return ""
}

func parseSSH(orig, rest string) (Location, error) {
	bad := func(format string, a ...any) (Location, error) {
		return Location{}, &Error{Location: orig, Reason: fmt.Sprintf(format, a...)}
	}
	authority, p, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("missing remote directory, as ssh://host/dir/")
	}
	p = "/" + p
	var l Location
	l.Scheme = SSH
	if u, h, ok := strings.Cut(authority, "@"); ok {
		if u == "" || strings.ContainsAny(u, " \t'\"`$;&|<>\\/:@") {
			return bad("invalid user name %q", u)
		}
		l.User, authority = u, h
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return bad("unclosed '[' in host")
		}
		host, port = authority[1:end], strings.TrimPrefix(authority[end+1:], ":")
		if net.ParseIP(host) == nil {
			return bad("invalid IPv6 address %q", host)
		}
	} else if h, pt, ok := strings.Cut(authority, ":"); ok {
		host, port = h, pt
	}
	if host == "" {
		return bad("missing host")
	}
	if strings.HasPrefix(host, "-") {
		return bad("host may not start with '-'")
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':' || c == '%') {
			return bad("invalid character %q in host", c)
		}
	}
	l.Host = host
	if port != "" || strings.HasSuffix(authority, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return bad("invalid port %q", port)
		}
		l.Port = n
	}
	trailing := strings.HasSuffix(p, "/")
	for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
		if c == ".." {
			return bad("'..' is not allowed in a remote path")
		}
	}
	p = path.Clean(p)
	l.Dir = p
	if !trailing && p != "/" {
		l.Dir, l.Snapshot = path.Dir(p), path.Base(p)
	}
	return l, nil
}
