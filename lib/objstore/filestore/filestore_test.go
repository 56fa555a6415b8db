package filestore_test

import (
	"context"
	"os"
	"testing"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
	"github.com/buttersink/buttersink/lib/objstore/storetest"
)

// TestFileStore runs the store contract against the file store.
func TestFileStore(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T) objstore.Store {
			// A store exists (a destination's is made by its first
			// put, which the suite has no way to say).
			dir := t.TempDir() + "/store"
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			loc, err := location.Parse("file://" + dir + "/")
			if err != nil {
				t.Fatal(err)
			}
			st, err := filestore.Open(context.Background(), loc, objstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	})
}
