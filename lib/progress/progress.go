// Package progress draws a one-line transfer meter on a terminal: what is
// being transferred, bytes so far, rate and, when the expected size is
// known, percentage and time left. Counting is a single atomic add, so it
// can sit on the data path; drawing happens on its own goroutine a few
// times a second.
package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buttersink/buttersink/lib/units"
)

// Interval is how often the line is redrawn.
const Interval = 250 * time.Millisecond

// Meter counts bytes and, when drawing, redraws its line on w.
type Meter struct {
	n     atomic.Int64
	mu    sync.Mutex
	w     io.Writer // nil: count only
	name  string
	label string
	total int64
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	width int // of the last line drawn, to blank it
}

// New returns a meter drawing "NAME: ..." lines on w, or only counting
// when w is nil.
func New(w io.Writer, name string) *Meter {
	return &Meter{w: w, name: name}
}

// Start begins a transfer labelled label, of total bytes (0 = unknown).
func (m *Meter) Start(label string, total int64) {
	m.Finish()
	m.mu.Lock()
	m.label, m.total, m.start = label, total, time.Now()
	m.n.Store(0)
	if m.w != nil {
		m.stop, m.done = make(chan struct{}), make(chan struct{})
		go m.loop(m.stop, m.done)
	}
	m.mu.Unlock()
}

// Add counts n more bytes.
func (m *Meter) Add(n int64) { m.n.Add(n) }

// N is the byte count of the current transfer.
func (m *Meter) N() int64 { return m.n.Load() }

// Write counts len(p): a Meter is an io.Writer for io.TeeReader and
// io.MultiWriter.
func (m *Meter) Write(p []byte) (int, error) { m.Add(int64(len(p))); return len(p), nil }

// Finish stops drawing and blanks the line. It is safe to call more than once.
func (m *Meter) Finish() {
	m.mu.Lock()
	stop, done := m.stop, m.done
	m.stop, m.done = nil, nil
	m.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	m.mu.Lock()
	if m.width > 0 {
		fmt.Fprintf(m.w, "\r%*s\r", m.width, "")
		m.width = 0
	}
	m.mu.Unlock()
}

func (m *Meter) loop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			m.mu.Lock()
			line := Line(m.name, m.label, m.n.Load(), m.total, time.Since(m.start))
			pad := max(m.width-len(line), 0)
			fmt.Fprintf(m.w, "\r%s%*s", line, pad, "")
			m.width = len(line)
			m.mu.Unlock()
		}
	}
}

// Line formats one meter line.
func Line(name, label string, n, total int64, elapsed time.Duration) string {
	s := fmt.Sprintf("%s: %s %s", name, label, units.Bytes(n))
	rate := Rate(n, elapsed)
	if total > 0 {
		pct := min(100*n/total, 100)
		s += fmt.Sprintf(" of %s (%d%%)", units.Bytes(total), pct)
	}
	if rate > 0 {
		s += " " + units.Bytes(int64(rate)) + "/s"
		if total > n {
			s += " ETA " + Duration(time.Duration(float64(total-n)/rate*float64(time.Second)))
		}
	}
	return s
}

// Rate is n bytes over elapsed in bytes per second; 0 when too early to say.
func Rate(n int64, elapsed time.Duration) float64 {
	if elapsed < 100*time.Millisecond {
		return 0
	}
	return float64(n) / elapsed.Seconds()
}

// Duration formats a duration as "h:mm:ss" or "m:ss".
func Duration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// Summary is the closing line of a transfer: "3 snapshots, 1.2 GiB in 12s (98.0 MiB/s)".
func Summary(count int, what string, n int64, elapsed time.Duration) string {
	noun := what
	if count != 1 {
		noun += "s"
	}
	s := fmt.Sprintf("%d %s, %s in %s", count, noun, units.Bytes(n), elapsed.Round(10*time.Millisecond))
	if r := Rate(n, elapsed); r > 0 {
		s += fmt.Sprintf(" (%s/s)", units.Bytes(int64(r)))
	}
	return s
}
