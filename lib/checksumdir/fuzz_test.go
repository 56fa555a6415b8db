package checksumdir

import (
	"io"
	"testing"
)

func FuzzParseSumLine(f *testing.F) {
	f.Add("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ./a")
	f.Add(`\e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ./a\\b\n`)
	f.Add("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *bin")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParseSumLine(line)
		if err != nil {
			return
		}
		// What parses must print back to a line that parses the same.
		sum := make([]byte, 32)
		for i := range sum {
			sum[i] = unhex(e.Sum[2*i])<<4 | unhex(e.Sum[2*i+1])
		}
		again, err := ParseSumLine(SumLine(sum, e.Name))
		if err != nil || again != e {
			t.Fatalf("round trip of %q: %+v, %v (was %+v)", line, again, err, e)
		}
	})
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func FuzzParseLsLine(f *testing.F) {
	f.Add("-rw-r--r-- 1    0    0 2020-01-01 00:00:00.0000000000 a b")
	f.Add("drwxr-xr-x 2 1000 100 2020-01-01 00:00:00.0000000000  x")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseLsLine(line)
		if err != nil {
			return
		}
		if r.Path == "" || r.Mode == "" {
			t.Fatalf("ParseLsLine(%q) = %+v without error", line, r)
		}
		// The path is what the sort key holds, after its one space.
		if line[KeyStart(line, 7):] != " "+r.Path {
			t.Fatalf("ParseLsLine(%q) path %q is not key 7", line, r.Path)
		}
	})
}

func FuzzParseFullLine(f *testing.F) {
	f.Add(`dir/a\040b type=file size=5 attr=i xattr.user.a\075b=v\0401`)
	f.Add("l type=link target=x")
	f.Fuzz(func(t *testing.T, line string) {
		path, fields, err := ParseFullLine(line)
		if err != nil {
			return
		}
		if path == "" || fields == nil {
			t.Fatalf("ParseFullLine(%q) = %q, %v", line, path, fields)
		}
	})
}

func FuzzEscapeFull(f *testing.F) {
	f.Add("a b=c\\\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapeFull(s)
		back, ok := unescapeFull(e)
		if !ok || back != s {
			t.Fatalf("unescapeFull(EscapeFull(%q)) = %q, %v", s, back, ok)
		}
		for i := 0; i < len(e); i++ {
			if e[i] <= ' ' || e[i] >= 0x7f || e[i] == '=' {
				t.Fatalf("EscapeFull(%q) = %q holds %q", s, e, e[i])
			}
		}
	})
}

// FuzzCompare feeds arbitrary saved sets to Compare: errors are fine,
// panics are not.
func FuzzCompare(f *testing.F) {
	f.Add([]byte("-rw-r--r-- 1    0    0 2020-01-01 00:00:00.0000000000 a\n"),
		[]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ./a\n"),
		[]byte("a type=file size=0\n"))
	cur := &Set{Name: "t",
		Ls:    []byte("-rw-r--r-- 1    0    0 2020-01-01 00:00:00.0000000000 a\n"),
		Files: []byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ./a\n"),
		Full:  []byte("a type=file size=0\n"),
	}
	f.Fuzz(func(t *testing.T, ls, files, full []byte) {
		saved := &Set{Name: "t", Ls: ls, Files: files, Full: full}
		Compare(io.Discard, saved, cur)
		Compare(io.Discard, cur, saved)
	})
}
