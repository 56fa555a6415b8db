package objopts

import (
	"strings"
	"testing"
)

func TestParseRetention(t *testing.T) {
	tests := []struct {
		in   string
		want Retention
		err  bool
	}{
		{in: "GOVERNANCE:30d", want: Retention{Mode: "GOVERNANCE", Days: 30}},
		{in: "compliance:1y", want: Retention{Mode: "COMPLIANCE", Days: 365}},
		{in: "Governance:8w", want: Retention{Mode: "GOVERNANCE", Days: 56}},
		{in: "COMPLIANCE:100y", want: Retention{Mode: "COMPLIANCE", Days: 36500}},
		{in: "COMPLIANCE:101y", err: true},
		{in: "COMPLIANCE:36501d", err: true},
		{in: "LEGAL:30d", err: true},
		{in: "GOVERNANCE", err: true},
		{in: "GOVERNANCE:", err: true},
		{in: "GOVERNANCE:d", err: true},
		{in: "GOVERNANCE:0d", err: true},
		{in: "GOVERNANCE:-1d", err: true},
		{in: "GOVERNANCE:+1d", err: true},
		{in: "GOVERNANCE:30", err: true},
		{in: "GOVERNANCE:30m", err: true},
		{in: "GOVERNANCE:1.5y", err: true},
		{in: "GOVERNANCE:99999999999999999999d", err: true},
		{in: ":30d", err: true},
	}
	for _, tc := range tests {
		got, err := ParseRetention(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseRetention(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			if back, err := ParseRetention(got.String()); err != nil || back != got {
				t.Errorf("%q: String %q reads back as %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

// FuzzParseRetention: whatever the flag's text, a retention parsed is a
// mode S3 knows for 1 day to 100 years, and errors are one line.
func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"GOVERNANCE:30d", "COMPLIANCE:1y", "x:8w", "GOVERNANCE:0d", "COMPLIANCE:9223372036854775807y", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetention(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if r.Mode != "GOVERNANCE" && r.Mode != "COMPLIANCE" || r.Days < 1 || r.Days > maxRetentionDays {
			t.Fatalf("%q: %+v", s, r)
		}
	})
}
