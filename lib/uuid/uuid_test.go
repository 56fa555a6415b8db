package uuid

import "testing"

func TestCanonicalRoundTrip(t *testing.T) {
	for _, s := range []string{
		"00000000-0000-0000-0000-000000000000",
		"0123abcd-4567-89ef-fedc-ba9876543210",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
	} {
		u, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Canonical(); got != s {
			t.Errorf("Canonical() = %q, want %q", got, s)
		}
		if got := string(u.AppendCanonical([]byte("x"))); got != "x"+s {
			t.Errorf("AppendCanonical = %q", got)
		}
	}
}
