// Package version is buttersink's version: what --version prints and what
// a client passes to the command it runs over ssh, so that two different
// builds never talk to each other.
package version

import "runtime/debug"

// Release is the version of this tree, kept here rather than only in a
// git tag so that every clone, tarball and `go install` knows it. Raise it
// with each release (semantic versioning).
const Release = "v0.2.0"

// License is the licence note --version prints.
const License = "License GPL-3.0-or-later <https://www.gnu.org/licenses/gpl-3.0.html>: free software, no warranty."

// Build is build detail set with
// -ldflags "-X github.com/buttersink/buttersink/lib/version.Build=..." by
// make build (the commit, as the go command would stamp it: GOFLAGS may
// say -buildvcs=false) or a packager; when empty, the commit the go
// command stamped into the binary is used.
var Build string

// Version is Release with the build detail as semver build metadata:
// "v0.2.0+g0123456789ab" (".dirty" when the tree had uncommitted changes),
// "v0.2.0" for a build from outside a git checkout (a module download).
// Two builds of the same tree agree on it whether made by make or go.
var Version = func() string {
	revision, modified := stamp()
	return full(Release, Build, revision, modified)
}()

// stamp is the commit and modification flag the go command records when
// it builds inside a git checkout.
func stamp() (revision string, modified bool) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return revision, modified
}

func full(release, build, revision string, modified bool) string {
	switch {
	case build != "":
		return release + "+" + build
	case revision == "":
		return release
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	v := release + "+g" + revision
	if modified {
		v += ".dirty"
	}
	return v
}
