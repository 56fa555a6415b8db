// Package schedule is a calendar retention policy such as "1y 3m 30d 24h":
// keep the first snapshot of the current year and of each of the 3 most
// recent months (this one included), 30 days and 24 hours, in one time zone.
//
// Periods are calendar-aligned and independent of each other: the monthly
// snapshot is the earliest of the month, not the first weekly one. The
// earliest snapshot of a period is its "nominal" snapshot; the planner
// chains each snapshot's stream to the nominal snapshot of the next longer
// period, so that a restore never reads more than len(Frames)+1 streams.
package schedule

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Unit is the length of a calendar period.
type Unit int

// Units, longest first.
const (
	Year Unit = iota
	Quarter
	Month
	Week
	Day
	Hour
	Minute
)

var unitLetters = map[byte]Unit{'y': Year, 'q': Quarter, 'm': Month, 'w': Week, 'd': Day, 'h': Hour, 'M': Minute}

var unitNames = [...]string{Year: "y", Quarter: "q", Month: "m", Week: "w", Day: "d", Hour: "h", Minute: "M"}

func (u Unit) String() string { return unitNames[u] }

// Start returns the start of the period of unit u that holds t, in t's zone.
// Weeks start on Monday.
func (u Unit) Start(t time.Time) time.Time {
	y, mo, d := t.Date()
	loc := t.Location()
	switch u {
	case Year:
		return time.Date(y, 1, 1, 0, 0, 0, 0, loc)
	case Quarter:
		return time.Date(y, (mo-1)/3*3+1, 1, 0, 0, 0, 0, loc)
	case Month:
		return time.Date(y, mo, 1, 0, 0, 0, 0, loc)
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, mo, d-back, 0, 0, 0, 0, loc)
	case Day:
		return time.Date(y, mo, d, 0, 0, 0, 0, loc)
	case Hour:
		// Subtract rather than rebuild: the hour repeated when summer
		// time ends must stay a period of its own.
		return t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	default:
		return t.Add(-time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	}
}

// Back returns the start of the period n periods before the one starting
// at start.
func (u Unit) Back(start time.Time, n int) time.Time {
	switch u {
	case Year:
		return start.AddDate(-n, 0, 0)
	case Quarter:
		return start.AddDate(0, -3*n, 0)
	case Month:
		return start.AddDate(0, -n, 0)
	case Week:
		return start.AddDate(0, 0, -7*n)
	case Day:
		return start.AddDate(0, 0, -n)
	case Hour:
		// Back from the start of the hour in absolute time: DST days have
		// 23 or 25 hours, and each of them is a period of its own.
		return u.Start(start.Add(-time.Duration(n) * time.Hour))
	default:
		return u.Start(start.Add(-time.Duration(n) * time.Minute))
	}
}

// Frame keeps the nominal snapshot of Count periods of Unit: the current
// one and Count-1 before it.
type Frame struct {
	Unit  Unit
	Count int
}

// Policy is a parsed schedule.
type Policy struct {
	// Frames, longest unit first, each unit at most once.
	Frames []Frame
	// Zone is the time zone the calendar periods are cut in.
	Zone *time.Location
}

// Parse reads a policy like "1y 3m 30d 24h" (y years, q quarters, m
// months, w weeks, d days, h hours, M minutes), cut in zone.
func Parse(s string, zone *time.Location) (Policy, error) {
	p := Policy{Zone: zone}
	seen := map[Unit]bool{}
	for _, f := range strings.Fields(s) {
		if len(f) < 2 {
			return Policy{}, fmt.Errorf("schedule %q: %q is not a count and a unit, as 30d", s, f)
		}
		u, ok := unitLetters[f[len(f)-1]]
		if !ok {
			return Policy{}, fmt.Errorf("schedule %q: unknown unit in %q (want y q m w d h M)", s, f)
		}
		n, err := strconv.Atoi(f[:len(f)-1])
		if err != nil || n < 1 {
			return Policy{}, fmt.Errorf("schedule %q: count in %q must be a positive number", s, f)
		}
		if seen[u] {
			return Policy{}, fmt.Errorf("schedule %q: unit %s given twice", s, u)
		}
		seen[u] = true
		p.Frames = append(p.Frames, Frame{Unit: u, Count: n})
	}
	if len(p.Frames) == 0 {
		return Policy{}, fmt.Errorf("schedule %q: empty", s)
	}
	sort.Slice(p.Frames, func(i, j int) bool { return p.Frames[i].Unit < p.Frames[j].Unit })
	return p, nil
}

// String is the canonical form, e.g. "1y 3m 30d 24h".
func (p Policy) String() string {
	var parts []string
	for _, f := range p.Frames {
		parts = append(parts, strconv.Itoa(f.Count)+f.Unit.String())
	}
	return strings.Join(parts, " ")
}

// MaxChain is the longest restore chain the policy produces: one stream
// per frame plus the full one.
func (p Policy) MaxChain() int { return len(p.Frames) + 1 }

// Calendar places a set of snapshot times, sorted ascending, into the
// policy's periods.
type Calendar struct {
	policy Policy
	times  []time.Time
	// nominal[f][i] is the index of the earliest time in the period of
	// frame f that holds times[i].
	nominal [][]int
	// start[f][i] is the start of that period.
	start [][]time.Time
}

// NewCalendar indexes times, which must be sorted ascending.
func NewCalendar(p Policy, times []time.Time) *Calendar {
	c := &Calendar{policy: p, times: times}
	for _, f := range p.Frames {
		nom := make([]int, len(times))
		st := make([]time.Time, len(times))
		cur, first := time.Time{}, -1
		for i, t := range times {
			s := f.Unit.Start(t.In(p.Zone))
			if first < 0 || !s.Equal(cur) {
				cur, first = s, i
			}
			nom[i], st[i] = first, s
		}
		c.nominal = append(c.nominal, nom)
		c.start = append(c.start, st)
	}
	return c
}

// Nominal returns the index of the nominal snapshot of frame f's period
// holding snapshot i.
func (c *Calendar) Nominal(f, i int) int { return c.nominal[f][i] }

// Level returns the first (longest) frame in which snapshot i is the
// nominal one, or len(Frames) when it is nominal in none.
func (c *Calendar) Level(i int) int {
	for f := range c.policy.Frames {
		if c.nominal[f][i] == i {
			return f
		}
	}
	return len(c.policy.Frames)
}

// Kept reports which snapshots the policy keeps at time now: the nominal
// snapshot of each of the Count most recent periods of every frame (the
// current one included; times after now count as current) and the newest.
func (c *Calendar) Kept(now time.Time) []bool {
	keep := make([]bool, len(c.times))
	if len(c.times) == 0 {
		return keep
	}
	keep[len(keep)-1] = true
	now = now.In(c.policy.Zone)
	for fi, f := range c.policy.Frames {
		oldest := f.Unit.Back(f.Unit.Start(now), f.Count-1)
		for i := range c.times {
			if c.nominal[fi][i] == i && !c.start[fi][i].Before(oldest) {
				keep[i] = true
			}
		}
	}
	return keep
}
