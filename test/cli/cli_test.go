// Package cli tests the commands' behaviour that needs neither root nor
// btrfs (usage errors, exit codes, --help, --version, saved listings,
// file:// stores) as scripts in testdata/*.txt, run by testscript on the
// built commands.
package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/buttersink/buttersink/test/harness"
)

// streams are real btrfs send streams (lib/sendstream/testdata), put in
// each script's work directory: t1 in full, t2 from t1.
var streams = []string{"full-v1.stream", "incremental-v1.stream"}

func TestCLI(t *testing.T) {
	bin := harness.Bin(t)
	root := harness.Root()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", bin+string(os.PathListSeparator)+e.Getenv("PATH"))
			for _, s := range streams {
				b, err := os.ReadFile(filepath.Join(root, "lib", "sendstream", "testdata", s))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(e.WorkDir, s), b, 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": exits,
		},
	})
}

// exits N PROG ARGS... runs PROG like exec and checks it exits with
// status N.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits STATUS PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: status %q: %v", args[0], err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
