// Package names is the one set of rules for the names and relative paths
// that arrive from outside: snapshot names and paths (records, plan steps,
// the command line), paths inside send streams, and object keys. Each of
// them is later joined to a directory the user named, so each must stay
// below it: no NUL, no absolute path, no empty, "." or ".." component,
// and within the kernel's (or the store's) length limits.
//
// These are string checks. Code that opens paths taken from a stream also
// lets the kernel confine it (openat2 RESOLVE_BENEATH); the checks here
// make a hostile name fail early, with a message that names it.
package names

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits, in bytes.
const (
	// ComponentMax is the longest file or subvolume name (NAME_MAX,
	// BTRFS_VOL_NAME_MAX).
	ComponentMax = 255
	// PathMax is the longest path (PATH_MAX less its NUL).
	PathMax = 4095
	// KeyMax is the longest object key S3 stores (1024 bytes of UTF-8),
	// prefix included.
	KeyMax = 1024
)

// Kind says what a checked string is, for the message.
type Kind string

// The kinds of names.
const (
	KindSnapshot   Kind = "snapshot name"
	KindStreamPath Kind = "stream path"
	KindKey        Kind = "object key"
	KindComponent  Kind = "name"
)

// Error is a name refused by a check.
type Error struct {
	Kind   Kind
	Name   string
	Reason string
}

func (e *Error) Error() string {
	n := e.Name
	if len(n) > 80 {
		n = n[:80] + "…"
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Kind, n, e.Reason)
}

// Component checks one path component: a subvolume or file name.
func Component(s string) error {
	if r := component(s); r != "" {
		return &Error{KindComponent, s, r}
	}
	return nil
}

func component(c string) string {
	switch {
	case c == "":
		return "empty component"
	case c == "." || c == "..":
		return "'" + c + "' component"
	case strings.IndexByte(c, 0) >= 0:
		return "contains NUL"
	case strings.IndexByte(c, '/') >= 0:
		return "contains '/'"
	case len(c) > ComponentMax:
		return fmt.Sprintf("a component is longer than %d bytes", ComponentMax)
	}
	return ""
}

// relPath returns why p is not a clean relative path of components, or "".
func relPath(p string, max int) string {
	switch {
	case p == "":
		return "empty"
	case p[0] == '/':
		return "absolute path"
	case len(p) > max:
		return fmt.Sprintf("longer than %d bytes", max)
	}
	for rest := p; ; {
		c := rest
		i := strings.IndexByte(rest, '/')
		if i >= 0 {
			c = rest[:i]
		}
		if r := component(c); r != "" {
			return r
		}
		if i < 0 {
			return ""
		}
		rest = rest[i+1:]
	}
}

// Snapshot checks a snapshot's path relative to its location's directory
// ("home.2024-01-01" or "host1/home.1"). Any bytes but NUL and '/' are
// allowed in its components, also bytes that are not UTF-8, as in Linux
// file names.
func Snapshot(p string) error {
	if r := relPath(p, PathMax); r != "" {
		return &Error{KindSnapshot, p, r}
	}
	return nil
}

// StreamPath checks a path inside a send stream, relative to the
// subvolume being received. The empty path is the subvolume's root
// directory, which streams name in commands on it (chown, utimes).
func StreamPath(p string) error {
	if p == "" {
		return nil
	}
	if r := relPath(p, PathMax); r != "" {
		return &Error{KindStreamPath, p, r}
	}
	return nil
}

// Key checks an object key relative to a store's prefix (its "directory").
// Keys are UTF-8 without control characters, as S3 recommends and a file
// store needs for names it can show; prefixLen is the length of the
// prefix they will be stored under.
func Key(k string, prefixLen int) error {
	r := relPath(k, KeyMax-prefixLen)
	switch {
	case r != "":
	case !utf8.ValidString(k):
		r = "not UTF-8"
	case strings.ContainsFunc(k, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		r = "control character"
	}
	if r != "" {
		return &Error{KindKey, k, r}
	}
	return nil
}
