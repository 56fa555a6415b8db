// Package progress shows how a transfer moves: on a terminal, one line
// for a whole pipeline (snapshot n of N, bytes, rate and time left of the
// stream and of the run), drawn by one stage for all (see board); without
// one, a status line every interval for a log or the journal. Counting is
// a single atomic add, so it can sit on the data path; publishing and
// drawing happen on a goroutine of their own a few times a second.
package progress

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buttersink/buttersink/lib/units"
)

// Interval is how often the line is redrawn.
const Interval = 250 * time.Millisecond

// Mode is how progress is shown.
type Mode int

// The modes.
const (
	None Mode = iota // count only
	Bar              // the pipeline's line on a terminal
	Log              // a status line every LogInterval
)

// Options make a Meter.
type Options struct {
	Mode Mode
	Name string // the command, prefixing every line
	Role Role
	// Term is the terminal a Bar is drawn on.
	Term *os.File
	// Logf prints a Log status line (the command's logger, so that it
	// carries the same prefixes as every other message).
	Logf func(string)
	// LogInterval is the time between two Log lines.
	LogInterval time.Duration
}

// Meter counts the bytes of a run's streams and shows them.
type Meter struct {
	o     Options
	cur   atomic.Int64 // bytes of the current stream
	mu    sync.Mutex
	st    State // but Cur and Done, which follow cur
	done  int64 // bytes of the streams before the current one
	board *board
	drew  bool
	stop  chan struct{}
	ended chan struct{}
}

// Open returns a meter. A Bar on a terminal joins the board of its
// pipeline; when it cannot (no fit directory, a board that is not the
// user's), it draws nothing rather than a line of its own that another
// stage might draw over.
func Open(o Options) *Meter {
	m := &Meter{o: o}
	m.st.Role, m.st.Name = o.Role, o.Name
	switch o.Mode {
	case Bar:
		m.board = openBoard(o.Term)
		if m.board == nil {
			return m
		}
	case Log:
		if o.Logf == nil || o.LogInterval <= 0 {
			return m
		}
	default:
		return m
	}
	m.stop, m.ended = make(chan struct{}), make(chan struct{})
	go m.loop(m.stop)
	return m
}

// New returns a meter that only counts (for a closing summary).
func New(name string) *Meter { return Open(Options{Name: name}) }

// openBoard joins the board of the calling process's group on the
// terminal t; nil when that fails.
func openBoard(t *os.File) *board {
	if t == nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(int(t.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return nil
	}
	dir := boardDir()
	if dir == "" {
		return nil
	}
	b, err := joinBoard(dir + "/" + boardName(os.Geteuid(), st.Rdev, unix.Getpgrp()))
	if err != nil {
		return nil
	}
	return b
}

// Expect sets the count and total size of the run's streams (0: unknown).
func (m *Meter) Expect(count int, total int64) {
	m.mu.Lock()
	m.st.Of, m.st.Total = count, total
	m.mu.Unlock()
}

// At sets the number of the item being worked on, for a stage counting
// items (a plan measuring snapshots) rather than bytes.
func (m *Meter) At(n int) {
	m.mu.Lock()
	m.st.N = n
	if m.st.Start == 0 {
		m.st.Start = time.Now().UnixNano()
	}
	m.mu.Unlock()
}

// Start begins the next stream, labelled label, of size bytes (0 = unknown).
func (m *Meter) Start(label string, size int64) {
	now := time.Now().UnixNano()
	m.mu.Lock()
	m.done += m.cur.Swap(0)
	m.st.N++
	m.st.Label, m.st.Size, m.st.Stream = label, size, now
	if m.st.Start == 0 {
		m.st.Start = now
	}
	m.mu.Unlock()
}

// Add counts n more bytes.
func (m *Meter) Add(n int64) { m.cur.Add(n) }

// N is the byte count of the current stream.
func (m *Meter) N() int64 { return m.cur.Load() }

// Write counts len(p): a Meter is an io.Writer for io.TeeReader and
// io.MultiWriter.
func (m *Meter) Write(p []byte) (int, error) { m.Add(int64(len(p))); return len(p), nil }

// State is the meter's counters now.
func (m *Meter) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.st
	s.Cur = m.cur.Load()
	s.Done = m.done + s.Cur
	return s
}

// Close stops showing progress: the drawer blanks its line, and another
// stage still running takes over. It is safe to call more than once.
func (m *Meter) Close() {
	m.mu.Lock()
	stop := m.stop
	m.stop = nil
	m.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-m.ended
	if m.board != nil {
		if m.drew {
			m.o.Term.WriteString("\r\x1b[K")
		}
		s := m.State()
		s.Ended = true
		m.board.publish(&s)
		m.board.close()
	}
}

func (m *Meter) loop(stop <-chan struct{}) {
	defer close(m.ended)
	every := Interval
	if m.board == nil {
		every = m.o.LogInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	drawer := false
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s := m.State()
			if m.board == nil {
				if v, ok := Merge([]State{s}); ok {
					m.o.Logf(Render("", v, now, 0))
				}
				continue
			}
			if m.board.publish(&s) != nil {
				continue
			}
			if !drawer {
				drawer = m.board.try(drawByte, 1)
			}
			if drawer {
				m.draw(now)
			}
		}
	}
}

// draw writes the merged line in one write, so that it never interleaves
// with another stage's message (which starts by blanking the line).
func (m *Meter) draw(now time.Time) {
	states, err := m.board.states()
	if err != nil {
		return
	}
	v, ok := Merge(states)
	if !ok {
		return
	}
	width := 80
	if ws, err := unix.IoctlGetWinsize(int(m.o.Term.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		width = int(ws.Col)
	}
	m.o.Term.WriteString("\r" + Render(m.o.Name, v, now, width) + "\x1b[K")
	m.drew = true
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
