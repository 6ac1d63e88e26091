package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a log-linear latency histogram in the manner of
// HdrHistogram: values below 2^subBits nanoseconds have a bucket each;
// above that every power of two is split into 2^subBits equal buckets, so
// a recorded value is known to within 1/2^subBits (0.8 %) of itself.
// Values from 0 to 2^maxBits ns (~73 min) are kept; larger ones are
// clamped to the top bucket.
//
// Record is safe for one writer while other goroutines Snapshot it (the
// counters are atomic); a worker owns one histogram and the reporter
// merges snapshots.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	max    atomic.Int64
}

const (
	subBits    = 7
	subCount   = 1 << subBits
	maxBits    = 42
	numBuckets = (maxBits - subBits + 1) * subCount
)

// bucketOf returns the bucket index of v (ns).
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v >= 1<<maxBits {
		return numBuckets - 1
	}
	msb := bits.Len64(uint64(v)) - 1 // >= subBits
	shift := msb - subBits
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	lo = int64(i%subCount+subCount) << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one value, in nanoseconds.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)].Add(1)
	if v > h.max.Load() {
		h.max.Store(v) // one writer: no lost update
	}
}

// Snapshot is a point-in-time copy of a histogram, or a merge of several.
type Snapshot struct {
	Counts [numBuckets]uint64
	N      uint64
	Max    int64
}

// SnapshotInto copies h's counts into s (which is overwritten).
func (h *Histogram) SnapshotInto(s *Snapshot) {
	s.N = 0
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.N += c
	}
	s.Max = h.max.Load()
}

// Add adds o's counts to s.
func (s *Snapshot) Add(o *Snapshot) {
	for i, c := range o.Counts {
		s.Counts[i] += c
	}
	s.N += o.N
	s.Max = max(s.Max, o.Max)
}

// Sub sets s to s − o, the values recorded between snapshot o and s. Max
// stays s's (the maximum of the whole run so far; Quantile(1) is the
// interval's).
func (s *Snapshot) Sub(o *Snapshot) {
	for i, c := range o.Counts {
		s.Counts[i] -= c
	}
	s.N -= o.N
}

// Quantile returns the value at rank ceil(q·N) (nearest rank), as the
// midpoint of its bucket (never above Max), or 0 when empty.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.N)))
	rank = min(max(rank, 1), s.N)
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			if s.Max > 0 && v > s.Max {
				v = max(lo, s.Max) // Max is exact; never report above it
			}
			return time.Duration(v)
		}
	}
	return time.Duration(s.Max)
}

// Mean returns the mean of the bucket midpoints.
func (s *Snapshot) Mean() time.Duration {
	if s.N == 0 {
		return 0
	}
	var sum float64
	for i, c := range s.Counts {
		if c > 0 {
			lo, hi := bucketRange(i)
			sum += float64(c) * float64(lo+(hi-lo)/2)
		}
	}
	return time.Duration(sum / float64(s.N))
}
