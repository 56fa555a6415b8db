package objstore

import (
	"testing"

	"github.com/buttersink/buttersink/lib/lock"
)

// The writers' lock (lib/lock) lives under a store's directory as
// lock.Name: never a stored stream, at any depth, so listings skip it.
func TestLockIsNoStream(t *testing.T) {
	for _, k := range []string{lock.Name, "a/" + lock.Name, "a/b/" + lock.Name} {
		if _, ok := Record(Object{Key: k}); ok {
			t.Errorf("Record(%q) is a stream", k)
		}
	}
}
