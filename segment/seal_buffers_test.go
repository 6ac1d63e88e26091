package segment

import (
	"testing"

	"github.com/zombihq/zombi/vfs"
)

// TestSealDropsWriteBuffers: a sealed segment takes no more appends, so it
// must not keep its write buffers; an engine holds hundreds of sealed
// segments open in a long run (RssAnon grew ~0.5 MB/s under 20 KiB writes
// before this).
func TestSealDropsWriteBuffers(t *testing.T) {
	fsys := vfs.NewMem()
	if err := fsys.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	s, err := Create(fsys, "/d/1.seg", 1, 4<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		// Past DirectMax: encoded into the write buffer, then pwritten.
		if _, err := s.Append(Record{Seq: uint64(1 + i), Payload: make([]byte, 20<<10)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(s.buf)+cap(s.spare) == 0 {
		t.Fatal("no write buffer before the seal: the test does not exercise the buffered path")
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if s.buf != nil || s.spare != nil {
		t.Fatalf("sealed segment keeps %d + %d bytes of write buffers", cap(s.buf), cap(s.spare))
	}
	if n, err := s.Verify(nil); n != 20 || err != nil {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}
