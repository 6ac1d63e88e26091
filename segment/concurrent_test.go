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

// TestSyncDuringAppend syncs while another goroutine appends: whatever was
// published before a Sync began survives a power loss after it returns.
func TestSyncDuringAppend(t *testing.T) {
	mem, dir := newMem(t)
	path := dir + "/a.seg"
	const n = 1000
	s := mustCreate(t, mem, path, 0, 1<<20)
	defer mustClose(t, s)
	recs := makeSized(0, n, 30)
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			before := s.Size()
			if err := s.Sync(); err != nil {
				t.Error(err)
				return
			}
			c, rec, err := segment.Open(mem.CrashClone(), path, segment.OpenOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			if c.Size() < before || rec.TornBytes != 0 {
				t.Errorf("synced %d bytes, a crash kept %d (%+v)", before, c.Size(), rec)
			}
			c.Close()
		}
	}()
	for i := 0; i < n; i += 5 {
		mustAppend(t, s, recs[i:i+5]...)
	}
	done.Store(true)
	wg.Wait()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	c, got := openRecords(t, mem.CrashClone(), path)
	defer mustClose(t, c)
	checkRecords(t, got, recs)
}
