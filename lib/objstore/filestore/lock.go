package filestore

import (
	"context"
	"errors"
	"os"

	"github.com/buttersink/buttersink/lib/lock"
)

// Lock takes the writers' lock of the store's directory (objstore.Locker).
func (s *fileStore) Lock(ctx context.Context, opts lock.Options, create bool) (*lock.Lock, error) {
	dest := s.loc.DirString()
	if create {
		if err := os.MkdirAll(s.loc.Dir, 0o755); err != nil {
			return nil, s.fail("", err)
		}
	} else if _, err := os.Stat(s.loc.Dir); errors.Is(err, os.ErrNotExist) {
		return lock.None(ctx), nil
	}
	return lock.Dir(ctx, s.loc.Dir, dest, opts)
}
