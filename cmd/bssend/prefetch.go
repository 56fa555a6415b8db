package bssend

import (
	"bytes"
	"context"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/btrfs"
)

// prefetch starts reading ahead of the kernel's send of j (lib/btrfs
// Prefetch) and returns what stops it, once the send is over. Its errors
// are only logged: the send never depends on it.
func (s *sender) prefetch(ctx context.Context, j job) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := newWchar()
	if err != nil {
		s.env.Log.Debug("no prefetch", "snapshot", j.label, "error", err)
		cancel()
		return func() {}
	}
	var ram uint64
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		ram = uint64(si.Totalram) * uint64(si.Unit)
	}
	o := btrfs.PrefetchOptions{
		Parent: j.parent, Window: btrfs.PrefetchWindow(ram),
		Written: w.written, Compressed: s.flags&btrfs.Compressed != 0,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.close()
		st, err := btrfs.Prefetch(ctx, j.path, o)
		if err != nil {
			s.env.Log.Debug("prefetch stopped", "snapshot", j.label, "error", err)
		}
		s.env.Log.Debug("prefetched", "snapshot", j.label, "bytes", st.Bytes, "files", st.Files, "ahead", st.Ahead, "window", o.Window)
	}()
	return func() {
		cancel()
		<-done
	}
}

// wchar reads the bytes this process has written (/proc/self/io), the
// kernel's send included, which writes the stream from our thread
// whether into stdout or into a pipe of ours: the stream's progress,
// which bounds how far the prefetch runs ahead.
type wchar struct {
	fd    int
	start int64
	buf   [512]byte
}

func newWchar() (*wchar, error) {
	fd, err := unix.Open("/proc/self/io", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	w := &wchar{fd: fd}
	if w.start, err = w.read(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return w, nil
}

func (w *wchar) read() (int64, error) {
	n, err := unix.Pread(w.fd, w.buf[:], 0)
	if err != nil {
		return 0, err
	}
	return parseWchar(w.buf[:n])
}

// written is the stream's progress; on an error, none (the prefetch then
// stops at its window).
func (w *wchar) written() int64 {
	n, err := w.read()
	if err != nil {
		return 0
	}
	return n - w.start
}

func (w *wchar) close() { unix.Close(w.fd) }

// parseWchar finds the "wchar: N" line of /proc/PID/io.
func parseWchar(b []byte) (int64, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("wchar: ")); ok {
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, unix.ENOENT
}
