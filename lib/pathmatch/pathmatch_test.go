package pathmatch

import (
	"regexp"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pat  string
		yes  []string
		no   []string
		fail bool
	}{
		{pat: "/etc", yes: []string{"etc", "etc/passwd", "etc/a/b"}, no: []string{"etcx", "x/etc", "et"}},
		{pat: "/etc/", yes: []string{"etc", "etc/passwd"}, no: []string{"x/etc"}},
		{pat: "etc", yes: []string{"etc", "x/etc", "x/y/etc/z"}, no: []string{"etcx", "xetc", "x/etc2"}},
		{pat: "*.o", yes: []string{"a.o", "src/a.o", "a.o/b"}, no: []string{"a.oo", "a/o", "a.c"}},
		{pat: "/*.o", yes: []string{"a.o"}, no: []string{"src/a.o"}},
		{pat: "/src/*", yes: []string{"src/a", "src/a/b"}, no: []string{"src", "srcx/a"}},
		{pat: "/a/**/b", yes: []string{"a/b", "a/x/b", "a/x/y/b", "a/b/c"}, no: []string{"a", "ab", "a/xb", "b"}},
		{pat: "/a**b", yes: []string{"ab", "axb", "a/x/b"}, no: []string{"a/x/c"}},
		{pat: "/**", yes: []string{"a", "a/b"}},
		{pat: "/a/**", yes: []string{"a/b", "a/b/c"}, no: []string{"a", "b"}},
		{pat: "**/x", yes: []string{"x", "a/x", "a/b/x"}, no: []string{"ax"}},
		{pat: "/?", yes: []string{"a", "b/c"}, no: []string{"ab", ""}},
		{pat: "/[a-c]x", yes: []string{"ax", "cx"}, no: []string{"dx", "/x"}},
		{pat: "/[!a-c]x", yes: []string{"dx"}, no: []string{"ax"}},
		{pat: "/[^a]x", yes: []string{"bx"}, no: []string{"ax"}},
		{pat: "/[]]", yes: []string{"]"}, no: []string{"a"}},
		{pat: "/[a-]", yes: []string{"a", "-"}, no: []string{"b"}},
		{pat: `/\*`, yes: []string{"*"}, no: []string{"a"}},
		{pat: `/[\]]`, yes: []string{"]"}},
		{pat: "/a b", yes: []string{"a b"}},
		{pat: "/*/*", yes: []string{"a/b", "a/b/c"}, no: []string{"a"}},
		{pat: "", fail: true},
		{pat: "/", fail: true},
		{pat: "/[a", fail: true},
		{pat: "/[z-a]", fail: true},
		{pat: `/a\`, fail: true},
		{pat: "a\x00", fail: true},
		{pat: strings.Repeat("a", MaxPattern+1), fail: true},
	} {
		p, err := Compile(c.pat)
		if c.fail {
			if err == nil {
				t.Errorf("Compile(%q): no error", c.pat)
			}
			continue
		}
		if err != nil {
			t.Errorf("Compile(%q): %v", c.pat, err)
			continue
		}
		for _, s := range c.yes {
			if !p.Match(s) {
				t.Errorf("%q does not match %q", c.pat, s)
			}
		}
		for _, s := range c.no {
			if p.Match(s) {
				t.Errorf("%q matches %q", c.pat, s)
			}
		}
	}
}

func TestFilter(t *testing.T) {
	for _, c := range []struct {
		inc, exc []string
		yes, no  []string
	}{
		{yes: []string{"", "a", "a/b"}},
		{inc: []string{"/home/alice"}, yes: []string{"", "home/alice", "home/alice/x"}, no: []string{"home", "home/bob", "etc"}},
		{exc: []string{".cache"}, yes: []string{"home/a/x"}, no: []string{"home/a/.cache", "home/a/.cache/y", ".cache"}},
		{inc: []string{"/home"}, exc: []string{"*.tmp"}, yes: []string{"home/x"}, no: []string{"home/x.tmp", "etc"}},
		{inc: []string{"/a", "/b"}, yes: []string{"a", "b/c"}, no: []string{"c"}},
	} {
		f, err := New(c.inc, c.exc)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.yes {
			if !f.Match(s) {
				t.Errorf("%v -%v: %q not selected", c.inc, c.exc, s)
			}
		}
		for _, s := range c.no {
			if f.Match(s) {
				t.Errorf("%v -%v: %q selected", c.inc, c.exc, s)
			}
		}
	}
	if _, err := New([]string{"/["}, nil); err == nil {
		t.Error("a bad include compiled")
	}
	if _, err := New(nil, []string{""}); err == nil {
		t.Error("an empty exclude compiled")
	}
}

// oracle is the pattern as a regular expression, built from its tokens:
// it checks the state machine, the table above checks the compiler.
func oracle(p *Pattern) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^(?:")
	for i := 0; i < len(p.toks); i++ {
		t := p.toks[i]
		switch t.kind {
		case lit:
			b.WriteString(regexp.QuoteMeta(string(rune(t.c))))
		case one:
			b.WriteString("[^/]")
		case class:
			// Written out as an alternation of bytes: exact and simple.
			b.WriteString("(?:")
			first := true
			for c := 0; c < 256; c++ {
				if t.inClass(byte(c)) {
					if !first {
						b.WriteByte('|')
					}
					first = false
					b.WriteString(regexp.QuoteMeta(string(rune(c))))
				}
			}
			if first {
				b.WriteString("[^\\x00-\\x{10FFFF}]")
			}
			b.WriteString(")")
		case star:
			b.WriteString("[^/]*")
		case dstar:
			b.WriteString("(?s:.*)")
		case dskip:
			// With the dstar and '/' after it.
			b.WriteString("(?s:(?:.*/)?)")
			i += 2
		}
	}
	b.WriteString(")(?:/(?s:.*))?$")
	return regexp.MustCompile(b.String())
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/etc", "etc/passwd"}, {"*.o", "src/a.o"}, {"/a/**/b", "a/x/b"}, {"**/x", "x"},
		{"/[!a-c]?", "dx"}, {`/\*`, "*"}, {"/a**b", "a/x/b"}, {"a/**", "x/a/b"}, {"/*/*", "a/b/c"},
		{"***/x", "y/x"}, {"/[]-a]", "]"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, path string) {
		if len(pat) > 64 || len(path) > 256 {
			return
		}
		p, err := Compile(pat)
		if err != nil {
			return
		}
		// Paths as Match gets them: relative.
		if strings.HasPrefix(path, "/") {
			return
		}
		want := oracle(p).MatchString(latin1("/" + path))
		if got := p.Match(path); got != want {
			t.Fatalf("Compile(%q).Match(%q) = %v, regexp says %v", pat, path, got, want)
		}
	})
}

// latin1 makes every byte one rune, as the oracle's classes expect.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}
