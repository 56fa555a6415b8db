package receive

import (
	"errors"
)

// DirTree is a Tree on a directory: every command acts beneath its root
// descriptor, through openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
// | RESOLVE_NO_XDEV. It carries out the POSIX part of every command;
// Clone copies data, EncodedWrite decompresses, Fileattr sets what
// FS_IOC_SETFLAGS can, End and Sync work on the directory. A btrfs target
// embeds it and replaces what btrfs does natively.
type DirTree struct {
	root int
}

// NewDirTree returns a DirTree on the directory open at rootFD; the
// DirTree takes a duplicate of the descriptor, closed by Close.
func NewDirTree(rootFD int) (*DirTree, error) {
	return nil, errors.ErrUnsupported // TODO(apply-core)
}

// Root is the root directory's descriptor, valid until Close.
func (t *DirTree) Root() int { return t.root }

// Open opens path beneath the root (flags as for openat2; O_NOFOLLOW and
// O_CLOEXEC are added). The caller closes the descriptor.
func (t *DirTree) Open(path string, flags int) (int, error) {
	return -1, errors.ErrUnsupported // TODO(apply-core)
}

// WriteFD is the descriptor WRITE, CLONE, FALLOCATE and the like use for
// path: opened once, kept until another path is written or the tree
// changes names (rename, link, unlink, rmdir), Sync, End or Close. The
// caller must not close it.
func (t *DirTree) WriteFD(path string) (int, error) {
	return -1, errors.ErrUnsupported // TODO(apply-core)
}
