// Package stage encodes send streams on their way into an object store and
// decodes them on the way out: zstd compression, age encryption and user
// filter commands (e.g. gpg), composed as writers (encoding) and readers
// (decoding).
//
// Encoding order is fixed: zstd, then age, then the filters in the order
// given; decoding undoes them in reverse. Every encoder's Close flushes its
// stage and never closes the writer underneath; the first error sticks.
// The bytes each stage produces are exactly what the stock tools read
// (`zstd -d`, `age -d`), so objects can be restored without buttersink.
package stage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Filter is a user command run through `sh -c`, reading stdin and writing
// stdout; its stderr is passed through.
type Filter struct {
	// Name is what the key records ("f-<name>").
	Name string
	Cmd  string
}

// NewFilter names a filter command after its program: "gpg -e -r me" → gpg.
func NewFilter(cmd string) (Filter, error) {
	fields := strings.Fields(cmd)
	if len(fields) == 0 {
		return Filter{}, fmt.Errorf("empty filter command")
	}
	prog := fields[0]
	// Skip environment assignments such as "LC_ALL=C gpg ...".
	for i := 0; i < len(fields)-1 && strings.Contains(fields[i], "="); i++ {
		prog = fields[i+1]
	}
	var b strings.Builder
	for _, c := range strings.ToLower(path.Base(prog)) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-':
			b.WriteRune(c)
		case c == '_' || c == '.':
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 32 {
		name = name[:32]
	}
	if name == "" {
		name = "cmd"
	}
	return Filter{Name: name, Cmd: cmd}, nil
}

// Encoding is the set of stages applied when storing.
type Encoding struct {
	// Zstd compresses at ZstdLevel (1..22; 0 = default 3).
	Zstd      bool
	ZstdLevel int
	// Recipients encrypt with age when not empty, under AgeKey (a fresh
	// one when nil).
	Recipients []age.Recipient
	AgeKey     *AgeKey
	Filters    []Filter
	// Stderr receives the filters' stderr.
	Stderr io.Writer
}

// Stages names the stages in the order applied, as keys record them.
func (e Encoding) Stages() []string {
	var s []string
	if e.Zstd {
		s = append(s, Zstd)
	}
	if len(e.Recipients) > 0 {
		s = append(s, Age)
	}
	for _, f := range e.Filters {
		s = append(s, FilterStage(f.Name))
	}
	return s
}

// Encoder writes raw stream bytes through the stages into the writer
// underneath.
type Encoder struct {
	head    io.Writer
	closers []io.Closer // in data order: zstd, age, filters
	err     error
}

// NewEncoder starts encoding into w. Close it to flush every stage.
func NewEncoder(w io.Writer, e Encoding) (*Encoder, error) {
	enc := &Encoder{}
	cur := w
	// Build from the far end back to the first stage.
	var closers []io.Closer
	for i := len(e.Filters) - 1; i >= 0; i-- {
		fw, err := startFilterWriter(cur, e.Filters[i], e.Stderr)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, err
		}
		closers = append([]io.Closer{fw}, closers...)
		cur = fw
	}
	if len(e.Recipients) > 0 {
		k := e.AgeKey
		if k == nil {
			nk, err := NewAgeKey(e.Recipients)
			if err != nil {
				for _, c := range closers {
					c.Close()
				}
				return nil, err
			}
			k = &nk
		}
		aw, err := newAgeWriter(cur, *k)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, err
		}
		closers = append([]io.Closer{aw}, closers...)
		cur = aw
	}
	if e.Zstd {
		level := e.ZstdLevel
		if level == 0 {
			level = 3
		}
		zw, err := zstd.NewWriter(cur, zstdOptions(level, runtime.GOMAXPROCS(0))...)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		closers = append([]io.Closer{zw}, closers...)
		cur = zw
	}
	enc.head, enc.closers = cur, closers
	return enc, nil
}

func (e *Encoder) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.head.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// zstdOptions are the encoder's settings for a zstd level, on procs
// cores.
//
// Literals are entropy-coded also in blocks without a match, as zstd -3
// does: at the fast levels klauspost/compress would otherwise store such
// blocks (text without repeats, like base64) raw, 10-25% bigger.
//
// At levels up to 3 the stream is cut into jobs compressed on every core
// at once, like zstd -T0, into one frame. A job is 4 windows, and about
// eight jobs are in flight (queued, compressing, being written), so the
// window sets the encoder's memory: with 256 KiB (zstd -3 uses 2 MiB,
// klauspost 8 MiB) it takes about 25 MiB and bss3put stays within
// n × part size + 64 MiB. On system files (/usr) the output is 1.3%
// bigger than with a 512 KiB window, which took 23 MiB more; random and
// base64 data come out the same. Higher levels, asked for their ratio,
// keep their 8 MiB window and compress on one core beside the writer.
//
// The jobs are cut at fixed input offsets whatever the number of workers
// and the sizes written, so the output depends on the level alone: a
// resumed upload re-encodes to the very bytes of the interrupted one, also
// on another machine. On one core, two workers keep that true.
func zstdOptions(level, procs int) []zstd.EOption {
	o := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(max(procs, 2)),
		zstd.WithAllLitEntropyCompression(true),
	}
	if level <= 3 {
		o = append(o, zstd.WithConcurrentBlocks(true), zstd.WithWindowSize(256<<10))
	}
	return o
}

// ExtraMemory is what the stages need beyond the 64 MiB that bss3put
// allows itself besides its part buffers: zstd above level 3 keeps an
// 8 MiB window and match tables for it (measured: 30 MiB more than level
// 3 at level 19).
func (e Encoding) ExtraMemory() int64 {
	if e.Zstd && e.ZstdLevel > 3 {
		return 40 << 20
	}
	return 0
}

// Close flushes the stages in data order and waits for the filters. It
// does not close the writer underneath.
func (e *Encoder) Close() error {
	for _, c := range e.closers {
		if err := c.Close(); err != nil && e.err == nil {
			e.err = err
		}
	}
	e.closers = nil
	return e.err
}

// Abort stops the stages without flushing. When it returns, no stage
// writes to the writer underneath any more, so the caller may release
// what that writer holds (an aborted upload hands its part buffers back
// for reuse). The zstd encoder compresses and writes in goroutines of its
// own, which keep writing after the last Write returned: Abort waits for
// them. Filters are killed first, so that those goroutines, blocked
// writing to a filter whose output is no longer read, fail instead.
func (e *Encoder) Abort() {
	for _, c := range e.closers {
		if fw, ok := c.(*filterWriter); ok {
			fw.signal()
		}
	}
	for _, c := range e.closers {
		if zw, ok := c.(*zstd.Encoder); ok {
			// Reset stops the encoder's workers and waits for them,
			// dropping what was not written yet.
			zw.Reset(io.Discard)
		}
	}
	for _, c := range e.closers {
		if fw, ok := c.(*filterWriter); ok {
			fw.kill()
		}
	}
	e.closers = nil
	if e.err == nil {
		e.err = errAborted
	}
}

var errAborted = errors.New("encoder aborted")

// Decoding is what undoing the stages of an object needs.
type Decoding struct {
	// Identities decrypt age.
	Identities []age.Identity
	// Filters are the inverse commands of the stored object's filters, in
	// the order the filters were given when storing; they run in reverse.
	Filters []string
	Stderr  io.Writer
}

// ErrWrongIdentity is the cause when none of the age identities fits.
var ErrWrongIdentity = errors.New("none of the age identities can decrypt it")

// NewDecoder reads the raw stream out of an object encoded with stages.
// Closing it stops the filters; it does not close r.
func NewDecoder(r io.Reader, stages []string, d Decoding) (io.ReadCloser, error) {
	nf := 0
	for _, s := range stages {
		if IsFilterStage(s) {
			nf++
		}
	}
	if nf != len(d.Filters) {
		return nil, fmt.Errorf("object has %d filter stage(s), %d inverse --filter given", nf, len(d.Filters))
	}
	dec := &decoder{r: r}
	fi := len(d.Filters) - 1
	for i := len(stages) - 1; i >= 0; i-- {
		switch s := stages[i]; {
		case s == Zstd:
			zr, err := zstd.NewReader(dec.r, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(false))
			if err != nil {
				dec.Close()
				return nil, fmt.Errorf("zstd: %w", err)
			}
			dec.r = zr
			dec.closers = append(dec.closers, closerFunc(func() error { zr.Close(); return nil }))
		case s == Age:
			if len(d.Identities) == 0 {
				dec.Close()
				return nil, fmt.Errorf("object is age-encrypted and no --age-identity was given")
			}
			ar, err := age.Decrypt(dec.r, d.Identities...)
			if err != nil {
				dec.Close()
				var nm *age.NoIdentityMatchError
				if errors.As(err, &nm) {
					return nil, ErrWrongIdentity
				}
				return nil, fmt.Errorf("age: %w", err)
			}
			dec.r = ar
		case IsFilterStage(s):
			fr, err := startFilterReader(dec.r, Filter{Name: s[2:], Cmd: d.Filters[fi]}, d.Stderr)
			if err != nil {
				dec.Close()
				return nil, err
			}
			fi--
			dec.r = fr
			dec.closers = append(dec.closers, fr)
		default:
			dec.Close()
			return nil, fmt.Errorf("unknown stage %q", s)
		}
	}
	return dec, nil
}

type decoder struct {
	r       io.Reader
	closers []io.Closer
}

func (d *decoder) Read(p []byte) (int, error) { return d.r.Read(p) }

func (d *decoder) Close() error {
	var first error
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	d.closers = nil
	return first
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// ParseRecipients reads age recipients given on the command line and in
// recipient files (one per line, # comments).
func ParseRecipients(args []string, files []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, a := range args {
		rs, err := age.ParseRecipients(strings.NewReader(a))
		if err != nil {
			return nil, fmt.Errorf("age recipient %q: %v", a, err)
		}
		out = append(out, rs...)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("age recipients file: %w", err)
		}
		rs, err := age.ParseRecipients(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("age recipients file %s: %v", f, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// ParseIdentities reads age identity files.
func ParseIdentities(files []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("age identity file: %w", err)
		}
		ids, err := age.ParseIdentities(fh)
		fh.Close()
		if err != nil {
			// The parser's message may quote the file's content: keep it out.
			return nil, fmt.Errorf("age identity file %s: not a valid age identity file", f)
		}
		out = append(out, ids...)
	}
	return out, nil
}
