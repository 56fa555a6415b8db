// Package version is buttersink's version: what --version prints and what
// a client passes to the command it runs over ssh, so that two different
// builds never talk to each other.
package version

// Version is set at build time with -ldflags "-X .../lib/version.Version=...".
var Version = "dev"
