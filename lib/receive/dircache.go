package receive

import (
	"strings"

	"golang.org/x/sys/unix"
)

// dirCacheMax bounds the directories a DirTree keeps open. A full
// stream visits inodes in number order, which for a tree made file by
// file in many directories means a different directory for each one: a
// cache smaller than the tree's directories misses on nearly every
// command, and each miss costs a path walk, and the Alike checks of the
// directory again. So the cache holds thousands, bounded by the
// descriptors the process may open (dirCacheLimit).
const (
	dirCacheMax = 4096
	dirCacheMin = 64
)

// dirCacheSize, when set, is the bound instead of dirCacheLimit's
// (tests set it to reach eviction with a few directories).
var dirCacheSize int

// dirCacheLimit is dirCacheMax, or half the descriptors the process may
// open where that is less.
func dirCacheLimit() int {
	if dirCacheSize > 0 {
		return dirCacheSize
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil {
		return dirCacheMin
	}
	return int(max(dirCacheMin, min(dirCacheMax, (rl.Cur-64)/2)))
}

// dirCache holds open directory descriptors by path, evicting the least
// recently used: the one a command just looked up is never the one a
// second lookup of that command evicts. Lookups, insertions and
// evictions cost O(1); forgetting a path costs a scan of the cache only
// when a directory below it is cached.
type dirCache struct {
	max   int
	byDir map[string]*dirEntry
	// below counts, for each path, the cached directories strictly
	// below it.
	below map[string]int
	// lru is the sentinel of the recency list: lru.next the most
	// recently used, lru.prev the least.
	lru dirEntry
}

type dirEntry struct {
	dir        string
	fd         int
	prev, next *dirEntry
	// plain: whether the directory gives a new inode nothing of its own
	// (DirTree.Alike); 0 not known yet.
	plain int8
}

func (c *dirCache) init(max int) {
	c.max = max
	c.byDir = make(map[string]*dirEntry)
	c.below = make(map[string]int)
	c.lru.next, c.lru.prev = &c.lru, &c.lru
}

func (c *dirCache) unlink(e *dirEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (c *dirCache) front(e *dirEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

func (c *dirCache) get(dir string) (int, bool) {
	e, ok := c.byDir[dir]
	if !ok {
		return -1, false
	}
	c.unlink(e)
	c.front(e)
	return e.fd, true
}

// entry is dir's entry, nil when not cached.
func (c *dirCache) entry(dir string) *dirEntry { return c.byDir[dir] }

func (c *dirCache) put(dir string, fd int) {
	if old := c.byDir[dir]; old != nil {
		c.drop(old)
	}
	if len(c.byDir) >= c.max {
		c.drop(c.lru.prev)
	}
	e := &dirEntry{dir: dir, fd: fd}
	c.byDir[dir] = e
	c.front(e)
	c.count(dir, 1)
}

// count adds n to the count of every directory above dir.
func (c *dirCache) count(dir string, n int) {
	for i := strings.LastIndexByte(dir, '/'); i > 0; i = strings.LastIndexByte(dir[:i], '/') {
		p := dir[:i]
		if v := c.below[p] + n; v > 0 {
			c.below[p] = v
		} else {
			delete(c.below, p)
		}
	}
}

func (c *dirCache) drop(e *dirEntry) {
	unix.Close(e.fd)
	c.unlink(e)
	delete(c.byDir, e.dir)
	c.count(e.dir, -1)
}

// forget drops path and every directory below it: after a rename or
// removal of path, their paths name something else, or nothing.
func (c *dirCache) forget(path string) {
	if e := c.byDir[path]; e != nil {
		c.drop(e)
	}
	if c.below[path] == 0 {
		return
	}
	for d, e := range c.byDir {
		if under(d, path) {
			c.drop(e)
		}
	}
}

func (c *dirCache) clear() {
	for _, e := range c.byDir {
		c.drop(e)
	}
}
