package segment

import (
	"fmt"

	"github.com/zombihq/zombi/vfs"
)

// Header is what a segment's file header says about it.
type Header struct {
	Base       uint64 // sequence of the first record
	CreatedMs  int64
	Sealed     bool
	DataLength int64 // header + records when sealed; 0 while active
}

// ReadHeader reads and checks the header of the segment file at path
// without mapping it. A damaged header is a *CorruptionError; an all-zero
// one is ErrNoHeader.
func ReadHeader(fsys vfs.FS, path string) (Header, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("read segment header: %w", err)
	}
	defer f.Close()
	var b [HeaderSize]byte
	n, _ := f.ReadAt(b[:], 0)
	var h header
	if err := h.unmarshal(b[:n]); err != nil {
		if allZero(b[:n]) {
			return Header{}, fmt.Errorf("read segment header %s: %w", path, ErrNoHeader)
		}
		return Header{}, &CorruptionError{Path: path, Offset: 0, Err: err}
	}
	return Header{Base: h.baseSeq, CreatedMs: h.createdMs, Sealed: h.flags&FlagSealed != 0, DataLength: int64(h.dataLength)}, nil
}
