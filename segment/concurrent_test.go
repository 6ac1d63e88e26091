package segment_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// TestConcurrentReaders appends while readers iterate: a reader sees only
// complete, contiguous records below the published size. On MemFS the
// mapping is Go memory, so go test -race checks the publication.
func TestConcurrentReaders(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		const n = 2000
		s := mustCreate(t, fsys, dir+"/a.seg", 0, 1<<20)
		defer mustClose(t, s)
		recs := makeSized(0, n, 40)
		var done atomic.Bool
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !done.Load() {
					it := s.Iter(segment.HeaderSize)
					var next uint64
					for it.Next() {
						r := it.Record()
						if r.Seq != next || len(r.Payload) != 40 || r.Payload[0] != byte(r.Seq)+1 {
							t.Errorf("reader saw record %d with payload %x, want %d", r.Seq, r.Payload[:1], next)
							return
						}
						next++
					}
					if err := it.Err(); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for i := 0; i < n; i += 10 {
			mustAppend(t, s, recs[i:i+10]...)
		}
		if err := s.Seal(); err != nil {
			t.Fatal(err)
		}
		done.Store(true)
		wg.Wait()
		if c, err := s.Verify(nil); c != n || err != nil {
			t.Fatalf("Verify = %d, %v", c, err)
		}
	})
}
