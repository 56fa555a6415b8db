package receive

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirCacheLimit: the bound without the tests' override follows the
// descriptors the process may open.
func TestDirCacheLimit(t *testing.T) {
	saved := dirCacheSize
	dirCacheSize = 0
	defer func() { dirCacheSize = saved }()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	got := dirCacheLimit()
	if got < dirCacheMin || got > dirCacheMax || uint64(got) > max(dirCacheMin, (rl.Cur-64)/2) {
		t.Errorf("limit %d with %d descriptors", got, rl.Cur)
	}
}

// dupFD is a descriptor the cache may own and close.
func dupFD(t *testing.T) int {
	fd, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestDirCacheModel runs random puts, gets and forgets against a plain
// model: same entries, same evictions (least recently used first), no
// descriptor leaked or kept after its entry went.
func TestDirCacheModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	names := []string{"a", "a/b", "a/b/c", "a/bc", "a/b/c/d", "b", "b/a", "ab", "a/b/cd"}
	const max = 4
	var c dirCache
	c.init(max)
	var model []string // most recently used last
	fds := map[string]int{}
	for i := range 5000 {
		n := names[rng.Intn(len(names))]
		switch rng.Intn(3) {
		case 0:
			if _, ok := c.get(n); ok {
				model = slices.DeleteFunc(model, func(s string) bool { return s == n })
				model = append(model, n)
			}
			if _, ok := c.get(n); !ok {
				fd := dupFD(t)
				c.put(n, fd)
				fds[n] = fd
				if len(model) == max {
					model = model[1:]
				}
				model = append(model, n)
			}
		case 1:
			if _, ok := c.get(n); ok {
				model = slices.DeleteFunc(model, func(s string) bool { return s == n })
				model = append(model, n)
			}
		case 2:
			c.forget(n)
			model = slices.DeleteFunc(model, func(s string) bool { return s == n || under(s, n) })
		}
		var got []string
		for e := c.lru.prev; e != &c.lru; e = e.prev {
			got = append(got, e.dir)
		}
		if !slices.Equal(got, model) || len(c.byDir) != len(model) {
			t.Fatalf("step %d: cache %v, want %v", i, got, model)
		}
		for p, v := range c.below {
			want := 0
			for _, d := range model {
				if under(d, p) {
					want++
				}
			}
			if v != want {
				t.Fatalf("step %d: %d counted below %q, want %d", i, v, p, want)
			}
		}
	}
	c.clear()
	if len(c.byDir) != 0 || len(c.below) != 0 || c.lru.next != &c.lru {
		t.Fatal("cache not empty after clear")
	}
	for n, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("%s: descriptor %d still open", n, fd)
		}
	}
}

// BenchmarkDirCacheForget: forgetting a name with nothing cached below it
// does not scan a full cache.
func BenchmarkDirCacheForget(b *testing.B) {
	var c dirCache
	c.init(dirCacheMax)
	for i := range dirCacheMax {
		c.put(fmt.Sprintf("d%d/%s", i, strings.Repeat("x", 20)), -1)
	}
	for b.Loop() {
		c.forget("d1/file")
	}
}
