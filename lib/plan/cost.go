package plan

import (
	"context"
	"math"

	"github.com/buttersink/buttersink/lib/snapshot"
)

// The cost of sending a snapshot one way, in bytes-equivalents:
//
//	cost = size × (1 + StoreWeight)                   transfer + storage
//	     + diffs × 2^(chain − 8)   (object stores only) restore-chain risk
//
// size is the stream's size, which is both what crosses the wire and what
// the destination stores (a received diff shares the parent's extents; an
// object holds the stream). chain is the number of objects a restore of
// the snapshot reads (1 for a full stream) and diffs the bytes of the
// diffs among them, read on top of the full stream: a chain of eight
// links weighs its diffs as if sent again, and every link less halves
// that. So short chains of small diffs cost almost nothing more, while
// MaxChain is the hard limit; near it, diffs from an older snapshot with
// a shorter chain (its chain ancestors are candidates too) beat both a
// longer chain and a new full stream; reach keeps big diffs off
// deep links. btrfs destinations hold subvolumes, which need no chain to
// restore, and pay no penalty.
func (pl *planner) cost(size int64, chain int, diffs int64) float64 {
	c := float64(size) * (1 + pl.storeWeight)
	if pl.dstObjects {
		c += float64(diffs) * math.Exp2(float64(chain-8))
	}
	return c
}

// DefaultStoreWeight weighs bytes stored at the destination against bytes
// transferred.
const DefaultStoreWeight = 1.0 / 16

// DefaultObjectMaxChain is the longest restore chain planned for object
// stores unless --max-chain says otherwise.
const DefaultObjectMaxChain = 8

// unknownSize stands in for a full stream's size when nothing tells it
// (-e without quotas): costs then compare fractions of it. Steps report
// size 0 for it.
const unknownSize = 1 << 30

// Edge is one way to send a snapshot: relative to Parent, or in full when
// Parent is nil.
type Edge struct {
	Snapshot, Parent *snapshot.Snapshot
}

// Measurer measures stream sizes exactly, e.g. by a send without file
// data. The planner asks only for the few edges it weighs for each
// snapshot, in one call per snapshot, so that they can run in parallel.
type Measurer interface {
	Measure(ctx context.Context, edges []Edge) ([]int64, error)
}

// size is a stream size as the planner weighs it.
type size struct {
	bytes  int64 // for the cost; a stand-in when unknown
	report int64 // for the step; 0 when unknown
	exact  bool
}

// Estimates, when a size is not measured (documented in bsplan(1)):
//
//   - full stream: the qgroup referenced size when quotas are on,
//     otherwise unknown;
//   - diff between snapshots of one ancestry: the full size × f(Δ), with
//     Δ the distance in ctransid and f(Δ) = 1 − e^(−Δ/65536), at least
//     1/1024; with quotas at least the exclusive size and the change in
//     referenced size;
//   - diff between snapshots not known to share data: the full size plus
//     one byte, so that it never wins on an estimate.
func estimateFull(s *snapshot.Snapshot) size {
	if s.IsObject() && s.Size != nil {
		return size{bytes: *s.Size, report: *s.Size, exact: true}
	}
	if s.Referenced != nil {
		return size{bytes: int64(*s.Referenced), report: int64(*s.Referenced)}
	}
	return size{bytes: unknownSize}
}

func estimateDiff(s, p *node) size {
	full := estimateFull(s.snap)
	full.exact = false
	if s.ancestry != p.ancestry {
		full.bytes++
		return full
	}
	d := float64(s.snap.CTransID) - float64(p.snap.CTransID)
	f := 1 - math.Exp(-math.Abs(d)/65536)
	f = max(f, 1.0/1024)
	est := int64(float64(full.bytes) * f)
	if s.snap.Referenced != nil && p.snap.Referenced != nil {
		if s.snap.Exclusive != nil {
			est = max(est, int64(*s.snap.Exclusive))
		}
		delta := int64(*s.snap.Referenced) - int64(*p.snap.Referenced)
		est = max(est, delta, -delta)
	}
	est = max(est, 1)
	if full.report == 0 {
		return size{bytes: est}
	}
	return size{bytes: est, report: est}
}
