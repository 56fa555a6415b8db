package btrfs

import (
	"math/rand"
	"testing"
)

// permute puts every record where the permutation says, whatever its
// cycles.
func TestPermute(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := range 40 {
		for range 20 {
			p := rng.Perm(n)
			s := make([]Subvol, n)
			for i := range s {
				s[i].ID = uint64(i)
			}
			from := append([]int(nil), p...)
			permute(s, from)
			for j := range s {
				if s[j].ID != uint64(p[j]) {
					t.Fatalf("n=%d perm %v: s[%d] = %d", n, p, j, s[j].ID)
				}
			}
		}
	}
}
