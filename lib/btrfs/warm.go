package btrfs

import (
	"context"
	"errors"
)

// An incremental receive changes files all over a tree that, right after
// the parent was snapshotted, is on disk and not in memory: each lookup
// of a name and each inode it touches waits for a metadata leaf, one at a
// time (half the time an incremental receive waits, measured). The
// stream visits inodes in ascending number, which is the tree's key
// order, so WarmTree walks the same leaves in the same order on another
// thread, ahead of the receive, and the receive finds them in memory.

// WarmTree reads every leaf of the tree of the subvolume open at fd into
// memory, in key order, until it is done or ctx ends. It copies out only
// the inode items, the least a search can copy and still visit every
// leaf. It needs CAP_SYS_ADMIN (TREE_SEARCH) and only reads.
func WarmTree(ctx context.Context, fd int) error {
	key := searchKey{
		MinObjectID: firstFreeObjectID, MaxObjectID: lastFreeObjectID,
		MinType: inodeItemKey, MaxType: inodeItemKey,
		MaxOffset: ^uint64(0), MaxTransID: ^uint64(0),
	}
	err := treeSearch(fd, key, func(searchItem) error { return ctx.Err() })
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}
