package receive

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// linkGroup is a file of the parent with more than one name: where its
// first name went in the new tree, and whether that is no longer the
// parent's inode (later names are linked to it, keeping the group).
type linkGroup struct {
	path  string
	owned bool
}

// copyParent fills the (empty) tree with a copy of the parent's
// directory open at pfd: directories, symbolic links and special files
// made anew with their metadata, regular files reflinked or hard-linked
// (those then in shared).
func (t *PlainTree) copyParent(pfd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	if err := t.copyDir(pfd, t.root, "", st.Dev, map[devIno]*linkGroup{}); err != nil {
		return err
	}
	return t.dirMeta(t.root, pfd, &st)
}

func (t *PlainTree) copyDir(sdir, ddir int, rel string, dev uint64, groups map[devIno]*linkGroup) error {
	ents, err := readDirNames(sdir)
	if err != nil {
		return fmt.Errorf("%s: %w", showRel(rel), err)
	}
	for _, name := range ents {
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		if err := t.copyEntry(sdir, ddir, name, p, dev, groups); err != nil {
			return pathErr("copy", p, err)
		}
	}
	return nil
}

func (t *PlainTree) copyEntry(sdir, ddir int, name, p string, dev uint64, groups map[devIno]*linkGroup) error {
	var st unix.Stat_t
	if err := fstatat(sdir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if st.Dev != dev {
			return nil // a mount point: not part of the snapshot
		}
		if err := unix.Mkdirat(ddir, name, 0o700); err != nil {
			return err
		}
		s, err := openIn(sdir, name, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		d, err := openIn(ddir, name, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			return err
		}
		defer unix.Close(d)
		if err := t.copyDir(s, d, p, dev, groups); err != nil {
			return err
		}
		return t.dirMeta(d, s, &st)
	case unix.S_IFREG:
		return t.copyFile(sdir, ddir, name, p, &st, groups)
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(sdir, name, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), ddir, name); err != nil {
			return err
		}
	default:
		err := unix.Mknodat(ddir, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
		if err == unix.EPERM && t.dest.NonRoot {
			t.unset.Devices++
			err = unix.Mknodat(ddir, name, unix.S_IFREG|0o600, 0)
		}
		if err != nil {
			return err
		}
	}
	return t.nodeMeta(sdir, ddir, name, &st)
}

// nodeMeta copies a symbolic link's or special file's owner, mode,
// xattrs and times, by name, following nothing.
func (t *PlainTree) nodeMeta(sdir, ddir int, name string, st *unix.Stat_t) error {
	err := unix.Fchownat(ddir, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EPERM && t.dest.NonRoot {
		t.unset.Owners++
		err = nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(ddir, name, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	sp, dp := procPath(sdir, name), procPath(ddir, name)
	err = t.copyXattrs(func(b []byte) (int, error) { return unix.Llistxattr(sp, b) },
		func(n string, b []byte) (int, error) { return unix.Lgetxattr(sp, n, b) },
		func(n string, b []byte) error { return unix.Lsetxattr(dp, n, b, 0) })
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(ddir, name, statTimes(st), unix.AT_SYMLINK_NOFOLLOW)
}

// dirMeta copies a directory's owner, mode, xattrs and times (after its
// content, which changes its times).
func (t *PlainTree) dirMeta(d, s int, st *unix.Stat_t) error {
	if err := t.copyMeta(d, s, st); err != nil {
		return err
	}
	if perm := st.Mode & 0o7777; t.dest.NonRoot && perm&0o700 != 0o700 {
		var now unix.Stat_t
		if err := unix.Fstat(d, &now); err != nil {
			return err
		}
		t.keepDirMode(devIno{now.Dev, now.Ino}, perm)
		if err := unix.Fchmod(d, perm|0o700); err != nil {
			return err
		}
	}
	return futimes(d, st)
}

// copyFile gives the new tree the parent's regular file name: a
// reflinked copy, or a hard link to it. A file with several names in the
// parent is copied once and its other names linked to the copy: the
// group stays a group, and breaking one name never leaves another on
// the parent's inode.
func (t *PlainTree) copyFile(sdir, ddir int, name, p string, st *unix.Stat_t, groups map[devIno]*linkGroup) error {
	k := devIno{st.Dev, st.Ino}
	if g := groups[k]; g != nil {
		if !g.owned {
			d, base, err := t.parent(g.path, false)
			if err != nil {
				return err
			}
			var now unix.Stat_t
			err = fstatat(d.fd, base, &now, unix.AT_SYMLINK_NOFOLLOW)
			if err == nil {
				err = t.copyOver(d.fd, base, d.fd, base, &now, false)
			}
			t.release(d)
			if err != nil {
				return err
			}
			delete(t.shared, k)
			g.owned = true
		}
		d, base, err := t.parent(g.path, false)
		if err != nil {
			return err
		}
		defer t.release(d)
		return unix.Linkat(d.fd, base, ddir, name, 0)
	}
	if st.Nlink > 1 {
		groups[k] = &linkGroup{path: p}
	}
	if !t.dest.noReflink {
		err := t.copyOver(sdir, name, ddir, name, st, true)
		if err == nil {
			if g := groups[k]; g != nil {
				g.owned = true
			}
			return nil
		}
		if err != errNoReflink {
			return err
		}
	}
	err := unix.Linkat(sdir, name, ddir, name, 0)
	switch err {
	case nil:
		t.shared[k] = struct{}{}
		return nil
	case unix.EMLINK, unix.EPERM, unix.EXDEV:
		// Too many links, a link protected_hardlinks refuses, another
		// filesystem: a copy of its own.
		if g := groups[k]; g != nil {
			g.owned = true
		}
		return t.copyOver(sdir, name, ddir, name, st, false)
	}
	return err
}

// RemoveTree deletes name in the directory dir and everything below it,
// following no symbolic link and crossing no mount point. A directory
// without write permission (one a stream made so) is given it first: the
// receiving user owns what it made.
func RemoveTree(dir int, name string) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := openIn(dir, name, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	unix.Fchmod(fd, 0o700)
	for {
		ents, err := readDirNames(fd)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("remove %q: %w", name, err)
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			if err := RemoveTree(fd, e); err != nil {
				unix.Close(fd)
				return err
			}
		}
	}
	unix.Close(fd)
	if err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}
