// How bsrecv --tar works: the streams on stdin (a full stream and the
// incrementals that follow it, each the child of the one before) are
// applied in order, in place, into one temporary directory with the
// native applier (lib/receive), which needs neither btrfs nor root; the
// final state is then written to stdout as a pax archive (lib/tarball)
// whose names start with the last snapshot's name. The temporary
// directory is removed at the end, whatever happened. On any error the
// archive is left without its end blocks, so that tar reports it cut
// short rather than taking it for whole.

package bsrecv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/cli"
	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/names"
	"github.com/buttersink/buttersink/lib/pathmatch"
	"github.com/buttersink/buttersink/lib/receive"
	"github.com/buttersink/buttersink/lib/sendstream"
	"github.com/buttersink/buttersink/lib/tarball"
)

// TarOptions are bsrecv --tar's arguments.
type TarOptions struct {
	// TmpDir is where the temporary directory is made ("": $TMPDIR).
	TmpDir           string
	Include, Exclude []string
}

// RunTar applies the streams on env.Stdin and writes the archive of the
// result to env.Stdout.
func RunTar(ctx context.Context, env *cli.Env, opts TarOptions) error {
	filter, err := pathmatch.New(opts.Include, opts.Exclude)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	if cli.IsTerminal(env.Stdout) {
		return hint.Wrap(errors.New("refusing to write an archive to a terminal"), "pipe it to tar, or redirect it to a file")
	}
	tmp, err := os.MkdirTemp(opts.TmpDir, "bsrecv-tar-")
	if err != nil {
		return hint.Wrap(fmt.Errorf("temporary directory: %w", err), "choose another with --tmpdir DIR")
	}
	defer removeTree(env, tmp)
	// tmp (mode 0700: only this user may see inside while the restore
	// is incomplete) holds the tree, the snapshot's root, and beside it
	// the stash of an incremental's parent files (tarparent.go).
	treeDir := filepath.Join(tmp, "tree")
	if err := os.Mkdir(treeDir, 0o700); err != nil {
		return err
	}
	root, err := unix.Open(treeDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)

	growPipe(env.Stdin)
	in := newCtxReader(ctx, env.Stdin)
	defer in.Close()
	ch := &chain{root: root, tmp: tmp, ov: newOverlay(filter), what: "a tar restore"}
	defer ch.close()
	r := sendstream.NewReader(in)
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := ch.begin(s.Subvol); err != nil {
			return err
		}
		if err := s.Commands(ch.command); err != nil {
			return err
		}
		if !ch.ended {
			return fmt.Errorf("stream %s: no END", ch.name)
		}
		env.Log.Debug("applied", "snapshot", ch.name, "bytes", s.Size())
		n++
	}

	bw := bufio.NewWriterSize(ctxWriter{ctx, env.Stdout}, 1<<20)
	tw := tarball.NewWriter(bw)
	opt := tarball.Options{Prefix: ch.name, Adjust: ch.ov.adjust}
	if filter != nil {
		opt.Select, opt.Prune = filter.Match, filter.Excluded
	}
	if err := ch.close(); err != nil {
		return err
	}
	st, err := tarball.WriteTree(tw, root, opt)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		// No end blocks: the archive must not look whole.
		return fmt.Errorf("writing the archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing stdout: %w", err)
	}
	if st.Sockets > 0 {
		env.Log.Warn(fmt.Sprintf("%d sockets left out of the archive: tar cannot hold them", st.Sockets))
	}
	if env.Verbose > 0 {
		env.Log.Info(fmt.Sprintf("%s: %d streams applied, %d entries, %d bytes of data archived", ch.name, n, st.Entries, st.Bytes))
	}
	return nil
}

// chain applies a chain of streams into one directory, in place.
type chain struct {
	root int
	tmp  string
	ov   *overlay
	tree *overlayTree
	n    int
	ap   *receive.Applier
	// prev is the snapshot the last stream made: the next one must be
	// its incremental.
	prev  *receive.ID
	name  string
	ended bool
	// what names the restore in messages.
	what string
}

func (ch *chain) command(c *sendstream.Command) error {
	if err := ch.ap.Command(c); err != nil {
		return fmt.Errorf("%s: %w", ch.name, err)
	}
	if c.Type == sendstream.CmdEnd {
		ch.ended = true
	}
	return nil
}

// begin checks that a stream continues the chain and makes its Tree.
func (ch *chain) begin(h sendstream.Head) error {
	if err := names.Snapshot(h.Path); err != nil {
		return fmt.Errorf("stream %v", err)
	}
	name := path.Base(h.Path)
	id := receive.ID{UUID: h.UUID, CTransID: h.CTransID}
	var parent *receive.ID
	if h.Snapshot {
		parent = &receive.ID{UUID: h.CloneUUID, CTransID: h.CloneCTransID}
	}
	switch {
	case ch.prev == nil && parent != nil:
		return hint.Wrap(fmt.Errorf("%s: an incremental stream (of parent %s) first: %s starts from a full stream", name, parent.UUID.Canonical(), ch.what),
			"send the full stream first, then the incrementals in order (bss3get names them so)")
	case ch.prev != nil && parent == nil:
		return fmt.Errorf("%s: a full stream after %s: %s takes one chain, each stream the incremental of the one before", name, ch.name, ch.what)
	case ch.prev != nil && *parent != *ch.prev:
		return fmt.Errorf("%s: the incremental of %s (ctransid %d), not of %s, the stream before it", name, parent.UUID.Canonical(), parent.CTransID, ch.name)
	}
	if err := ch.close(); err != nil {
		return err
	}
	dt, err := receive.NewDirTree(ch.root)
	if err != nil {
		return err
	}
	dt.Self = id
	ch.tree = &overlayTree{DirTree: dt, ov: ch.ov}
	if parent != nil {
		ch.n++
		if ch.tree.parent, err = newParentView(*parent, stashDir(ch.tmp, ch.n)); err != nil {
			return err
		}
	}
	ch.ap = &receive.Applier{Tree: ch.tree, Self: id}
	ch.prev, ch.name, ch.ended = &id, name, false
	return nil
}

func (ch *chain) close() error {
	if ch.tree == nil {
		return nil
	}
	ch.tree.Close()
	var err error
	if ch.tree.parent != nil {
		err = ch.tree.parent.close()
	}
	ch.tree = nil
	return err
}

// ctxWriter stops the archive at an interrupt, before its end.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// removeTree removes the temporary directory, whatever modes the stream
// left in it (root is not stopped by them; the overlay keeps a user's
// own bits).
func removeTree(env *cli.Env, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		env.Log.Error("could not remove the temporary directory; remove it by hand", "path", dir, "error", err)
	}
}
