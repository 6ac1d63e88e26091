package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo > hi || bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: range [%d,%d] maps to %d,%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if i > 0 {
			_, prevHi := bucketRange(i - 1)
			if prevHi+1 != lo {
				t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
			}
		}
	}
	if bucketOf(-5) != 0 || bucketOf(math.MaxInt64) != numBuckets-1 {
		t.Fatal("out-of-range values are not clamped")
	}
}

// TestQuantilesAgainstSort checks every reported percentile against the
// exact nearest-rank value of the sorted sample: within the histogram's
// 1/2^subBits relative precision.
func TestQuantilesAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform-us":  func() int64 { return r.Int64N(1_000_000) },
		"lognormal":   func() int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 11)) },
		"small-exact": func() int64 { return r.Int64N(100) },
		"bimodal": func() int64 {
			if r.IntN(100) < 2 {
				return 50_000_000 + r.Int64N(1_000_000)
			}
			return 40_000 + r.Int64N(20_000)
		},
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 20_000)
			for i := range vals {
				vals[i] = gen()
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			var s Snapshot
			h.SnapshotInto(&s)
			if s.N != uint64(len(vals)) || s.Max != vals[len(vals)-1] {
				t.Fatalf("N=%d max=%d, want %d %d", s.N, s.Max, len(vals), vals[len(vals)-1])
			}
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
				rank := int(math.Ceil(q * float64(len(vals))))
				want := vals[max(rank, 1)-1]
				got := int64(s.Quantile(q))
				tol := want/subCount + 1
				if got < want-tol || got > want+tol {
					t.Errorf("q=%v: got %d, exact %d (tolerance %d)", q, got, want, tol)
				}
			}
		})
	}
}

func TestSnapshotSub(t *testing.T) {
	var h Histogram
	for i := range 1000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	var a, b Snapshot
	h.SnapshotInto(&a)
	for range 1000 {
		h.Record(5 * time.Second)
	}
	h.SnapshotInto(&b)
	b.Sub(&a)
	if b.N != 1000 {
		t.Fatalf("interval N=%d", b.N)
	}
	if p := b.Quantile(0.5); p < 4900*time.Millisecond || p > 5100*time.Millisecond {
		t.Fatalf("interval p50=%v, want ~5s", p)
	}
}
