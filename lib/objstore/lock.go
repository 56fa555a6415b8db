package objstore

import (
	"context"
	"fmt"

	"github.com/buttersink/buttersink/lib/lock"
)

// Locker is a store that holds the writers' lock of its directory (see
// lib/lock): flock on a file in a file:// store's directory, a
// conditionally written object under an s3:// prefix.
type Locker interface {
	// Lock takes it. create makes a file store's missing directory
	// (bss3put stores there); without it a missing directory has
	// nothing to protect and the lock returned holds nothing.
	Lock(ctx context.Context, opts lock.Options, create bool) (*lock.Lock, error)
}

// Lock takes the writers' lock of st's directory.
func Lock(ctx context.Context, st Store, opts lock.Options, create bool) (*lock.Lock, error) {
	if l, ok := st.(Locker); ok {
		return l.Lock(ctx, opts, create)
	}
	return nil, fmt.Errorf("%s: cannot be locked", st.Location().DirString())
}
