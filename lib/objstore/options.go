package objstore

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
}

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

// ByteSize is a flag value in bytes, written as a number with an optional
// unit: 16777216, 16M, 16MiB, 1G (units are powers of 1024).
type ByteSize int64

// UnmarshalText parses a size (kong and encoding use it).
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// ParseByteSize reads a size with an optional K, M, G or T unit (also
// KiB, MiB, ...; powers of 1024).
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	shift := 0
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "ib"), "b") {
	case "":
		if unit != "" && unit != "b" {
			return 0, fmt.Errorf("invalid size unit in %q", s)
		}
	case "k":
		shift = 10
	case "m":
		shift = 20
	case "g":
		shift = 30
	case "t":
		shift = 40
	default:
		return 0, fmt.Errorf("invalid size unit in %q", s)
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}
