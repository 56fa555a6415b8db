package btrfs

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's send reads the snapshot's metadata and file data itself,
// one block at a time on one thread, each read waiting for the disk: a
// cold send spends most of its time waiting. Prefetch walks the same
// tree in the same order (ascending inode numbers) on another thread,
// which pulls the metadata leaves into memory by reading them and asks
// for the file data ahead of time (posix_fadvise WILLNEED, which queues
// the reads and returns), so that the send finds both in the page cache.
// It only reads: the stream is the kernel's, whatever it does.

// Item types and fields of the fs tree (btrfs_tree.h) that the prefetch reads.
const (
	inodeItemKey  = 1   // BTRFS_INODE_ITEM_KEY
	inodeRefKey   = 12  // BTRFS_INODE_REF_KEY
	extentDataKey = 108 // BTRFS_EXTENT_DATA_KEY

	inodeItemSize = 160 // struct btrfs_inode_item
	inodeItemMode = 52  // mode, le32

	// struct btrfs_file_extent_item: generation@0, compression@16,
	// type@20, then for regular extents disk_bytenr@21, num_bytes@45.
	fileExtentGeneration  = 0
	fileExtentCompression = 16
	fileExtentType        = 20
	fileExtentDiskBytenr  = 21
	fileExtentNumBytes    = 45
	fileExtentRegSize     = 53
	fileExtentReg         = 1 // BTRFS_FILE_EXTENT_REG; inline (0) data is in the leaf, prealloc (2) is sent as a hole
)

// PrefetchOptions say what a send will read and how far ahead of it the
// prefetch may go.
type PrefetchOptions struct {
	// Parent is the incremental send's parent ("" = a full send): only
	// what changed since it is read ahead, as only that is sent.
	Parent string
	// Window bounds the file data asked for ahead of the stream: data
	// prefetched never exceeds Written() + Window, so that the page
	// cache does not drop pages before the send reads them.
	Window int64
	// Written reports the stream bytes the send has written so far.
	Written func() int64
	// Compressed: the send passes compressed extents through, reading
	// them from the disk, not the page cache; they are not prefetched.
	Compressed bool
}

// PrefetchStats count what a prefetch asked for.
type PrefetchStats struct {
	Bytes int64 // file data asked for
	Files int64 // files whose data was asked for
	// Ahead is the most data prefetched beyond the stream written at
	// the time it was asked for (at most the window).
	Ahead int64
}

// prefetchChunk is the most data asked for at once: big enough that a
// large file costs few calls, small against any window.
const prefetchChunk = 8 << 20

// PrefetchWindow is the default window for a machine of ram bytes of
// memory: 256 MiB, and no more than a sixteenth of the memory.
func PrefetchWindow(ram uint64) int64 {
	w := int64(256 << 20)
	if r := int64(ram / 16); r < w {
		w = r
	}
	return max(w, prefetchChunk)
}

// fits reports whether n more bytes may be asked for, prefetched bytes
// having been asked for and written written to the stream.
func fits(prefetched, written, window, n int64) bool {
	return prefetched+n <= written+window
}

// Prefetch reads ahead what the send of the read-only snapshot at path
// will read, until it has walked the whole tree or ctx ends. Its errors
// only end the prefetch: the send does not depend on it.
func Prefetch(ctx context.Context, path string, o PrefetchOptions) (PrefetchStats, error) {
	p := &prefetcher{ctx: ctx, o: o, root: -1, fd: -1, dirs: map[uint64]int{}}
	defer p.close()
	var err error
	if p.root, err = openSubvolume(path); err != nil {
		return p.st, err
	}
	key := searchKey{
		MinObjectID: firstFreeObjectID, MaxObjectID: lastFreeObjectID,
		MaxOffset: ^uint64(0), MaxTransID: ^uint64(0), MaxType: 255,
	}
	if o.Parent != "" {
		ps, err := Info(o.Parent)
		if err != nil {
			return p.st, err
		}
		// Blocks and extents written after the parent are what the
		// kernel's tree comparison reads and sends; the search skips
		// the subtrees older than that, as the comparison does.
		key.MinTransID = ps.Generation + 1
	}
	p.minGen = key.MinTransID
	err = treeSearch(p.root, key, p.item)
	if err == nil {
		err = p.flush()
	}
	if err == errPrefetchDone {
		err = nil
	}
	return p.st, err
}

// errPrefetchDone ends the walk when ctx ends: the send is over.
var errPrefetchDone = errors.New("send done")

type prefetcher struct {
	ctx    context.Context
	o      PrefetchOptions
	st     PrefetchStats
	root   int
	minGen uint64
	// written is the stream's progress when last read.
	written int64
	// dirs are open directories by inode number.
	dirs map[uint64]int

	// The inode being walked: its reference (parent directory and
	// name), its open descriptor once data is asked for, and the data
	// range not yet asked for.
	ino        uint64
	dir        uint64
	name       string
	skip       bool // not a regular file, or it cannot be opened
	fd         int
	start, end uint64
}

func (p *prefetcher) item(it searchItem) error {
	if it.ObjectID != p.ino {
		if err := p.flush(); err != nil {
			return err
		}
		p.ino, p.dir, p.name, p.skip, p.fd = it.ObjectID, 0, "", false, -1
	}
	if p.skip {
		return nil
	}
	switch it.Type {
	case inodeItemKey:
		if len(it.Data) >= inodeItemSize && binary.LittleEndian.Uint32(it.Data[inodeItemMode:])&unix.S_IFMT != unix.S_IFREG {
			p.skip = true
		}
	case inodeRefKey:
		if p.dir == 0 {
			p.name = firstRefName(it.Data)
			if p.name != "" {
				p.dir = it.Offset
			}
		}
	case extentDataKey:
		start, end, ok := dataRange(it.Offset, it.Data, p.minGen, p.o.Compressed)
		if !ok {
			return nil
		}
		if start == p.end && p.end > p.start {
			p.end = end
			return nil
		}
		if err := p.ask(); err != nil {
			return err
		}
		p.start, p.end = start, end
	}
	return nil
}

// firstRefName is the first name of an INODE_REF item (struct
// btrfs_inode_ref: index le64, name_len le16, name; "" when malformed):
// one name is enough to open the inode.
func firstRefName(d []byte) string {
	if len(d) < 10 {
		return ""
	}
	n := int(binary.LittleEndian.Uint16(d[8:]))
	if n > len(d)-10 {
		return ""
	}
	return string(d[10 : 10+n])
}

// dataRange is the file range [start, end) of the EXTENT_DATA item at
// file offset off whose data the send reads from the page cache: a
// regular extent, not a hole, written at or after minGen, and not one
// passed through compressed when compressed is set.
func dataRange(off uint64, d []byte, minGen uint64, compressed bool) (start, end uint64, ok bool) {
	if len(d) < fileExtentRegSize || d[fileExtentType] != fileExtentReg ||
		binary.LittleEndian.Uint64(d[fileExtentDiskBytenr:]) == 0 ||
		binary.LittleEndian.Uint64(d[fileExtentGeneration:]) < minGen ||
		compressed && d[fileExtentCompression] != 0 {
		return 0, 0, false
	}
	end = off + binary.LittleEndian.Uint64(d[fileExtentNumBytes:])
	if end <= off {
		return 0, 0, false // empty, or past the largest offset
	}
	return off, end, true
}

// flush asks for the rest of the inode's data and closes it.
func (p *prefetcher) flush() error {
	err := p.ask()
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
	return err
}

// ask asks for the pending range [start, end) of the inode's data, a
// chunk at a time, each when the window has room for it.
func (p *prefetcher) ask() error {
	start, end := p.start, p.end
	p.start, p.end = 0, 0
	if end <= start || p.skip {
		return nil
	}
	if p.fd < 0 {
		fd, err := p.open()
		if err != nil {
			p.skip = true // gone, or not beneath the snapshot: the send reads it alone
			return nil
		}
		p.fd = fd
		p.st.Files++
	}
	for start < end {
		n := int64(min(end-start, prefetchChunk))
		if err := p.wait(n); err != nil {
			return err
		}
		if err := unix.Fadvise(p.fd, int64(start), n, unix.FADV_WILLNEED); err != nil {
			return err
		}
		p.st.Bytes += n
		start += uint64(n)
	}
	return nil
}

// wait returns once n more bytes fit in the window, or ctx has ended.
// The stream's progress is read again only when the last reading leaves
// no room: it only grows, and reading it costs a system call.
func (p *prefetcher) wait(n int64) error {
	nap := 200 * time.Microsecond
	for !fits(p.st.Bytes, p.written, p.o.Window, n) {
		if p.ctx.Err() != nil {
			return errPrefetchDone
		}
		if p.written = p.o.Written(); fits(p.st.Bytes, p.written, p.o.Window, n) {
			break
		}
		ts := unix.NsecToTimespec(int64(nap))
		unix.Nanosleep(&ts, nil)
		nap = min(2*nap, 10*time.Millisecond)
	}
	if p.ctx.Err() != nil {
		return errPrefetchDone
	}
	p.st.Ahead = max(p.st.Ahead, p.st.Bytes+n-p.written)
	return nil
}

// resolveBeneath keeps every open inside the snapshot: no symbolic link
// followed, no mount crossed, nothing above its root.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// open opens the walked inode for reading, by the name its reference
// gives in its directory, or else by the path INO_LOOKUP gives (an
// incremental walk may not meet the reference: it is in an older leaf).
func (p *prefetcher) open() (int, error) {
	dirfd, name := p.root, p.name
	if p.dir == 0 {
		rel, err := inoPath(p.root, 0, p.ino)
		if err != nil {
			return -1, err
		}
		name = rel
	} else if p.dir != firstFreeObjectID {
		var err error
		if dirfd, err = p.openDir(p.dir); err != nil {
			return -1, err
		}
	}
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, "/") {
		return -1, unix.ENOENT
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOATIME,
		Resolve: resolveBeneath,
	}
	fd, err := openat2(dirfd, name, &how)
	if err == unix.EPERM {
		how.Flags &^= unix.O_NOATIME // not the owner, without CAP_FOWNER
		fd, err = openat2(dirfd, name, &how)
	}
	return fd, err
}

// maxPrefetchDirs bounds the directories kept open: enough for the files
// of a tree spread over hundreds of directories (inode numbers follow
// creation, which may go round them), each open costing a lookup.
const maxPrefetchDirs = 1024

// openDir opens directory ino of the snapshot, or returns it open.
func (p *prefetcher) openDir(ino uint64) (int, error) {
	if fd, ok := p.dirs[ino]; ok {
		return fd, nil
	}
	rel, err := inoPath(p.root, 0, ino)
	if err != nil {
		return -1, err
	}
	if rel == "" {
		return -1, unix.ENOENT
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: resolveBeneath,
	}
	fd, err := openat2(p.root, rel, &how)
	if err != nil {
		return -1, err
	}
	if len(p.dirs) >= maxPrefetchDirs {
		// One out, at random (the map's order): unlike the least
		// recently used, that keeps most of a cycle over more
		// directories than fit.
		for k, d := range p.dirs {
			unix.Close(d)
			delete(p.dirs, k)
			break
		}
	}
	p.dirs[ino] = fd
	return fd, nil
}

func (p *prefetcher) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
	}
	for _, d := range p.dirs {
		unix.Close(d)
	}
	if p.root >= 0 {
		unix.Close(p.root)
	}
}

func openat2(dirfd int, name string, how *unix.OpenHow) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, name, how)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
