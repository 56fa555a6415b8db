// Package objopts is how a command reaches an object store: the S3 flags
// every command taking s3:// locations shares, and the options they turn
// into. It depends on nothing, so that a command which passes the flags on
// to bss3ls (bsls) or never reaches a store itself takes them without the
// stores' dependencies (the key grammar and its encoding stages; the AWS
// SDK, whose package initialisation alone costs more CPU than bsls
// listing 2,000 btrfs snapshots, is only in lib/objstore/s3store);
// lib/objstore names the same types (objstore.Options, objstore.Flags).
package objopts

import (
	"fmt"
	"strconv"
	"strings"
)

// Options configure access to an S3 store; file stores ignore them.
// Credentials come from the AWS SDK's default chain only (environment,
// ~/.aws/credentials and config, AWS_PROFILE, SSO, instance roles) and are
// never logged.
type Options struct {
	// Profile is the shared-config profile (else AWS_PROFILE, else default).
	Profile string
	// EndpointURL is an S3-compatible server (else AWS_ENDPOINT_URL).
	EndpointURL string
	// Region (else AWS_REGION or the profile's; us-east-1 when none).
	Region string
	// PathStyle addresses buckets as https://host/bucket/. It is implied by
	// an endpoint URL.
	PathStyle bool
	// StorageClass and SSE apply to objects written (e.g. DEEP_ARCHIVE;
	// AES256 or aws:kms).
	StorageClass string
	SSE          string
	// Lock, when its Mode is set, is the S3 Object Lock retention of
	// objects written (bss3put --object-lock).
	Lock Retention
}

// Retention is an S3 Object Lock retention: Mode GOVERNANCE or
// COMPLIANCE, for Days days from when an object is completed.
type Retention struct {
	Mode string
	Days int
}

// maxRetentionDays bounds a retention at 100 years: S3 takes longer
// ones, but a typo (36500y) would lock a COMPLIANCE object for good.
const maxRetentionDays = 100 * 365

// ParseRetention reads MODE:DURATION, e.g. GOVERNANCE:30d or
// COMPLIANCE:1y: MODE is GOVERNANCE or COMPLIANCE (any case), DURATION a
// whole number of days (d), weeks (w) or years (y, of 365 days).
func ParseRetention(s string) (Retention, error) {
	mode, dur, ok := strings.Cut(s, ":")
	if !ok {
		return Retention{}, fmt.Errorf("%q: want MODE:DURATION, e.g. GOVERNANCE:30d", s)
	}
	r := Retention{Mode: strings.ToUpper(mode)}
	if r.Mode != "GOVERNANCE" && r.Mode != "COMPLIANCE" {
		return Retention{}, fmt.Errorf("%q: mode %q: want GOVERNANCE or COMPLIANCE", s, mode)
	}
	if len(dur) < 2 {
		return Retention{}, fmt.Errorf("%q: duration %q: want a number of days, weeks or years, e.g. 30d, 8w, 1y", s, dur)
	}
	per := map[byte]int{'d': 1, 'w': 7, 'y': 365}[dur[len(dur)-1]]
	n, err := strconv.Atoi(dur[:len(dur)-1])
	if per == 0 || err != nil || n < 1 || dur[0] == '+' || n > maxRetentionDays/per {
		return Retention{}, fmt.Errorf("%q: duration %q: want 1d to 100y, in days (d), weeks (w) or years (y)", s, dur)
	}
	r.Days = n * per
	return r, nil
}

// String is r as ParseRetention reads it.
func (r Retention) String() string { return fmt.Sprintf("%s:%dd", r.Mode, r.Days) }

// Flags are the command-line flags for reaching S3, shared by every command
// that takes s3:// locations: embed it in the command's flag struct and
// pass Flags.Options() on.
type Flags struct {
	Profile     string `name:"profile" placeholder:"NAME" help:"AWS profile for s3:// locations (default: AWS_PROFILE or default)."`
	EndpointURL string `name:"endpoint-url" placeholder:"URL" help:"S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL); implies --path-style."`
	Region      string `name:"region" placeholder:"REGION" help:"AWS region (default: AWS_REGION, the profile's, or us-east-1)."`
	PathStyle   bool   `name:"path-style" help:"Address buckets by path (https://host/bucket/) rather than by host name."`
}

// Options returns the store options the flags ask for.
func (f Flags) Options() Options {
	return Options{Profile: f.Profile, EndpointURL: f.EndpointURL, Region: f.Region, PathStyle: f.PathStyle}
}

// Args are the flags that give another command the access options of o
// (those of Flags; StorageClass and SSE have no flag here).
func (o Options) Args() []string {
	var a []string
	if o.Profile != "" {
		a = append(a, "--profile="+o.Profile)
	}
	if o.EndpointURL != "" {
		a = append(a, "--endpoint-url="+o.EndpointURL)
	}
	if o.Region != "" {
		a = append(a, "--region="+o.Region)
	}
	if o.PathStyle {
		a = append(a, "--path-style")
	}
	return a
}
