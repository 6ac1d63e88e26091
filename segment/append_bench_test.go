package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zombihq/zombi/vfs"
)

// BenchmarkDirectAppend appends single 82-byte records, each stored
// through the mapping, to fresh 64 MiB segments on the real filesystem,
// syncing every 4000 (the interval mode at ~40K events/s): with the
// mapping prefaulted ahead of the stores (as shipped) and with a page
// fault at the first store into each page. dev-writes/B is the device
// writes (/proc/self/io write_bytes) per byte appended.
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
			w0 := writeBytes()
			var appended int64
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
				appended += int64(r.EncodedLen())
				if seq%4000 == 0 {
					if err := s.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				seq++
			}
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			s.Close()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if w := writeBytes() - w0; w > 0 {
				b.ReportMetric(float64(w)/float64(appended), "dev-writes/B")
			}
		})
	}
}

// writeBytes is this process's device writes so far (/proc/self/io).
func writeBytes() int64 {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkSegmentRecycle appends bulk batches (100 records of 82 bytes,
// one pwrite each, as a bulk request does) to 16 MiB segments that are
// fresh files (Preallocate) or the file of the segment before, sealed and
// recycled (Recycle), as a partition does once the cold tier has flushed
// it. Only the appends are timed. A fresh file costs a block and a page-
// cache page per 4 KiB written; a recycled one is written over.
func BenchmarkSegmentRecycle(b *testing.B) {
	const capacity = 16 << 20
	for _, mode := range []string{"fresh", "recycled"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			batch := make([]Record, 100)
			payload := make([]byte, 82)
			seq := uint64(1)
			var prev string // the last sealed segment
			var appended int64
			for b.Loop() {
				b.StopTimer()
				next := filepath.Join(dir, "next"+PreallocSuffix)
				var p *Preallocated
				var err error
				if mode == "recycled" && prev != "" {
					p, err = Recycle(vfs.Default, prev, next, capacity)
				} else {
					if prev != "" {
						os.Remove(prev)
					}
					p, err = Preallocate(vfs.Default, next, capacity)
				}
				if err != nil {
					b.Fatal(err)
				}
				path := filepath.Join(dir, fmt.Sprintf("%020d.seg", seq))
				s, err := p.Activate(path, seq, 0)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for {
					for i := range batch {
						batch[i] = Record{Seq: seq + uint64(i), TimestampMs: 1, Payload: payload}
					}
					if !s.Fits(len(batch) * batch[0].EncodedLen()) {
						break
					}
					if _, err := s.Append(batch...); err != nil {
						b.Fatal(err)
					}
					if err := s.Flush(); err != nil {
						b.Fatal(err)
					}
					seq += uint64(len(batch))
					appended += int64(len(batch))
				}
				b.StopTimer()
				if err := s.Seal(); err != nil {
					b.Fatal(err)
				}
				s.Close()
				prev = path
				b.StartTimer()
			}
			b.ReportMetric(float64(appended)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
