package bss3put

import (
	"fmt"
	"strconv"

	"github.com/alecthomas/kong"
)

// zstdLevel is the --zstd[=LEVEL] flag: 0 when absent, the default level 3
// when given without a value.
type zstdLevel int

// Decode reads the optional level (kong).
func (z *zstdLevel) Decode(ctx *kong.DecodeContext) error {
	if ctx.Scan.Peek().Type != kong.FlagValueToken {
		*z = 3
		return nil
	}
	tok, err := ctx.Scan.PopValue("level")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(fmt.Sprint(tok.Value))
	if err != nil || n < 1 || n > 22 {
		return fmt.Errorf("--zstd level %v: want 1 to 22", tok.Value)
	}
	*z = zstdLevel(n)
	return nil
}

// IsBool lets --zstd stand without a value (kong).
func (*zstdLevel) IsBool() bool { return true }
