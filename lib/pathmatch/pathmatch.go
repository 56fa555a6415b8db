// Package pathmatch selects paths of a snapshot by glob patterns, for
// restores of part of it (bsrecv --include and --exclude).
//
// A pattern is matched against a path relative to the snapshot's root
// ("etc/passwd", no leading slash):
//
//   - any run of characters but '/'
//     ?       one character but '/'
//     [a-z]   one character of a class ([!...] or [^...] negates), never '/'
//     **      any run of characters, '/' included; "**/" also matches
//     nothing, so "a/**/b" matches "a/b"
//     \c      the character c itself
//
// A pattern starting with '/' is anchored at the snapshot's root; any
// other one matches at any depth, as if it started with "**/" (as rsync
// does: "*.o" matches "src/x.o"). A trailing '/' is ignored. A pattern
// that matches a directory matches everything below it.
//
// A Filter holds includes and excludes: a path is selected when no
// include is given or one matches it, and no exclude matches it. The
// order of the patterns does not matter.
package pathmatch

import (
	"errors"
	"fmt"
	"strings"
)

// MaxPattern bounds a pattern's length: matching costs its length times
// the path's.
const MaxPattern = 4096

type kind uint8

const (
	lit   kind = iota // the byte c
	one               // ?
	class             // [...]
	star              // *
	dstar             // **
	// dskip starts "**/", always compiled as dskip, dstar, '/': it
	// consumes nothing and lets the three match nothing at all.
	dskip
)

type token struct {
	kind   kind
	c      byte
	negate bool
	// ranges holds pairs of bytes lo, hi of a class.
	ranges []byte
}

// Pattern is one compiled glob.
type Pattern struct {
	src  string
	toks []token
}

func (p *Pattern) String() string { return p.src }

// Compile compiles a glob.
func Compile(src string) (*Pattern, error) {
	if src == "" {
		return nil, errors.New("empty pattern")
	}
	if len(src) > MaxPattern {
		return nil, fmt.Errorf("pattern longer than %d bytes", MaxPattern)
	}
	if strings.IndexByte(src, 0) >= 0 {
		return nil, fmt.Errorf("pattern %q holds a NUL byte", src)
	}
	s := strings.TrimRight(src, "/")
	anchored := strings.HasPrefix(s, "/")
	s = strings.TrimLeft(s, "/")
	if s == "" {
		return nil, fmt.Errorf("pattern %q names the root: it selects everything", src)
	}
	p := &Pattern{src: src}
	// Match runs over "/"+path: the leading '/' stands for the root.
	if !anchored {
		p.toks = append(p.toks, token{kind: dskip}, token{kind: dstar})
	}
	p.toks = append(p.toks, token{kind: lit, c: '/'})
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("pattern %q ends in a lone backslash", src)
			}
			i++
			p.toks = append(p.toks, token{kind: lit, c: s[i]})
		case '?':
			p.toks = append(p.toks, token{kind: one})
		case '*':
			if i+1 < len(s) && s[i+1] == '*' {
				start := i
				for i+1 < len(s) && s[i+1] == '*' {
					i++
				}
				// "**/" at a component's start may match no component.
				if (start == 0 || s[start-1] == '/') && i+1 < len(s) && s[i+1] == '/' {
					p.toks = append(p.toks, token{kind: dskip}, token{kind: dstar})
				} else {
					p.toks = append(p.toks, token{kind: dstar})
				}
			} else {
				p.toks = append(p.toks, token{kind: star})
			}
		case '[':
			t, n, err := parseClass(s[i:])
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", src, err)
			}
			p.toks = append(p.toks, t)
			i += n - 1
		default:
			p.toks = append(p.toks, token{kind: lit, c: c})
		}
	}
	return p, nil
}

// parseClass parses the class at the start of s and returns its length.
func parseClass(s string) (token, int, error) {
	t := token{kind: class}
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		t.negate = true
		i++
	}
	first := true
	for {
		if i >= len(s) {
			return t, 0, errors.New("unterminated [ class")
		}
		c := s[i]
		if c == ']' && !first {
			return t, i + 1, nil
		}
		first = false
		if c == '\\' {
			if i+1 >= len(s) {
				return t, 0, errors.New("unterminated [ class")
			}
			i++
			c = s[i]
		}
		lo, hi := c, c
		if i+2 < len(s) && s[i+1] == '-' && s[i+2] != ']' {
			hi = s[i+2]
			if hi == '\\' {
				if i+3 >= len(s) {
					return t, 0, errors.New("unterminated [ class")
				}
				hi = s[i+3]
				i++
			}
			if hi < lo {
				return t, 0, fmt.Errorf("class range %c-%c is empty", lo, hi)
			}
			i += 2
		}
		t.ranges = append(t.ranges, lo, hi)
		i++
	}
}

func (t *token) inClass(c byte) bool {
	if c == '/' {
		return false
	}
	in := false
	for j := 0; j < len(t.ranges); j += 2 {
		if t.ranges[j] <= c && c <= t.ranges[j+1] {
			in = true
			break
		}
	}
	return in != t.negate
}

// Match reports whether the pattern matches path or a directory above
// it. path is relative to the snapshot's root, without a leading '/'.
//
// The pattern runs as a set of states over path's bytes (no
// backtracking): time is bounded by len(pattern) * len(path).
func (p *Pattern) Match(path string) bool {
	n := len(p.toks)
	cur := make([]bool, n+1)
	next := make([]bool, n+1)
	// A leading "/" stands for the root, so that unanchored patterns
	// ("**/" then '/') match at depth 0 too, and anchored ones there only.
	p.closure(cur, 0)
	if !p.step(cur, next, '/') {
		return false
	}
	cur, next = next, cur
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '/' && cur[n] {
			// The directory path[:i] matches: so does all below it.
			return true
		}
		if !p.step(cur, next, c) {
			return false
		}
		cur, next = next, cur
	}
	return cur[n]
}

// closure adds state i and every state reachable from it without
// consuming a byte.
func (p *Pattern) closure(set []bool, i int) {
	for i <= len(p.toks) && !set[i] {
		set[i] = true
		if i == len(p.toks) {
			return
		}
		switch p.toks[i].kind {
		case star, dstar:
			i++
		case dskip:
			p.closure(set, i+1)
			i += 3
		default:
			return
		}
	}
}

// step moves every state of cur over c into next and reports whether
// any state is left.
func (p *Pattern) step(cur, next []bool, c byte) bool {
	clear(next)
	any := false
	for i, on := range cur[:len(p.toks)] {
		if !on {
			continue
		}
		t := &p.toks[i]
		var to int
		switch t.kind {
		case lit:
			if t.c != c {
				continue
			}
			to = i + 1
		case one:
			if c == '/' {
				continue
			}
			to = i + 1
		case class:
			if !t.inClass(c) {
				continue
			}
			to = i + 1
		case star:
			if c == '/' {
				continue
			}
			to = i
		case dstar:
			to = i
		case dskip:
			continue
		}
		p.closure(next, to)
		any = true
	}
	return any
}

// Filter selects paths by includes and excludes; the nil Filter selects
// every path.
type Filter struct {
	include, exclude []*Pattern
}

// New compiles the patterns; with none at all it returns nil.
func New(include, exclude []string) (*Filter, error) {
	if len(include) == 0 && len(exclude) == 0 {
		return nil, nil
	}
	f := &Filter{}
	for _, s := range include {
		p, err := Compile(s)
		if err != nil {
			return nil, fmt.Errorf("include: %w", err)
		}
		f.include = append(f.include, p)
	}
	for _, s := range exclude {
		p, err := Compile(s)
		if err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
		}
		f.exclude = append(f.exclude, p)
	}
	return f, nil
}

// Match reports whether path (relative to the snapshot's root) is
// selected. The root itself ("") always is: it holds what is.
func (f *Filter) Match(path string) bool {
	if f == nil || path == "" {
		return true
	}
	for _, p := range f.exclude {
		if p.Match(path) {
			return false
		}
	}
	if len(f.include) == 0 {
		return true
	}
	for _, p := range f.include {
		if p.Match(path) {
			return true
		}
	}
	return false
}

// Excluded reports whether an exclude matches path, and so everything
// below it: a walk need not go there.
func (f *Filter) Excluded(path string) bool {
	if f == nil || path == "" {
		return false
	}
	for _, p := range f.exclude {
		if p.Match(path) {
			return true
		}
	}
	return false
}
