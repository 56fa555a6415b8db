package receive

import "golang.org/x/sys/unix"

// dirCacheSize bounds the directories a DirTree keeps open. A send
// stream works through its directories one after the other (and the
// orphans in the root), so a few dozen cover its locality.
const dirCacheSize = 128

// dirCache holds open directory descriptors by path, evicting the least
// recently used: the one a command just looked up is never the one a
// second lookup of that command evicts.
type dirCache struct {
	max   int
	tick  uint64
	byDir map[string]*dirEntry
}

type dirEntry struct {
	fd   int
	used uint64
	// plain: whether the directory gives a new inode nothing of its own
	// (DirTree.Alike); 0 not known yet.
	plain int8
}

func (c *dirCache) init(max int) {
	c.max = max
	c.byDir = make(map[string]*dirEntry, max)
}

func (c *dirCache) get(dir string) (int, bool) {
	e, ok := c.byDir[dir]
	if !ok {
		return -1, false
	}
	c.tick++
	e.used = c.tick
	return e.fd, true
}

// entry is dir's entry, nil when not cached.
func (c *dirCache) entry(dir string) *dirEntry { return c.byDir[dir] }

func (c *dirCache) put(dir string, fd int) {
	if len(c.byDir) >= c.max {
		var oldest string
		var min uint64 = ^uint64(0)
		for d, e := range c.byDir {
			if e.used < min {
				oldest, min = d, e.used
			}
		}
		unix.Close(c.byDir[oldest].fd)
		delete(c.byDir, oldest)
	}
	c.tick++
	c.byDir[dir] = &dirEntry{fd: fd, used: c.tick}
}

// forget drops path and every directory below it: after a rename or
// removal of path, their paths name something else, or nothing.
func (c *dirCache) forget(path string) {
	for d, e := range c.byDir {
		if d == path || under(d, path) {
			unix.Close(e.fd)
			delete(c.byDir, d)
		}
	}
}

func (c *dirCache) clear() {
	for d, e := range c.byDir {
		unix.Close(e.fd)
		delete(c.byDir, d)
	}
}
