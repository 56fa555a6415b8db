package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

// scriptRig runs the buttersink script with recording stand-ins for the bs
// commands on PATH: each writes the argv it got to rec/NAME (NUL-separated),
// so a test sees exactly what the script ran, and with which words. bsplan
// prints one send and one delete step so that every stage runs.
type scriptRig struct {
	bin, rec, sentinel, script string
}

const recordingStage = `#!/bin/sh
n=${0##*/}
printf '%s\0' "$@" > "$BS_REC/$n"
case $n in
bsplan) printf '%s\n' '{"op":"send"}' '{"op":"delete"}' ;;
bssend | bss3get) cat > /dev/null; echo stream ;;
bsrecv | bss3put) cat > /dev/null; echo '{"path":"x"}' ;;
bsrm) cat > /dev/null ;;
esac
`

func newScriptRig(t *testing.T) *scriptRig {
	t.Helper()
	dir := t.TempDir()
	r := &scriptRig{bin: filepath.Join(dir, "bin"), rec: filepath.Join(dir, "rec"), sentinel: filepath.Join(dir, "sentinel"),
		script: filepath.Join(harness.Root(), "cmd", "buttersink", "buttersink.sh")}
	for _, d := range []string{r.bin, r.rec, r.sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"bsls", "bsplan", "bssend", "bsrecv", "bss3put", "bss3get", "bsrm"} {
		if err := os.WriteFile(filepath.Join(r.bin, c), []byte(recordingStage), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// run runs the script with args (cwd: the sentinel directory) and returns
// its exit code, stderr and what each stage got.
func (r *scriptRig) run(t *testing.T, args ...string) (int, string, map[string][]string) {
	t.Helper()
	ents, _ := os.ReadDir(r.rec)
	for _, e := range ents {
		os.Remove(filepath.Join(r.rec, e.Name()))
	}
	cmd := exec.Command("sh", append([]string{r.script}, args...)...)
	cmd.Dir = r.sentinel
	cmd.Env = []string{"PATH=" + r.bin + ":/usr/bin:/bin", "BS_REC=" + r.rec, "HOME=" + r.sentinel}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	ran := map[string][]string{}
	ents, _ = os.ReadDir(r.rec)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(r.rec, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		argv := strings.Split(string(b), "\x00")
		ran[e.Name()] = argv[:len(argv)-1]
	}
	return code, stderr.String(), ran
}

func contains(argv []string, word string) bool {
	for _, a := range argv {
		if a == word {
			return true
		}
	}
	return false
}

// TestButtersinkHostileValues: whatever an option's value holds, the
// script never evaluates it: no sentinel file appears, and the value
// reaches the stages it is for as one word, byte for byte, in --name=value
// form (so a leading dash cannot turn it into another flag).
func TestButtersinkHostileValues(t *testing.T) {
	r := newScriptRig(t)
	S := r.sentinel
	values := []string{
		"$(touch " + S + "/dollar)",
		"`touch " + S + "/backquote`",
		"x; touch " + S + "/semicolon",
		"x && touch " + S + "/and",
		"x | touch " + S + "/pipe",
		"x\ntouch " + S + "/newline",
		"x'; touch " + S + "/squote; '",
		`x"; touch ` + S + `/dquote; "`,
		`x\"$(touch ` + S + `/bsdquote)\"`,
		"${X:=$(touch " + S + "/param)}",
		"$HOME",
		"*", S + "/*", "?", "[a-z]",
		"-q", "--log=" + S + "/log", "--", "-",
		"a  b\tc ",
		"x\n",
		"",
	}
	// Each run gives every option that applies to its locations the same
	// value; each option's value must reach the stage it is for, as the
	// word shown (%s: the value).
	type opt struct {
		args  []string // option words; the value follows
		stage string
		word  string
	}
	for _, run := range []struct {
		src, dst string
		opts     []opt
	}{
		{"/s/", "s3://b/p/", []opt{
			{[]string{"-l"}, "bsplan", "--log=%s"},
			{[]string{"--part-size"}, "bss3put", "--part-size=%s"},
			{[]string{"--age-recipient"}, "bss3put", "--age-recipient=%s"},
			{[]string{"--age-recipients-file"}, "bss3put", "--age-recipients-file=%s"},
			{[]string{"--filter"}, "bss3put", "--filter=%s"},
			{[]string{"--schedule"}, "bsplan", "--schedule=%s"},
			{[]string{"--tz"}, "bsplan", "--tz=%s"},
			{[]string{"--max-chain"}, "bsplan", "--max-chain=%s"},
			{[]string{"--profile"}, "bss3put", "--profile=%s"},
			{[]string{"--endpoint-url"}, "bsrm", "--endpoint-url=%s"},
			{[]string{"--region"}, "bsplan", "--region=%s"},
			{[]string{"--storage-class"}, "bss3put", "--storage-class=%s"},
			{[]string{"--sse"}, "bss3put", "--sse=%s"},
			{[]string{"-j"}, "bss3put", "--concurrency=%s"},
			{[]string{"--now"}, "bsplan", "--now=%s"},
			{[]string{"-r"}, "bss3put", "--age-recipient=%s"},
		}},
		{"s3://b/p/", "ssh://h/d/", []opt{
			{[]string{"--logfile"}, "bsrecv", "--log=%s"},
			{[]string{"--age-identity"}, "bss3get", "--age-identity=%s"},
			{[]string{"--unfilter"}, "bss3get", "--filter=%s"},
			{[]string{"--ssh"}, "bsrm", "--ssh=%s"},
			{[]string{"--profile"}, "bss3get", "--profile=%s"},
			{[]string{"--chunk-size"}, "bss3get", "--chunk-size=%s"},
			{[]string{"--concurrency="}, "bss3get", "--concurrency=%s"},
			{[]string{"-i"}, "bss3get", "--age-identity=%s"},
		}},
		{"ssh://h/s/", "file:///st/", []opt{
			{[]string{"--log="}, "bss3put", "--log=%s"},
			{[]string{"--ssh"}, "bssend", "--ssh=%s"},
		}},
	} {
		for _, v := range values {
			var args []string
			for _, o := range run.opts {
				if strings.HasSuffix(o.args[0], "=") {
					args = append(args, o.args[0]+v)
				} else {
					args = append(append(args, o.args...), v)
				}
			}
			args = append(args, run.src, run.dst)
			code, stderr, ran := r.run(t, args...)
			if ents, _ := os.ReadDir(S); len(ents) != 0 {
				t.Fatalf("%q: a value was evaluated: %s exists", args, ents[0].Name())
			}
			if code != 0 {
				t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
				continue
			}
			for _, o := range run.opts {
				want := strings.Replace(o.word, "%s", v, 1)
				if o.word == "--part-size=%s" && v != "" && strings.Trim(v, "0123456789") == "" {
					want += "MiB"
				}
				if !contains(ran[o.stage], want) {
					t.Errorf("%q: %s ran %q, want the word %q", args, o.stage, ran[o.stage], want)
				}
			}
		}
	}
	// Hostile locations reach the stages as the operand after --.
	for _, v := range values[:10] {
		code, stderr, ran := r.run(t, "/s/"+v, "/d/"+v)
		if ents, _ := os.ReadDir(S); len(ents) != 0 {
			t.Fatalf("%q: a location was evaluated: %s exists", v, ents[0].Name())
		}
		plan := ran["bsplan"]
		if code != 0 || len(plan) < 3 || plan[len(plan)-3] != "--" || plan[len(plan)-2] != "/s/"+v || !contains(ran["bsrecv"], "/d/"+v+"/") {
			t.Errorf("locations %q: exit %d, stderr %q, ran %q", v, code, stderr, ran)
		}
	}
}

// TestButtersinkInapplicableOptions: an option that cannot apply to the
// locations given is a usage error (exit 2, one line naming it) and
// nothing runs — never ignored, as --age-recipient with a btrfs
// destination once was (the backup was stored unencrypted).
func TestButtersinkInapplicableOptions(t *testing.T) {
	r := newScriptRig(t)
	for _, tc := range []struct {
		args []string
		opt  string // named in the error; "" = accepted
	}{
		{[]string{"--zstd", "/s/", "/d/"}, "--zstd"},
		{[]string{"--zstd=9", "/s/", "ssh://h/d/"}, "--zstd"},
		{[]string{"--age-recipient", "age1x", "/s/", "/d/"}, "--age-recipient"},
		{[]string{"--age-recipients-file", "f", "s3://b/p/", "/d/"}, "--age-recipients-file"},
		{[]string{"--filter", "gpg -e", "/s/", "/d/"}, "--filter"},
		{[]string{"--part-size", "16", "/s/", "file:///st/"}, "--part-size"},
		{[]string{"--part-size", "16", "/s/", "/d/"}, "--part-size"},
		{[]string{"--max-chain", "4", "/s/", "/d/"}, "--max-chain"},
		{[]string{"--age-identity", "k", "/s/", "s3://b/p/"}, "--age-identity"},
		{[]string{"--unfilter", "gpg -d", "ssh://h/s/", "/d/"}, "--unfilter"},
		{[]string{"-e", "s3://b/p/", "/d/"}, "-e"},
		{[]string{"--estimate", "file:///st/", "s3://b/p/"}, "--estimate"},
		{[]string{"--tz", "UTC", "/s/", "/d/"}, "--tz"},
		{[]string{"--ssh", "ssh -i k", "/s/", "/d/"}, "--ssh"},
		{[]string{"--sudo", "/s/", "s3://b/p/"}, "--sudo"},
		{[]string{"--profile", "p", "/s/", "file:///st/"}, "--profile"},
		{[]string{"--endpoint-url", "http://x", "/s/", "/d/"}, "--endpoint-url"},
		{[]string{"--region", "eu", "file:///st/", "/d/"}, "--region"},
		{[]string{"--path-style", "/s/", "file:///st/"}, "--path-style"},
		{[]string{"--storage-class", "GLACIER", "/s/", "file:///st/"}, "--storage-class"},
		{[]string{"--sse", "AES256", "/s/", "/d/"}, "--sse"},
		{[]string{"-j", "8", "/s/", "ssh://h/d/"}, "-j"},
		{[]string{"-j8", "/s/", "ssh://h/d/"}, "-j"},
		{[]string{"--chunk-size", "8MiB", "/s/", "s3://b/p/"}, "--chunk-size"},
		{[]string{"--now", "2024-01-01T00:00:00Z", "/s/", "/d/"}, "--now"},
		{[]string{"-n", "--metrics-file", "m.prom", "/s/", "/d/"}, "--metrics-file"},
		{[]string{"--summary-json", "/d/"}, "--summary-json"},
		{[]string{"--on-failure", "true", "s3://b/p/"}, "--on-failure"},
		// With only <dst> buttersink lists it: transfer options cannot apply.
		{[]string{"-d", "/d/"}, "-d"},
		{[]string{"-n", "/d/"}, "-n"},
		{[]string{"--zstd", "s3://b/p/"}, "--zstd"},
		{[]string{"--schedule", "1y", "/d/"}, "--schedule"},
		{[]string{"--prune", "/d/"}, "--prune"},
		{[]string{"--age-identity", "k", "file:///st/"}, "--age-identity"},
		// What does apply is accepted.
		{[]string{"--zstd", "--age-recipient", "age1x", "--filter", "gpg -e", "--max-chain", "4", "/s/", "file:///st/"}, ""},
		{[]string{"--part-size", "16", "--profile", "p", "--region", "eu", "--endpoint-url", "http://x", "/s/", "s3://b/p/"}, ""},
		{[]string{"--age-identity", "k", "--unfilter", "gpg -d", "s3://b/p/", "ssh://h/d/"}, ""},
		{[]string{"--age-identity", "k", "--zstd", "file:///a/", "file:///b/"}, ""},
		{[]string{"-e", "--ssh", "ssh -i k", "--sudo", "ssh://h/s/", "/d/"}, ""},
		{[]string{"-d", "--schedule", "1y", "--tz", "UTC", "--prune", "/s/", "/d/"}, ""},
		{[]string{"-q", "-v", "-l", "log", "--ssh", "ssh", "ssh://h/d/"}, ""},
		{[]string{"--profile", "p", "s3://b/p/"}, ""},
		{[]string{"--storage-class", "GLACIER", "--sse=AES256", "-j", "8", "--path-style", "-vv", "/s/", "s3://b/p/"}, ""},
		{[]string{"--chunk-size=8MiB", "--concurrency=2", "-i", "k", "file:///st/", "/d/"}, ""},
		{[]string{"-j8", "file:///st/", "/d/"}, ""},
		{[]string{"--allow-empty-source", "-d", "--schedule", "1y", "--now", "2024-01-01T00:00:00Z", "/s/", "/d/"}, ""},
		{[]string{"--metrics-file", "m.prom", "--summary-json", "--on-success", "true", "--on-failure", "false", "/s/", "/d/"}, ""},
	} {
		code, stderr, ran := r.run(t, tc.args...)
		if tc.opt == "" {
			if code != 0 || len(ran) == 0 {
				t.Errorf("%q: exit %d, stderr %q, ran %q", tc.args, code, stderr, ran)
			}
			continue
		}
		if code != 2 || len(ran) != 0 || strings.Count(stderr, "\n") != 1 ||
			!strings.HasPrefix(stderr, "buttersink: error: "+tc.opt+" ") {
			t.Errorf("%q: exit %d, stderr %q, ran %q; want exit 2, one line naming %s, nothing run", tc.args, code, stderr, ran, tc.opt)
		}
	}
}

// TestFormatsStoreToStorePlans keeps buttersink-formats(5) and bsplan in
// step on plans between two object stores: whatever the manual says
// (refused, or copied object by object), bsplan must do.
func TestFormatsStoreToStorePlans(t *testing.T) {
	page, err := os.ReadFile(filepath.Join(harness.Root(), "man", "buttersink-formats.5"))
	if err != nil {
		t.Fatal(err)
	}
	// The claim: the sentence that starts "Plans between two object stores".
	text := strings.Join(strings.Fields(string(page)), " ")
	i := strings.Index(text, "Plans between two object stores")
	if i < 0 {
		t.Fatal("buttersink-formats(5) no longer says what plans between two object stores do")
	}
	claim := text[i:]
	claim = claim[:strings.Index(claim, ".")+1]
	refused := strings.Contains(claim, "refused")

	src := harness.Btrfs(t, 256)
	snaps := makeSnapshots(t, src, 2)
	a, b := t.TempDir(), t.TempDir()
	harness.MustSh(t, "bsplan "+snaps+"/ file://"+a+"/ | bssend | bss3put file://"+a+"/ >/dev/null")
	r := harness.Sh(t, "bsplan file://"+a+"/ file://"+b+"/")
	switch {
	case refused && r.Code == 0:
		t.Fatalf("the manual says %q, but bsplan planned:\n%s", claim, r.Stdout)
	case !refused && (r.Code != 0 || strings.Count(r.Stdout, `"op":"send"`) != 2 || !strings.Contains(r.Stdout, `"key":`)):
		t.Fatalf("the manual says %q, but bsplan: exit %d\n%s%s", claim, r.Code, r.Stdout, r.Stderr)
	}
	if !refused && !strings.Contains(claim, "copy objects") {
		t.Fatalf("the manual's claim %q says neither refused nor copied", claim)
	}
}
