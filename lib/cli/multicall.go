package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/version"
)

// Program is a multi-call binary: it runs the command whose name it was
// called by (a link named for the command, argv[0]), or, called by its
// own name, the command named by its first argument. The commands share
// one binary so that their common code (the AWS SDK above all) is
// installed once, not once per command.
type Program struct {
	// Name is the binary's own name.
	Name string
	// Commands are the commands in this binary, by name.
	Commands map[string]func(args []string) int
	// Beside are the commands of other binaries that --install-links
	// links too: command name → the binary's name in this binary's
	// directory.
	Beside map[string]string
	// Scripts are files --install-links writes (name → content).
	Scripts map[string][]byte
}

// Run runs the command argv names and returns its exit status.
func (p Program) Run(argv []string) int {
	if len(argv) > 0 {
		if run, ok := p.Commands[filepath.Base(argv[0])]; ok {
			return run(argv[1:])
		}
	}
	args := argv[min(1, len(argv)):]
	if len(args) == 0 {
		p.usage(os.Stderr)
		return ExitUsage
	}
	if run, ok := p.Commands[args[0]]; ok {
		return run(args[1:])
	}
	switch args[0] {
	case "-h", "--help":
		p.usage(os.Stdout)
		return ExitOK
	case "-V", "--version":
		fmt.Fprintf(os.Stdout, "%s (buttersink) %s\n%s\n", p.Name, version.Version, version.License)
		return ExitOK
	case "--install-links":
		if len(args) != 2 {
			return Report(p.Name, UsageError("--install-links takes one directory"), false, nil)
		}
		return Report(p.Name, p.installLinks(args[1]), false, nil)
	}
	return Report(p.Name, &ExitError{Code: ExitUsage, Err: hint.Wrap(fmt.Errorf("unknown command %q", args[0]), "see "+p.Name+" --help")}, false, nil)
}

func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, `usage: %[1]s COMMAND [ARG...]   (or through a link named COMMAND)
       %[1]s --install-links DIR
       %[1]s --version

Commands: %[2]s.
--install-links DIR makes DIR/COMMAND a symbolic link to the binary of
COMMAND, for every command %[1]s knows`, p.Name, strings.Join(slices.Sorted(maps.Keys(p.Commands)), ", "))
	if len(p.Scripts) > 0 {
		fmt.Fprintf(w, ", and writes %s there", strings.Join(slices.Sorted(maps.Keys(p.Scripts)), ", "))
	}
	io.WriteString(w, ".\n")
}

// installLinks makes dir/NAME a symbolic link to the binary that runs
// NAME, for every command, and writes the scripts: what `go install`
// cannot do. Links, not copies, so that the next `go install` upgrades
// every command at once; relative when dir is the binary's directory.
func (p Program) installLinks(dir string) error {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return fmt.Errorf("cannot find this binary: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return fmt.Errorf("--install-links %s: not a directory", dir)
	}
	targets := map[string]string{}
	for n := range p.Commands {
		targets[n] = self
	}
	for n, bin := range p.Beside {
		t := filepath.Join(filepath.Dir(self), bin)
		if _, err := os.Stat(t); err != nil {
			return hint.Wrap(fmt.Errorf("%s not found beside %s", bin, self),
				"install both: go install github.com/buttersink/buttersink/cmd/...")
		}
		targets[n] = t
	}
	same := sameDir(abs, filepath.Dir(self))
	for n, t := range targets {
		if same {
			t = filepath.Base(t)
		}
		if err := replace(filepath.Join(abs, n), func(tmp string) error { return os.Symlink(t, tmp) }); err != nil {
			return err
		}
	}
	for n, content := range p.Scripts {
		if err := replace(filepath.Join(abs, n), func(tmp string) error { return os.WriteFile(tmp, content, 0o755) }); err != nil {
			return err
		}
	}
	return nil
}

func sameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// replace makes path anew with make (given a temporary name beside it)
// and renames it into place, so that a command being replaced is never
// missing, nor half written.
func replace(path string, make func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".bs-tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := make(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
