package segment

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/zombihq/zombi/vfs"
)

// BenchmarkDirectAppend appends single 82-byte records, each stored
// through the mapping, to fresh 64 MiB segments on the real filesystem:
// with the mapping prefaulted ahead of the stores (as shipped) and with a
// page fault at the first store into each page.
func BenchmarkDirectAppend(b *testing.B) {
	for _, mode := range []string{"prefault", "fault"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "fault" {
				defer func(n int64) { prefaultAhead = n }(prefaultAhead)
				prefaultAhead = 0
			}
			dir := b.TempDir()
			payload := make([]byte, 82)
			var s *Segment
			seq := uint64(1)
			next := func() {
				if s != nil {
					s.Close()
				}
				var err error
				s, err = Create(vfs.Default, filepath.Join(dir, fmt.Sprintf("%020d.seg", seq)), seq, 64<<20, 0)
				if err != nil {
					b.Fatal(err)
				}
			}
			next()
			for b.Loop() {
				r := Record{Seq: seq, TimestampMs: 1, Payload: payload}
				if !s.Fits(r.EncodedLen()) {
					b.StopTimer()
					next()
					b.StartTimer()
				}
				if _, err := s.Append(r); err != nil {
					b.Fatal(err)
				}
				seq++
			}
			s.Close()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
