package sendstream

import (
	"fmt"

	"github.com/buttersink/buttersink/lib/names"
)

// OnCommand makes the reader call fn for every command once its CRC
// matched and before any of its bytes are handed out, the first command of
// each stream included (s.Subvol is not yet filled in for that one, nor
// for commands verified along with it: use the command itself), and a
// resumed stream's RESUME command (type CmdResume). An error
// from fn stops the reader there: the command is never handed out, and the
// error is sticky. To make the reader's users treat it as a fault of the
// input, return an *Error.
func (r *Reader) OnCommand(fn func(s *Stream, c *Command) error) {
	r.onCommand = fn
}

// PathError is a command whose path attribute names something that is not
// a clean path below the subvolume being received.
type PathError struct {
	Cmd  string // command name, as CmdName gives it
	Attr string // PATH, PATH_TO, PATH_LINK or CLONE_PATH
	Err  *names.Error
}

func (e *PathError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Cmd, e.Attr, e.Err)
}

func (e *PathError) Unwrap() error { return e.Err }

// CheckPaths checks every path a command carries with names.StreamPath:
// none may be absolute or hold an empty, "." or ".." component (or a NUL).
// Every occurrence of an attribute is checked, since a receiver may take
// the first or the last of two. A SYMLINK's PATH_LINK is its target, bytes
// stored and never followed by the receiver, and is not checked; LINK's
// PATH_LINK, the existing name, is.
func CheckPaths(c *Command) error {
	return c.Attrs(func(t uint16, v []byte) error {
		var attr string
		switch t {
		case AttrPath:
			attr = "PATH"
		case AttrPathTo:
			attr = "PATH_TO"
		case AttrPathLink:
			if c.Type == CmdSymlink {
				return nil
			}
			attr = "PATH_LINK"
		case AttrClonePath:
			attr = "CLONE_PATH"
		default:
			return nil
		}
		if err := names.StreamPath(string(v)); err != nil {
			return &PathError{Cmd: CmdName(c.Type), Attr: attr, Err: err.(*names.Error)}
		}
		return nil
	})
}
