package btrfs

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/uuid"
)

// Errors a caller may want to tell apart.
var (
	ErrNotBtrfs     = errors.New("not on a btrfs filesystem")
	ErrNotSubvolume = errors.New("not a btrfs subvolume")
)

// Subvol describes one subvolume as the kernel records it in its root item.
type Subvol struct {
	// ID is the subvolume (tree) id; ParentID the tree id of the subvolume
	// containing it, DirID the directory inode in ParentID that holds it.
	ID, ParentID, DirID, Generation, Flags uint64
	// Path is relative to the listed directory, "/"-separated (List);
	// "" from Info.
	Path string
	Name string

	UUID, ParentUUID, ReceivedUUID uuid.UUID

	// CTransID is the transaction of the last change, OTransID of the
	// creation; STransID is the sender's ctransid and RTransID the local
	// transaction of a receive.
	CTransID, OTransID, STransID, RTransID uint64
	CTime, OTime, STime, RTime             time.Time

	ReadOnly bool
}

// IsBtrfs reports whether path is on a btrfs filesystem.
func IsBtrfs(path string) (bool, error) {
	var st unix.Statfs_t
	if err := retryEINTR(func() error { return unix.Statfs(path, &st) }); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return uint32(st.Type) == superMagic, nil
}

// IsSubvolume reports whether path is the root directory of a btrfs
// subvolume (a directory with inode number 256 on btrfs).
func IsSubvolume(path string) (bool, error) {
	ok, err := IsBtrfs(path)
	if err != nil || !ok {
		return false, err
	}
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Stat(path, &st) }); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == firstFreeObjectID, nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// openSubvolume opens path and checks it is a subvolume root.
func openSubvolume(p string) (int, error) {
	fd, err := openDir(p)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", p, err)
	}
	if err := checkSubvolumeFD(fd, p); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func checkSubvolumeFD(fd int, p string) error {
	var sfs unix.Statfs_t
	if err := retryEINTR(func() error { return unix.Fstatfs(fd, &sfs) }); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if uint32(sfs.Type) != superMagic {
		return fmt.Errorf("%s: %w", p, ErrNotBtrfs)
	}
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if st.Ino != firstFreeObjectID {
		return fmt.Errorf("%s: %w", p, ErrNotSubvolume)
	}
	return nil
}

// Info describes the subvolume whose root is path. It works unprivileged
// (GET_SUBVOL_INFO, Linux 4.18+). Path is "" in the result.
func Info(path string) (Subvol, error) {
	fd, err := openSubvolume(path)
	if err != nil {
		return Subvol{}, err
	}
	defer unix.Close(fd)
	s, err := infoFD(fd)
	if err != nil {
		return Subvol{}, fmt.Errorf("%s: subvolume info: %w", path, err)
	}
	return s, nil
}

func infoFD(fd int) (Subvol, error) {
	a := new(getSubvolInfoArgs)
	if err := ioctl(fd, iocGetSubvolInfo, unsafe.Pointer(a)); err != nil {
		return Subvol{}, err
	}
	return Subvol{
		ID:           a.TreeID,
		ParentID:     a.ParentID,
		DirID:        a.DirID,
		Generation:   a.Generation,
		Flags:        a.Flags,
		Name:         cString(a.Name[:]),
		UUID:         uuidOf(a.UUID),
		ParentUUID:   uuidOf(a.ParentUUID),
		ReceivedUUID: uuidOf(a.ReceivedUUID),
		CTransID:     a.CTransID,
		OTransID:     a.OTransID,
		STransID:     a.STransID,
		RTransID:     a.RTransID,
		CTime:        unixTime(a.CTime.Sec, a.CTime.Nsec),
		OTime:        unixTime(a.OTime.Sec, a.OTime.Nsec),
		STime:        unixTime(a.STime.Sec, a.STime.Nsec),
		RTime:        unixTime(a.RTime.Sec, a.RTime.Nsec),
		// The info flags are the on-disk root item flags.
		ReadOnly: a.Flags&rootSubvolRdonly != 0,
	}, nil
}

// List returns every subvolume below dir (recursively, dir itself
// excluded), sorted by Path, which is relative to dir. As root it reads the
// root tree in a few large tree searches; otherwise it walks the subvolumes
// the caller can reach with the unprivileged GET_SUBVOL_ROOTREF and
// INO_LOOKUP_USER ioctls (Linux 4.18+), skipping those it may not enter.
func List(dir string) ([]Subvol, error) {
	fd, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := retryEINTR(func() error { return unix.Fstatfs(fd, &sfs) }); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if uint32(sfs.Type) != superMagic {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotBtrfs)
	}
	subs, err := listPrivileged(fd)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		subs, err = listUnprivileged(fd)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: list subvolumes: %w", dir, err)
	}
	return sortByPath(subs), nil
}

// treeIDOf returns the id of the subvolume holding fd's inode. INO_LOOKUP
// of the root dir inode with tree id 0 is allowed unprivileged.
func treeIDOf(fd int) (uint64, error) {
	a := new(inoLookupArgs)
	a.ObjectID = firstFreeObjectID
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(a)); err != nil {
		return 0, err
	}
	return a.TreeID, nil
}

// inoPath resolves directory inode ino in subvolume tree to its path from
// that subvolume's root, without trailing slash ("" for the root).
func inoPath(fd int, tree, ino uint64) (string, error) {
	if ino == firstFreeObjectID {
		return "", nil
	}
	a := new(inoLookupArgs)
	a.TreeID, a.ObjectID = tree, ino
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(a)); err != nil {
		return "", err
	}
	return strings.TrimSuffix(cString(a.Name[:]), "/"), nil
}

// listMeta is what listPrivileged knows of the subvolume at the same
// index of its list.
type listMeta struct {
	hasRoot bool
	hasRef  bool
	// resolved is 0 before fromDirTree looked at the entry, 1 when the
	// subvolume's Path holds its path from the listed directory's
	// subvolume, 2 when it is not inside it.
	resolved uint8
}

// joinPath joins non-empty components with "/": path.Join without its
// Clean, for components that are already clean (subvolume names never
// hold a "/", INO_LOOKUP paths have no "." or ".." components).
func joinPath(a, b, c string) string {
	s := a
	for _, x := range [...]string{b, c} {
		switch {
		case x == "":
		case s == "":
			s = x
		default:
			s += "/" + x
		}
	}
	return s
}

type dirKey struct{ tree, ino uint64 }

// listPrivileged reads every ROOT_ITEM and ROOT_BACKREF of the root tree in
// one key range, then resolves paths with one INO_LOOKUP per distinct
// directory holding subvolumes.
func listPrivileged(fd int) ([]Subvol, error) {
	dirTree, err := treeIDOf(fd)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	// The search returns items in key order, so a subvolume's ROOT_ITEM
	// and ROOT_BACKREF arrive together: keep them in one slice in id
	// order, indexed by id, and what is known of each beside it.
	// Capacity for thousands up front: the untouched part of a large
	// allocation costs no memory, and growing would copy every entry.
	// The listing is then ordered in place: on a machine where every
	// page first touched costs (a virtual machine's page faults), a
	// second copy of the records is a good part of a listing's time.
	list := make([]Subvol, 0, 4096)
	meta := make([]listMeta, 0, 4096)
	get := func(id uint64) int {
		if n := len(list); n > 0 && list[n-1].ID == id {
			return n - 1
		}
		list = append(list, Subvol{ID: id})
		meta = append(meta, listMeta{})
		return len(list) - 1
	}
	find := func(id uint64) int {
		i := sort.Search(len(list), func(i int) bool { return list[i].ID >= id })
		if i == len(list) || list[i].ID != id {
			return -1
		}
		return i
	}
	key := searchKey{
		TreeID:      rootTreeObjectID,
		MinObjectID: firstFreeObjectID,
		MaxObjectID: lastFreeObjectID,
		MinType:     rootItemKey,
		MaxType:     rootBackrefKey,
		MaxOffset:   ^uint64(0),
		MaxTransID:  ^uint64(0),
	}
	err = treeSearch(fd, key, func(it searchItem) error {
		switch it.Type {
		case rootItemKey:
			i := get(it.ObjectID)
			if err := parseRootItem(it.Data, &list[i]); err != nil {
				return fmt.Errorf("subvolume %d: %w", it.ObjectID, err)
			}
			meta[i].hasRoot = true
		case rootBackrefKey:
			i := get(it.ObjectID)
			if meta[i].hasRef {
				return nil // a subvolume has one link; keep the first
			}
			ref, err := parseRootBackref(it.Data)
			if err != nil {
				return fmt.Errorf("subvolume %d: %w", it.ObjectID, err)
			}
			meta[i].hasRef = true
			list[i].ParentID, list[i].DirID, list[i].Name = it.Offset, ref.DirID, ref.Name
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	dirPaths := map[dirKey]string{}
	lookup := func(tree, ino uint64) (string, bool, error) {
		k := dirKey{tree, ino}
		if p, ok := dirPaths[k]; ok {
			return p, true, nil
		}
		p, err := inoPath(fd, tree, ino)
		if errors.Is(err, unix.ENOENT) {
			return "", false, nil // being deleted
		}
		if err != nil {
			return "", false, err
		}
		dirPaths[k] = p
		return p, true, nil
	}
	prefix, found, err := lookup(dirTree, st.Ino)
	if err != nil {
		return nil, err
	}
	if !found {
		// Removed since we opened it: listing from "" would list its
		// whole subvolume instead.
		return nil, unix.ENOENT
	}

	// fromDirTree is a subvolume's path from the root of dirTree, or
	// ok=false when it is not inside dirTree; memoised in the entries.
	var fromDirTree func(id uint64, depth int) (string, bool, error)
	fromDirTree = func(id uint64, depth int) (string, bool, error) {
		i := find(id)
		if i < 0 {
			return "", false, nil
		}
		e, m := &list[i], &meta[i]
		switch m.resolved {
		case 1:
			return e.Path, true, nil
		case 2:
			return "", false, nil
		}
		m.resolved = 2
		if !m.hasRef || !m.hasRoot || e.Flags&rootSubvolDead != 0 || depth > 4096 {
			return "", false, nil
		}
		var base string
		if e.ParentID != dirTree {
			p, ok, err := fromDirTree(e.ParentID, depth+1)
			if err != nil || !ok {
				return "", false, err
			}
			base = p
		}
		d, ok, err := lookup(e.ParentID, e.DirID)
		if err != nil || !ok {
			return "", false, err
		}
		e.Path, m.resolved = joinPath(base, d, e.Name), 1
		return e.Path, true, nil
	}

	// Order by path through small (path, index) pairs, then move each
	// record once into its place.
	type keyed struct {
		path string
		i    int
	}
	keys := make([]keyed, 0, len(list))
	for i := range list {
		id := list[i].ID
		if id == dirTree {
			continue
		}
		p, ok, err := fromDirTree(id, 0)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if prefix != "" {
			if !strings.HasPrefix(p, prefix+"/") {
				continue
			}
			p = p[len(prefix)+1:]
		}
		keys = append(keys, keyed{p, i})
	}
	slices.SortFunc(keys, func(a, b keyed) int { return strings.Compare(a.path, b.path) })
	// from[j] is the index of the record that goes to j: the listed
	// ones in order, then the others, a permutation applied by
	// following its cycles.
	from := make([]int, 0, len(list))
	used := make([]bool, len(list))
	for _, k := range keys {
		from = append(from, k.i)
		used[k.i] = true
	}
	for i := range list {
		if !used[i] {
			from = append(from, i)
		}
	}
	// Paths are set once every path is resolved: fromDirTree reads the
	// parents' full paths from the records.
	for _, k := range keys {
		list[k.i].Path = k.path
	}
	permute(list, from)
	return list[:len(keys):len(keys)], nil
}

// permute moves s[from[j]] to s[j] for every j, in place; from is a
// permutation of s's indices, and is used up.
func permute(s []Subvol, from []int) {
	for j := range from {
		if from[j] == j || from[j] < 0 {
			continue
		}
		tmp := s[j]
		k := j
		for {
			next := from[k]
			from[k] = -1
			if next == j {
				s[k] = tmp
				break
			}
			s[k] = s[next]
			k = next
		}
	}
}

// listUnprivileged walks down from fd: the subvolumes directly inside fd's
// subvolume (GET_SUBVOL_ROOTREF), those below fd's directory
// (INO_LOOKUP_USER answers EACCES for the others), then recursively inside
// each of them.
func listUnprivileged(fd int) ([]Subvol, error) {
	var out []Subvol
	var walk func(fd int, prefix string, depth int) error
	walk = func(fd int, prefix string, depth int) error {
		if depth > 4096 {
			return fmt.Errorf("%s: subvolumes nested too deep", prefix)
		}
		refs := new(getSubvolRootrefArgs)
		for {
			err := ioctl(fd, iocGetSubvolRootref, unsafe.Pointer(refs))
			if err != nil && err != unix.EOVERFLOW {
				return err
			}
			for _, r := range refs.RootRef[:refs.NumItems] {
				u := new(inoLookupUserArgs)
				u.DirID, u.TreeID = r.DirID, r.TreeID
				if lerr := ioctl(fd, iocInoLookupUser, unsafe.Pointer(u)); lerr != nil {
					if lerr == unix.EACCES || lerr == unix.ENOENT {
						continue // outside fd's directory, or not ours to see
					}
					return lerr
				}
				rel := path.Join(cString(u.Path[:]), cString(u.Name[:]))
				cfd, oerr := openat(fd, rel)
				if oerr != nil {
					if oerr == unix.EACCES || oerr == unix.ENOENT || oerr == unix.EPERM {
						continue
					}
					return fmt.Errorf("%s: %w", path.Join(prefix, rel), oerr)
				}
				s, ierr := infoFD(cfd)
				if ierr == nil && s.ID != r.TreeID {
					// Something else is mounted or was renamed there meanwhile.
					unix.Close(cfd)
					continue
				}
				if ierr == nil {
					s.Path = path.Join(prefix, rel)
					out = append(out, s)
					ierr = walk(cfd, s.Path, depth+1)
				}
				unix.Close(cfd)
				if ierr != nil {
					return ierr
				}
			}
			if err != unix.EOVERFLOW {
				return nil
			}
		}
	}
	if err := walk(fd, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

// sortByPath returns subs ordered by Path. It sorts small (path, index)
// pairs and copies each record once, rather than swapping the large
// records themselves thousands of times.
func sortByPath(subs []Subvol) []Subvol {
	sorted := true
	for i := 1; i < len(subs) && sorted; i++ {
		sorted = subs[i-1].Path <= subs[i].Path
	}
	if sorted {
		return subs
	}
	type key struct {
		path string
		i    int
	}
	keys := make([]key, len(subs))
	for i := range subs {
		keys[i] = key{subs[i].Path, i}
	}
	slices.SortFunc(keys, func(a, b key) int { return strings.Compare(a.path, b.path) })
	out := make([]Subvol, len(subs))
	for i, k := range keys {
		out[i] = subs[k.i]
	}
	return out
}

func openat(dirfd int, rel string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}
