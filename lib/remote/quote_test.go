package remote

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		sudo bool
		name string
		args []string
		want string
	}{
		{false, "bsls", nil, "bsls"},
		{false, "bsls", []string{"--json", "/srv/b/"}, "bsls '--json' '/srv/b/'"},
		{true, "bsrecv", []string{"/srv/b/"}, "sudo -n bsrecv '/srv/b/'"},
		{false, "bsls", []string{"/a b/it's"}, `bsls '/a b/it'\''s'`},
		{false, "bsls", []string{""}, "bsls ''"},
		{false, "bsls", []string{"$(x);`y`|&><\n"}, "bsls '$(x);`y`|&><\n'"},
	} {
		if got := CommandLine(tc.sudo, tc.name, tc.args); got != tc.want {
			t.Errorf("CommandLine(%v, %q, %q) = %q, want %q", tc.sudo, tc.name, tc.args, got, tc.want)
		}
	}
}

// shWords is what a POSIX shell makes of the quoted words: the ground
// truth for Quote, since the remote user's shell splits the line again.
func shWords(t testing.TB, words []string) []string {
	var q []string
	for _, w := range words {
		q = append(q, Quote(w))
	}
	script := "set -- " + strings.Join(q, " ") + `; for a in "$@"; do printf '%s\0' "$a"; done`
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	return got[:len(got)-1]
}

func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"plain", "/with space/", "it's", "''", `\`, "$HOME", "`id`", "a;b|c&d", "<>", "*?[x]", "~", "#c", "new\nline", "tab\tx", "ünï"}
	if got := shWords(t, words); !reflect.DeepEqual(got, words) {
		t.Fatalf("shell read %q, want %q", got, words)
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a", "'", `'\''`, "$(id)", "x y", "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			t.Skip("a NUL cannot be an argument")
		}
		if got := shWords(t, []string{s}); len(got) != 1 || got[0] != s {
			t.Fatalf("shell read %q, want %q", got, s)
		}
	})
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"ssh", []string{"ssh"}, false},
		{"  ssh   -i  key ", []string{"ssh", "-i", "key"}, false},
		{`ssh -i "/my keys/id" -o 'ProxyJump=a b'`, []string{"ssh", "-i", "/my keys/id", "-o", "ProxyJump=a b"}, false},
		{`ssh -o ""`, []string{"ssh", "-o", ""}, false},
		{"", nil, true},
		{"   ", nil, true},
		{`ssh "open`, nil, true},
	} {
		got, err := SplitCommand(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
