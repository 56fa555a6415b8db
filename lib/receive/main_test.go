package receive

import (
	"os"
	"testing"

	"github.com/buttersink/buttersink/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
