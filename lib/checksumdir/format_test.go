package checksumdir

import (
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestModeString(t *testing.T) {
	tests := []struct {
		mode uint32
		want string
	}{
		{unix.S_IFREG | 0o644, "-rw-r--r--"},
		{unix.S_IFDIR | 0o755, "drwxr-xr-x"},
		{unix.S_IFLNK | 0o777, "lrwxrwxrwx"},
		{unix.S_IFCHR | 0o620, "crw--w----"},
		{unix.S_IFBLK | 0o660, "brw-rw----"},
		{unix.S_IFIFO | 0o600, "prw-------"},
		{unix.S_IFSOCK | 0o755, "srwxr-xr-x"},
		{unix.S_IFREG | 0o4755, "-rwsr-xr-x"},
		{unix.S_IFREG | 0o4644, "-rwSr--r--"},
		{unix.S_IFREG | 0o2755, "-rwxr-sr-x"},
		{unix.S_IFREG | 0o2745, "-rwxr-Sr-x"},
		{unix.S_IFDIR | 0o1777, "drwxrwxrwt"},
		{unix.S_IFDIR | 0o1770, "drwxrwx--T"},
		{unix.S_IFREG | 0o7000, "---S--S--T"},
		{unix.S_IFREG | 0o7777, "-rwsrwsrwt"},
		{unix.S_IFREG, "----------"},
		{0o644, "?rw-r--r--"},
	}
	for _, tt := range tests {
		if got := ModeString(tt.mode); got != tt.want {
			t.Errorf("ModeString(%#o) = %q, want %q", tt.mode, got, tt.want)
		}
	}
}

func TestFindTime(t *testing.T) {
	tests := []struct {
		sec, nsec int64
		want      string
	}{
		{0, 0, "1970-01-01 00:00:00.0000000000"},
		{1700000000, 123456789, "2023-11-14 22:13:20.1234567890"},
		{1700000000, 1, "2023-11-14 22:13:20.0000000010"},
		{-1, 500000000, "1969-12-31 23:59:59.5000000000"},
		{253402300799, 999999999, "9999-12-31 23:59:59.9999999990"},
	}
	for _, tt := range tests {
		if got := FindTime(tt.sec, tt.nsec); got != tt.want {
			t.Errorf("FindTime(%d, %d) = %q, want %q", tt.sec, tt.nsec, got, tt.want)
		}
	}
}

func TestLsLine(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{Path: "a b", Mode: unix.S_IFREG | 0o644, Nlink: 1}, "-rw-r--r-- 1    0    0 1970-01-01 00:00:00.0000000000 a b"},
		{Entry{Path: "d/x", Mode: unix.S_IFDIR | 0o755, Nlink: 12, UID: 1000, GID: 100}, "drwxr-xr-x 12 1000  100 1970-01-01 00:00:00.0000000000 d/x"},
		{Entry{Path: " lead", Mode: unix.S_IFLNK | 0o777, Nlink: 1, UID: 100000, GID: 65534}, "lrwxrwxrwx 1 100000 65534 1970-01-01 00:00:00.0000000000  lead"},
	}
	for _, tt := range tests {
		if got := LsLine(&tt.e); got != tt.want {
			t.Errorf("LsLine(%+v) =\n%q, want\n%q", tt.e, got, tt.want)
		}
	}
}

func TestSumLine(t *testing.T) {
	sum := sha256.Sum256(nil)
	h := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct{ name, want string }{
		{"./a", h + "  ./a"},
		{"./sp ace", h + "  ./sp ace"},
		{`./back\slash`, `\` + h + `  ./back\\slash`},
		{"./new\nline", `\` + h + `  ./new\nline`},
		{"./cr\rx", `\` + h + `  ./cr\rx`},
		{"./tab\tx", h + "  ./tab\tx"},
	}
	for _, tt := range tests {
		got := SumLine(sum[:], tt.name)
		if got != tt.want {
			t.Errorf("SumLine(%q) = %q, want %q", tt.name, got, tt.want)
		}
		e, err := ParseSumLine(got)
		if err != nil || e.Name != tt.name || e.Sum != h {
			t.Errorf("ParseSumLine(%q) = %+v, %v", got, e, err)
		}
	}
}

func TestKeyStart(t *testing.T) {
	tests := []struct {
		line  string
		field int
		want  string
	}{
		{"a b c", 1, "a b c"},
		{"a b c", 2, " b c"},
		{"a  b c", 2, "  b c"},
		{"  a b", 1, "  a b"},
		{"  a b", 2, " b"},
		{"a\tb", 2, "\tb"},
		{"a b", 3, ""},
		{"-rw-r--r-- 1    0    0 2020-01-01 00:00:00.0000000000 x y", 7, " x y"},
		{"-rw-r--r-- 1 100000 0 2020-01-01 00:00:00.0000000000  lead", 7, "  lead"},
		{"hash  ./x", 2, "  ./x"},
	}
	for _, tt := range tests {
		if got := tt.line[KeyStart(tt.line, tt.field):]; got != tt.want {
			t.Errorf("key %d of %q = %q, want %q", tt.field, tt.line, got, tt.want)
		}
	}
}

func TestSortLines(t *testing.T) {
	tests := []struct {
		name  string
		field int
		in    []string
		want  []string
	}{
		{"path bytes, '-' before '/'", 7, []string{
			"d 1 0 0 2020-01-01 00:00:00.0 a/b",
			"- 1 0 0 2020-01-01 00:00:00.0 a-c",
			"d 1 0 0 2020-01-01 00:00:00.0 a",
		}, []string{
			"d 1 0 0 2020-01-01 00:00:00.0 a",
			"- 1 0 0 2020-01-01 00:00:00.0 a-c",
			"d 1 0 0 2020-01-01 00:00:00.0 a/b",
		}},
		{"leading blanks are part of the key", 2, []string{"x b", "y  c", "z\ta"}, []string{"z\ta", "y  c", "x b"}},
		{"equal keys: whole line decides", 2, []string{"b k", "a k", "c k"}, []string{"a k", "b k", "c k"}},
		{"bytes, not letters", 2, []string{"1 a", "2 B", "3 \xc3\xbc", "4 _"}, []string{"2 B", "4 _", "1 a", "3 \xc3\xbc"}},
		{"shorter key first", 2, []string{"1 ab", "2 a"}, []string{"2 a", "1 ab"}},
		{"missing field sorts first", 7, []string{"a b c", "x 1 2 3 4 5 6"}, []string{"a b c", "x 1 2 3 4 5 6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Clone(tt.in)
			SortLines(got, tt.field)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLsLine(t *testing.T) {
	tests := []struct {
		line    string
		want    LsRecord
		wantErr bool
	}{
		{"-rw-r--r-- 1    0    0 2020-01-01 00:00:00.0000000000 a b",
			LsRecord{"-rw-r--r--", "1", "0", "0", "2020-01-01 00:00:00.0000000000", "a b"}, false},
		{"lrwxrwxrwx 1 100000 65534 2020-01-01 00:00:00.0000000000  lead",
			LsRecord{"lrwxrwxrwx", "1", "100000", "65534", "2020-01-01 00:00:00.0000000000", " lead"}, false},
		{"-rw-r--r-- 1 0 0 2020-01-01 00:00:00.0", LsRecord{}, true},
		{"-rw-r--r-- 1 0 0 2020-01-01 00:00:00.0 ", LsRecord{}, true},
		{"", LsRecord{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLsLine(tt.line)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLsLine(%q) = %+v, %v", tt.line, got, err)
		}
	}
}

func TestEscapeFull(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain/path", "plain/path"},
		{"sp ace", `sp\040ace`},
		{"a=b", `a\075b`},
		{`back\`, `back\134`},
		{"ü", `\303\274`},
		{"nl\n", `nl\012`},
		{"", ""},
	}
	for _, tt := range tests {
		got := EscapeFull(tt.in)
		if got != tt.want {
			t.Errorf("EscapeFull(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back, ok := unescapeFull(got); !ok || back != tt.in {
			t.Errorf("unescapeFull(%q) = %q, %v", got, back, ok)
		}
	}
	for _, bad := range []string{`\`, `\12`, `\128`, `\777`, `x\0`} {
		if _, ok := unescapeFull(bad); ok {
			t.Errorf("unescapeFull(%q) accepted", bad)
		}
	}
}

func TestFullLine(t *testing.T) {
	e := &Entry{Path: "dir/a b", Mode: unix.S_IFREG | 0o644, Size: 5, sum: &fileSum{attr: 0x10 | 0x80000, hasAttr: true},
		Xattrs: []Xattr{{"user.a=b", "v 1"}, {"user.z", "\x00\xff"}}}
	want := `dir/a\040b type=file size=5 attr=i xattr.user.a\075b=v\0401 xattr.user.z=\000\377`
	got := FullLine(e)
	if got != want {
		t.Fatalf("FullLine = %q, want %q", got, want)
	}
	path, fields, err := ParseFullLine(got)
	if err != nil || path != "dir/a b" || fields["xattr.user.a=b"] != "v 1" || fields["xattr.user.z"] != "\x00\xff" || fields["attr"] != "i" {
		t.Fatalf("ParseFullLine = %q, %q, %v", path, fields, err)
	}
	dev := &Entry{Path: "null", Mode: unix.S_IFCHR | 0o666, Rdev: unix.Mkdev(1, 3)}
	if got := FullLine(dev); got != "null type=char rdev=1,3" {
		t.Errorf("FullLine(dev) = %q", got)
	}
	link := &Entry{Path: "l", Mode: unix.S_IFLNK | 0o777, Target: "../x y"}
	if got := FullLine(link); got != `l type=link target=../x\040y` {
		t.Errorf("FullLine(link) = %q", got)
	}
}

func TestCompare(t *testing.T) {
	ls := func(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }
	const (
		h1 = "1111111111111111111111111111111111111111111111111111111111111111"
		h2 = "2222222222222222222222222222222222222222222222222222222222222222"
		tm = " 2020-01-01 00:00:00.0000000000 "
	)
	saved := &Set{Name: "t",
		Ls: ls("-rw-r--r-- 1    0    0"+tm+"data", "-rw-r--r-- 1    0    0"+tm+"gone",
			"-rw-r--r-- 1    0    0"+tm+"meta", "-rw-r--r-- 1    0    0"+tm+"same"),
		Files: ls(h1+"  ./data", h1+"  ./gone", h1+"  ./meta", h1+"  ./same"),
	}
	cur := &Set{Name: "t",
		Ls: ls("-rw-r--r-- 1    0    0"+tm+"data", "-rw-r--r-- 1    0    0"+tm+"new",
			"-rwxr-xr-x 2 1000    0"+tm+"meta", "-rw-r--r-- 1    0    0"+tm+"same"),
		Files: ls(h2+"  ./data", h1+"  ./meta", h1+"  ./new", h1+"  ./same"),
	}
	var out strings.Builder
	d, err := Compare(&out, saved, cur)
	if err != nil {
		t.Fatal(err)
	}
	want := "! data: data changed\n- gone\n~ meta: mode -rw-r--r-- -> -rwxr-xr-x, links 1 -> 2, uid 0 -> 1000\n+ new\n"
	if out.String() != want {
		t.Errorf("Compare wrote\n%s\nwant\n%s", out.String(), want)
	}
	if d != (Diff{Added: 1, Missing: 1, DataChanged: 1, MetaChanged: 1}) {
		t.Errorf("Diff = %+v", d)
	}
	out.Reset()
	if d, err := Compare(&out, saved, saved); err != nil || d.Total() != 0 || out.Len() != 0 {
		t.Errorf("Compare(saved, saved) = %+v, %v, %q", d, err, out.String())
	}
	bad := &Set{Name: "t", Ls: []byte("garbage\n"), Files: nil}
	if _, err := Compare(&out, bad, saved); err == nil || !strings.Contains(err.Error(), "t.ls line 1") {
		t.Errorf("Compare(bad) error = %v", err)
	}
}
