package inventory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/buttersink/buttersink/lib/hint"
	"github.com/buttersink/buttersink/lib/jsonl"
	"github.com/buttersink/buttersink/lib/location"
	"github.com/buttersink/buttersink/lib/objstore/objopts"
	"github.com/buttersink/buttersink/lib/snapshot"
)

// listObjects lists the streams stored below an s3:// or file://
// directory (or one snapshot's), in-process when the command set
// Options.ListObjects, else through bss3ls.
func listObjects(ctx context.Context, loc location.Location, opts Options) ([]snapshot.Snapshot, error) {
	if opts.ListObjects != nil {
		return opts.ListObjects(ctx, loc, opts.Objects)
	}
	return listObjectsCommand(ctx, loc, opts.Objects, os.Stderr)
}

// helperName is the command that lists object stores for List.
const helperName = "bss3ls"

// helperPath finds bss3ls beside the running executable (the same
// release), else in $PATH.
func helperPath() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), helperName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(helperName)
	if err != nil {
		return "", hint.Wrap(fmt.Errorf("%s not found beside %s or in PATH", helperName, filepath.Base(os.Args[0])),
			"s3:// and file:// locations are listed by bss3ls; install it with the other commands (make install)")
	}
	return p, nil
}

// listObjectsCommand runs `bss3ls [S3 flags] -- LOCATION` and reads its
// JSON Lines. Its messages are passed on to stderr; its error line
// becomes the error (with its hint), so a failure reads as the caller's
// own.
func listObjectsCommand(ctx context.Context, loc location.Location, opts objopts.Options, stderr io.Writer) ([]snapshot.Snapshot, error) {
	bin, err := helperPath()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	args := append(opts.Args(), "--", loc.String())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", loc, helperName, err)
	}
	recs, rerr := jsonl.ReadAll[snapshot.Snapshot](bufio.NewReaderSize(out, 64<<10), helperName)
	if rerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	msg, hnt := helperError(&errBuf, stderr)
	switch {
	case werr != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case werr != nil && msg != "":
		err = errors.New(msg)
		if hnt != "" {
			err = hint.Wrap(err, hnt)
		}
		return nil, err
	case werr != nil:
		return nil, fmt.Errorf("%s: %s: %w", loc, helperName, werr)
	case rerr != nil:
		return nil, fmt.Errorf("%s: %w", loc, rerr)
	}
	return recs, nil
}

// helperError forwards bss3ls's stderr, except its "bss3ls: error:" and
// "bss3ls: hint:" lines, which it returns.
func helperError(b *bytes.Buffer, stderr io.Writer) (msg, hnt string) {
	const errPrefix, hintPrefix = helperName + ": error: ", helperName + ": hint: "
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, errPrefix) && msg == "":
			msg = strings.TrimSuffix(strings.TrimPrefix(line, errPrefix), "\n")
		case strings.HasPrefix(line, hintPrefix) && hnt == "":
			hnt = strings.TrimSuffix(strings.TrimPrefix(line, hintPrefix), "\n")
		default:
			_, _ = io.WriteString(stderr, line)
		}
	}
	return msg, hnt
}
