package test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
)

// rdEntry is everything a receive can reproduce about one path of a
// subvolume. ctime cannot be set by any receiver and is left out.
type rdEntry struct {
	Mode         uint32 // type and all permission bits
	UID, GID     uint32
	Size         int64
	Rdev         uint64
	Nlink        uint64
	Atime, Mtime int64 // ns since the epoch
	Target       string
	Xattrs       string // sorted name=value lines, values quoted
	Flags        uint32 // FS_IOC_GETFLAGS, regular files and directories
	Digest       string
	Layout       string // SEEK_DATA/SEEK_HOLE map of a regular file
	// Links is the first path (in byte order) of the inode's names, so
	// that hardlink groups compare without inode numbers.
	Links string
}

// rdDump is a received subvolume: its paths ("" is the root) and the
// properties that say which snapshot it holds.
type rdDump struct {
	Entries map[string]*rdEntry
	Props   string
}

// rdDumpTree walks the subvolume at root through directory descriptors,
// so that paths longer than PATH_MAX are dumped too. Files and
// directories are opened O_NOATIME: dumping never changes what it dumps.
func rdDumpTree(t testing.TB, root string) rdDump {
	t.Helper()
	d := rdDump{Entries: map[string]*rdEntry{}}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("dump %s: %v", root, err)
	}
	inodes := map[uint64][]string{}
	if err := rdWalk(fd, ".", "", d.Entries, inodes); err != nil {
		unix.Close(fd)
		t.Fatalf("dump %s: %v", root, err)
	}
	unix.Close(fd)
	for _, paths := range inodes {
		sort.Strings(paths)
		for _, p := range paths {
			d.Entries[p].Links = paths[0]
		}
	}
	s, err := btrfs.Info(root)
	if err != nil {
		t.Fatalf("dump %s: %v", root, err)
	}
	d.Props = fmt.Sprintf("received %s stransid %d ro %v", s.ReceivedUUID.Canonical(), s.STransID, s.ReadOnly)
	return d
}

// rdWalk records name (in the directory dirfd) as rel and, for a
// directory, everything below it.
func rdWalk(dirfd int, name, rel string, out map[string]*rdEntry, inodes map[uint64][]string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%q: stat: %w", rel, err)
	}
	e := &rdEntry{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Size: st.Size, Rdev: st.Rdev, Nlink: st.Nlink,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano()}
	out[rel] = e
	inodes[st.Ino] = append(inodes[st.Ino], rel)
	var err error
	if e.Xattrs, err = rdXattrs(dirfd, name); err != nil {
		return fmt.Errorf("%q: %w", rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return fmt.Errorf("%q: readlink: %w", rel, err)
		}
		e.Target = string(buf[:n])
	case unix.S_IFREG:
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%q: open: %w", rel, err)
		}
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		if e.Flags, err = unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err != nil {
			return fmt.Errorf("%q: getflags: %w", rel, err)
		}
		e.Layout = rdLayout(fd, st.Size)
		h := sha256.New()
		_, err = io.Copy(h, io.NewSectionReader(f, 0, st.Size+1))
		if err != nil {
			return fmt.Errorf("%q: read: %w", rel, err)
		}
		e.Digest = fmt.Sprintf("%x", h.Sum(nil)[:12])
	case unix.S_IFDIR:
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NOATIME|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%q: open: %w", rel, err)
		}
		f := os.NewFile(uintptr(fd), rel)
		defer f.Close()
		if e.Flags, err = unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err != nil {
			return fmt.Errorf("%q: getflags: %w", rel, err)
		}
		names, err := f.Readdirnames(-1)
		if err != nil {
			return fmt.Errorf("%q: readdir: %w", rel, err)
		}
		sort.Strings(names)
		for _, n := range names {
			child := n
			if rel != "" {
				child = rel + "/" + n
			}
			if err := rdWalk(fd, n, child, out, inodes); err != nil {
				return err
			}
		}
	}
	return nil
}

// rdXattrs lists name's xattrs without following it: through the
// directory's /proc descriptor link, which keeps the path short.
func rdXattrs(dirfd int, name string) (string, error) {
	p := "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "", fmt.Errorf("listxattr: %w", err)
	}
	var pairs []string
	for _, x := range strings.Split(string(buf[:n]), "\x00") {
		if x == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, x, v)
		if err != nil {
			return "", fmt.Errorf("getxattr %s: %w", x, err)
		}
		pairs = append(pairs, x+"="+strconv.Quote(string(v[:m])))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "\n"), nil
}

// rdLayout maps a file's data and holes as "d<start>-<end>" ranges.
func rdLayout(fd int, size int64) string {
	var b strings.Builder
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return "error " + err.Error()
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return "error " + err.Error()
		}
		fmt.Fprintf(&b, "d%d-%d ", start, end)
		off = end
	}
	return b.String()
}

// rdCompare says which fields of a received tree must match the other
// tree's.
type rdCompare struct {
	// Strict is receive against receive: every field. Otherwise
	// received against its source: flags (no receiver applies them),
	// the data layout (holes arrive as written zeros) and the
	// subvolume properties are left out.
	Strict bool
	// RootTimes compares the root directory's atime and mtime.
	RootTimes bool
}

// rdDiff lists the differences between a (named an) and b (bn), at most
// max of them, first by path order.
func rdDiff(a, b rdDump, an, bn string, c rdCompare, max int) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		} else if len(out) == max {
			out = append(out, "...")
		}
	}
	if c.Strict && a.Props != b.Props {
		add("subvolume: %s: %s; %s: %s", an, a.Props, bn, b.Props)
	}
	paths := map[string]bool{}
	for p := range a.Entries {
		paths[p] = true
	}
	for p := range b.Entries {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		ea, eb := a.Entries[p], b.Entries[p]
		switch {
		case ea == nil:
			add("%q: only in %s", p, bn)
			continue
		case eb == nil:
			add("%q: only in %s", p, an)
			continue
		}
		x, y := *ea, *eb
		if !c.Strict {
			x.Flags, y.Flags, x.Layout, y.Layout = 0, 0, "", ""
		}
		if p == "" && !c.RootTimes {
			x.Atime, y.Atime, x.Mtime, y.Mtime = 0, 0, 0, 0
		}
		for _, f := range rdFields(x, y) {
			add("%q: %s: %s %s, %s %s", p, f[0], an, f[1], bn, f[2])
		}
	}
	return out
}

// rdFields names the fields that differ, with both values.
func rdFields(a, b rdEntry) [][3]string {
	var out [][3]string
	cmp := func(name string, x, y any) {
		if x != y {
			out = append(out, [3]string{name, fmt.Sprint(x), fmt.Sprint(y)})
		}
	}
	cmp("mode", fmt.Sprintf("%#o", a.Mode), fmt.Sprintf("%#o", b.Mode))
	cmp("uid", a.UID, b.UID)
	cmp("gid", a.GID, b.GID)
	cmp("size", a.Size, b.Size)
	cmp("rdev", a.Rdev, b.Rdev)
	cmp("nlink", a.Nlink, b.Nlink)
	cmp("atime", a.Atime, b.Atime)
	cmp("mtime", a.Mtime, b.Mtime)
	cmp("target", strconv.Quote(a.Target), strconv.Quote(b.Target))
	cmp("xattrs", "["+strings.ReplaceAll(a.Xattrs, "\n", " ")+"]", "["+strings.ReplaceAll(b.Xattrs, "\n", " ")+"]")
	cmp("flags", fmt.Sprintf("%#x", a.Flags), fmt.Sprintf("%#x", b.Flags))
	cmp("content", a.Digest, b.Digest)
	cmp("layout", "["+a.Layout+"]", "["+b.Layout+"]")
	cmp("hardlink group", strconv.Quote(a.Links), strconv.Quote(b.Links))
	return out
}
