package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore"
	"github.com/buttersink/buttersink/lib/objstore/filestore"
)

// A file:// store someone else can write to holds a symbolic link where
// an object's directory goes: storing (or aborting) an object there must
// not create, rename or remove anything outside the store.
func TestFileStoreCreateFollowsNoLink(t *testing.T) {
	const key = "home/b5ec0102-0304-0506-0708-090a0b0c0d0e.full.ct5.bs1"
	for _, c := range []struct{ name, link string }{
		{"object dir", "home"},
		{"deeper", "home"}, // home -> outside, outside/sub made by MkdirAll
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			store, outside := filepath.Join(tmp, "store"), filepath.Join(tmp, "outside")
			for _, d := range []string{store, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(outside, filepath.Join(store, c.link)); err != nil {
				t.Fatal(err)
			}
			k := key
			if c.name == "deeper" {
				k = "home/sub/b5ec0102-0304-0506-0708-090a0b0c0d0e.full.ct5.bs1"
			}
			loc, _ := location.Parse("file://" + store + "/")
			st, err := filestore.Open(context.Background(), loc, objstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := st.Create(context.Background(), k, objstore.Meta{}, objstore.PutOptions{})
			if err == nil {
				p.Write([]byte("stream"))
				_, err = p.Close(objstore.Meta{})
			}
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("Create %s through a link: %v, want a symbolic link error", k, err)
			}
			// An aborted put prunes no directory outside either.
			if p, err := st.Create(context.Background(), k, objstore.Meta{}, objstore.PutOptions{}); err == nil {
				p.Abort()
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 0 {
				var n []string
				for _, e := range ents {
					n = append(n, e.Name())
				}
				t.Errorf("outside the store: %v", n)
			}
			if _, err := os.Stat(outside); errors.Is(err, os.ErrNotExist) {
				t.Errorf("outside the store: the directory was removed")
			}
		})
	}
}
