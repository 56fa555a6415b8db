package bsrm

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/receive"
)

// snapshotDir checks the step's snapshot directory in a dir:// mirror
// (reached from the allowed directory through no symbolic link, complete,
// its marker's own UUID the step's) and with remove deletes it. The
// status is as for subvolumes.
func (r *remover) snapshotDir(c *checked, remove bool) (string, error) {
	root, err := unix.Open(c.scope.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.scope.DirString(), err)
	}
	defer unix.Close(root)
	dir, base := path.Split(c.rel)
	dfd := root
	if dir = strings.Trim(dir, "/"); dir != "" {
		how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
		dfd, err = unix.Openat2(root, dir, &how)
		if err == unix.ENOENT {
			return "absent", nil
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", c.scope.DirString()+dir, err)
		}
		defer unix.Close(dfd)
	}
	pd := receive.NewPlainDest(root, dfd)
	m, err := pd.Lookup(base)
	switch {
	case err != nil:
		return "", err
	case m == nil:
		return "absent", nil
	case m.UUID != c.Snapshot.UUID:
		return "", fmt.Errorf("%s%s is snapshot directory %s, not %s the step names; not deleted", c.scope.DirString(), c.rel, m.UUID.Canonical(), c.Snapshot.UUID.Canonical())
	case !remove && r.opts.DryRun:
		return "dry-run", nil
	case !remove:
		return "present", nil
	}
	if err := pd.Remove(base, c.Snapshot.UUID); err != nil {
		return "", err
	}
	return "deleted", nil
}
