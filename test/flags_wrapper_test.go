package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/test/harness"
)

// notForWrapper lists the stage flags buttersink does not take, and why.
// Any other flag a stage documents must be accepted by the script and
// listed in its usage, so that the two cannot drift apart again.
var notForWrapper = map[string]string{
	// bsplan: buttersink lists both locations itself.
	"src-list": "bsplan", "dst-list": "bsplan",
	// bssend: settings of single sends; in a plan the steps choose
	// parents, clone sources and resume points.
	"parent": "bssend", "clone": "bssend", "proto": "bssend", "compressed-data": "bssend",
	"no-data": "bssend", "resume": "bssend",
	// bssend: its read-ahead is always on in a sync; turning it off is
	// for measuring a send alone.
	"no-prefetch": "bssend",
	// bsrecv: restoring one snapshot into a plain directory or an
	// archive, not synchronising sets of snapshots.
	"in-place": "bsrecv", "tar": "bsrecv", "tmpdir": "bsrecv", "include": "bsrecv", "exclude": "bsrecv",
	// bsrm: aborting unfinished uploads is a clean-up of its own.
	"incomplete": "bsrm",
}

var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-([a-zA-Z]), )?--([a-z0-9-]+)`)

// helpFlags are the long flags of a --help text, with their short forms.
func helpFlags(text string) map[string]string {
	f := map[string]string{}
	for _, m := range helpFlag.FindAllStringSubmatch(text, -1) {
		f[m[2]] = m[1]
	}
	return f
}

// TestFlagsWrapperCoversStages: every flag of the stages buttersink
// composes is accepted by it (not "unknown option") and in its usage,
// short form included, unless notForWrapper says why not.
func TestFlagsWrapperCoversStages(t *testing.T) {
	bin := filepath.Join(harness.Root(), "bin")
	usage, err := exec.Command("sh", filepath.Join(harness.Root(), "cmd", "buttersink", "buttersink.sh"), "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := helpFlags(string(usage))
	r := newScriptRig(t)
	seen := map[string]bool{}
	for _, stage := range []string{"bsplan", "bssend", "bss3get", "bss3put", "bsrecv", "bsrm"} {
		out, err := exec.Command(filepath.Join(bin, stage), "--help").Output()
		if err != nil {
			t.Fatalf("%s --help: %v (make build first)", stage, err)
		}
		for long, short := range helpFlags(string(out)) {
			if notForWrapper[long] == stage || seen[long] {
				continue
			}
			seen[long] = true
			ws, ok := wrapper[long]
			if !ok {
				t.Errorf("%s --%s: not in buttersink --help", stage, long)
			}
			if short != "" && ws != short {
				t.Errorf("%s -%s (--%s): buttersink --help gives -%s", stage, short, long, ws)
			}
			forms := []string{"--" + long}
			if short != "" {
				forms = append(forms, "-"+short)
			}
			for _, f := range forms {
				_, stderr, _ := r.run(t, f, "1", "/s/", "/d/")
				if strings.Contains(stderr, "unknown option") {
					t.Errorf("%s %s: buttersink refuses it: %s", stage, f, stderr)
				}
			}
		}
	}
	for long, stage := range notForWrapper {
		if _, ok := wrapper[long]; ok {
			t.Errorf("--%s is both excluded (%s) and in buttersink --help", long, stage)
		}
	}
}

// TestManExitStatus: every command's manual page has an EXIT STATUS
// section naming each code lib/cli defines.
func TestManExitStatus(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(harness.Root(), "man", "*.1"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages: %v", err)
	}
	codes := []int{cli.ExitOK, cli.ExitFailure, cli.ExitUsage, cli.ExitLocked, cli.ExitInterrupted}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		_, sec, ok := strings.Cut(string(b), "\n.Sh EXIT STATUS\n")
		if !ok {
			t.Errorf("%s: no EXIT STATUS section", filepath.Base(p))
			continue
		}
		if i := strings.Index(sec, "\n.Sh "); i >= 0 {
			sec = sec[:i]
		}
		words := map[string]bool{}
		for _, w := range strings.FieldsFunc(sec, func(r rune) bool { return r < '0' || r > '9' }) {
			words[w] = true
		}
		for _, c := range codes {
			if !words[strconv.Itoa(c)] {
				t.Errorf("%s: EXIT STATUS does not name %d", filepath.Base(p), c)
			}
		}
	}
}
