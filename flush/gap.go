package flush

// Gaps: offsets after the committed watermark that the hot tier no
// longer holds stop their partition alone (package comment, Gaps).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// StuckError is the error of a flush that committed what it could but
// left partitions stopped: at a gap (ErrGap), owned by another server
// (catalog.ErrForeignOwner), or with a committed watermark that does not
// count this hot tier's offsets (ErrDiverged). It wraps their errors, in
// partition order.
type StuckError struct {
	Errs []error
}

func (e *StuckError) Error() string   { return errors.Join(e.Errs...).Error() }
func (e *StuckError) Unwrap() []error { return e.Errs }

// stuckError returns the StuckError of the stopped partitions; nil when
// there is none.
func stuckError(stuck map[uint32]error) error {
	if len(stuck) == 0 {
		return nil
	}
	ps := slices.Sorted(maps.Keys(stuck))
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = stuck[p]
	}
	return &StuckError{Errs: errs}
}

// ErrNoGap is returned by SkipGap for a partition that is not stopped at a
// gap: the hot tier holds its next offset to commit, or nothing after it.
var ErrNoGap = errors.New("flush: no gap to skip")

// GapSkip describes a SkipGap: the offsets From..To were committed as
// skipped by the flush in Result.
type GapSkip struct {
	From, To uint64
	Result   Result
}

// SkipGap lets partition p of table be flushed past the offsets it is
// stopped at: those after its committed watermark that the hot tier no
// longer holds (a segment quarantined as corrupt, or removed by hand),
// up to the first one it does hold. It flushes the table; the commit of p
// records the skipped offsets in its snapshot's summary
// (zombi.skipped.<p> = "<from>-<to>") and the server logs it. Nothing is
// skipped otherwise: ErrNoGap. When the flush fails, the skip stays
// pending for the next flush of this process.
func (f *Flusher) SkipGap(ctx context.Context, table string, p uint32) (GapSkip, error) {
	ctx, ts, unlock, err := f.lockTable(ctx, table)
	if err != nil {
		return GapSkip{}, err
	}
	defer unlock()
	if err := f.prepareLocked(ctx, ts); err != nil {
		return GapSkip{}, err
	}
	// A partition whose committed offsets are not this hot tier's has no
	// gap to skip: skipping would commit our events under them.
	if err := f.notOursLocked(ts, p); err != nil {
		return GapSkip{}, err
	}
	from := ts.committed[p].Flushed + 1
	segs, err := f.e.Segments(table, p)
	if err != nil {
		return GapSkip{}, err
	}
	first := uint64(0) // the first offset at or after from that the hot tier holds
	for _, s := range segs {
		if s.Last >= s.First && s.Last >= from {
			first = max(s.First, from)
			break
		}
	}
	if first == 0 {
		return GapSkip{}, fmt.Errorf("%w: table %s partition %d holds no offset after %d, the last committed", ErrNoGap, table, p, from-1)
	}
	if first == from {
		return GapSkip{}, fmt.Errorf("%w: table %s partition %d holds offset %d, the next to commit", ErrNoGap, table, p, from)
	}
	if ts.skip == nil {
		ts.skip = make(map[uint32]uint64)
	}
	ts.skip[p] = first - 1
	f.opts.Logger.Warn("skipping offsets missing from the hot tier, by request", "table", table, "partition", p,
		"from", from, "to", first-1)
	gs := GapSkip{From: from, To: first - 1}
	gs.Result, err = f.flushLocked(ctx, ts, true)
	if err == nil {
		ts.failures, ts.retryAt = 0, time.Time{}
	}
	return gs, err
}
