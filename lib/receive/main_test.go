package receive

import (
	"os"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

func TestMain(m *testing.M) {
	// A small directory cache, so that tests reach its eviction with a
	// few hundred directories (TestDirCacheLimit checks the real bound).
	dirCacheSize = 128
	os.Exit(harness.Main(m))
}
