package segment

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by operations on a closed segment.
	ErrClosed = errors.New("segment: closed")
	// ErrSealed is returned by Append on a sealed segment.
	ErrSealed = errors.New("segment: sealed")
	// ErrFull is returned by Append when the records do not fit.
	ErrFull = errors.New("segment: full")
	// ErrBadHeader means the file header is missing or damaged.
	ErrBadHeader = errors.New("segment: bad header")
	// ErrVersion means the header names a format version we do not read.
	ErrVersion = errors.New("segment: unsupported format version")
	// ErrChecksum means a record's CRC does not match its bytes.
	ErrChecksum = errors.New("segment: checksum mismatch")
	// ErrBadLength means a record's length field is impossible.
	ErrBadLength = errors.New("segment: bad record length")
	// ErrUnexpectedEOF means the data ends inside a record.
	ErrUnexpectedEOF = errors.New("segment: unexpected end of data")
	// ErrSequence means a record's sequence is not the one its position implies.
	ErrSequence = errors.New("segment: sequence out of order")
	// ErrTooLarge means a record exceeds the format's limits.
	ErrTooLarge = errors.New("segment: record too large")

	// errZeroed marks the zero-filled end of an active segment's data. It
	// is never returned to callers.
	errZeroed = errors.New("segment: zeroed")
)

// CorruptionError reports damaged data in a segment file: the file, the
// byte offset of the first bad record, and what is wrong with it.
type CorruptionError struct {
	Path   string
	Offset int64
	Err    error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("segment %s: corruption at byte %d: %v", e.Path, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }
