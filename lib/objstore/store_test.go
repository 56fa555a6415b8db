package objstore_test

import (
	"context"
	"testing"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/storetest"
)

// TestFileStore runs the store contract against the file store.
func TestFileStore(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T) objstore.Store {
			loc, err := location.Parse("file://" + t.TempDir() + "/store/")
			if err != nil {
				t.Fatal(err)
			}
			st, err := objstore.Open(context.Background(), loc, objstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		Pending: map[string]string{
			"OverwriteRefused": "Close renames over an existing object; bss3put relies on it to store again an object left without metadata",
		},
	})
}
