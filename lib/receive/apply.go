package receive

import (
	"errors"

	"github.com/buttersink/buttersink/lib/sendstream"
)

// Applier carries out a stream's commands, one at a time, on Tree. The
// caller feeds it every command after the stream's first (SUBVOL or
// SNAPSHOT, which the caller handled with Dest.Begin), in order, from
// sendstream.Reader's OnCommand hook; END calls Tree.End.
type Applier struct {
	Tree Tree
	// Self is the subvolume being received: a CLONE naming it clones
	// within the tree.
	Self ID
}

// Command decodes c, checks its attributes and carries it out.
func (a *Applier) Command(c *sendstream.Command) error {
	return errors.ErrUnsupported // TODO(apply-core)
}
