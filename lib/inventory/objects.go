package inventory

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/buttersink/buttersink/lib/child"
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
	return listObjectsCommand(ctx, loc, opts.Objects, opts.All, os.Stderr)
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
	p, err := child.LookPath(helperName)
	if err != nil {
		return "", hint.Wrap(fmt.Errorf("%s not found beside %s or in PATH", helperName, filepath.Base(os.Args[0])),
			"s3:// and file:// locations are listed by bss3ls; install it with the other commands (make install)")
	}
	return p, nil
}

// listObjectsCommand runs `bss3ls [S3 flags] -- LOCATION` and reads its
// JSON Lines. Its messages are passed on to stderr as they come; its error
// line becomes the error (with its hint), so a failure reads as the
// caller's own.
func listObjectsCommand(ctx context.Context, loc location.Location, opts objopts.Options, all bool, stderr io.Writer) ([]snapshot.Snapshot, error) {
	bin, err := helperPath()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	args := append([]string{bin}, opts.Args()...)
	if all {
		args = append(args, "--all")
	}
	cmd := child.Command(helperName, append(args, "--", loc.String())...)
	failure := hint.Collector{Pass: func(l string) { io.WriteString(stderr, l+"\n") }}
	cmd.StderrLine = func(l string) {
		if !failure.Take(l) {
			io.WriteString(stderr, l+"\n")
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	recs, rerr := jsonl.ReadAll[snapshot.Snapshot](bufio.NewReaderSize(out, 64<<10), helperName)
	if rerr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	switch {
	case werr != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case werr != nil && failure.Err() != nil:
		return nil, failure.Err()
	case werr != nil:
		return nil, fmt.Errorf("%s: %w", loc, werr)
	case rerr != nil:
		return nil, fmt.Errorf("%s: %w", loc, rerr)
	}
	return recs, nil
}
