// Package wire decodes the bodies of the write API (POST /tables/{t} and
// /tables/{t}/bulk, JSON and protobuf) into engine records.
//
// The decoders make one pass over the body and build no tree: a record's
// payload and idempotency key are sub-slices of the body when they can be
// (a string without escapes, a JSON value without whitespace, a protobuf
// bytes field), otherwise they live in the decoder's scratch buffer. So
// decoding costs no allocation in the steady state, and the memory a body
// can make the server use is bounded by its size plus one record header
// per record, whatever its shape.
//
// It lives apart from httpd so that its fuzz targets link a few packages
// and run fast (millions of executions), not all of the server.
package wire

import (
	"fmt"
	"math"

	"github.com/zombihq/zombi/engine"
)

// Kind says how the server should answer an Error.
type Kind uint8

const (
	// BadRequest is a body that cannot be parsed, or a field of the wrong
	// type: 400 BAD_REQUEST.
	BadRequest Kind = iota
	// InvalidInput is a well-formed body with an invalid value: 400
	// INVALID_INPUT.
	InvalidInput
	// TooLarge is a bulk request over Decoder.MaxRecords: 413
	// PAYLOAD_TOO_LARGE.
	TooLarge
)

// Error is a body the server cannot decode.
type Error struct {
	Kind Kind
	Msg  string
	// syntax marks a JSON syntax error, as opposed to a well-formed body
	// that is not an event.
	syntax bool
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, args ...any) *Error {
	return &Error{Kind: BadRequest, Msg: fmt.Sprintf(format, args...)}
}

func invalidInput(format string, args ...any) *Error {
	return &Error{Kind: InvalidInput, Msg: fmt.Sprintf(format, args...)}
}

func tooManyRecords(limit int) *Error {
	return &Error{Kind: TooLarge, Msg: fmt.Sprintf("Too many records in one bulk request (limit: %d; split the batch or raise ZOMBI_MAX_BULK_RECORDS)", limit)}
}

// Decoder holds the reusable memory of one request's decoding. The zero
// value is ready to use. Records it returns point into the body or into
// the decoder; they stay valid until its next use.
type Decoder struct {
	// MaxRecords is the most records a bulk request may hold; 0: no bound.
	MaxRecords int
	// MarkUnplaced gives a record that names no partition the partition
	// Unplaced instead of 0, for a server that places such records itself
	// (a node of a cluster writes them to a partition it owns). A
	// protobuf bulk record names none when its partition is 0: proto3
	// does not tell an explicit 0 from an absent field.
	MarkUnplaced bool

	recs    []engine.Record
	scratch []byte       // payloads and keys that are not a sub-slice of the body
	fix     []scratchRef // fields that live in scratch, resolved once it stops growing
	stack   []byte       // open containers while skipping a JSON value
	keyBuf  []byte       // an object key with escapes, unescaped
}

// Unplaced is the partition of a record that named none, when
// Decoder.MarkUnplaced is set: above every partition a write may name.
const Unplaced = math.MaxUint32

// defaultPartition is the partition of a record that names none.
func (d *Decoder) defaultPartition() uint32 {
	if d.MarkUnplaced {
		return Unplaced
	}
	return 0
}

// scratchRef says that a field of recs[rec] is scratch[start:end].
type scratchRef struct {
	rec        int
	start, end int
	key        bool // the idempotency key; else the payload
}

// Reset forgets the last request's records. Buffers above maxBytes (and
// record slices above maxBytes/64 records) are dropped, so that one large
// request does not pin its memory in a pool for good.
func (d *Decoder) Reset(maxBytes int) {
	d.reset()
	if cap(d.scratch) > maxBytes {
		d.scratch = nil
	}
	if cap(d.recs) > maxBytes/64 {
		d.recs = nil
	}
	if cap(d.fix) > maxBytes/64 {
		d.fix = nil
	}
}

func (d *Decoder) reset() {
	if d.stack == nil {
		d.stack = make([]byte, 0, maxDepth) // skip never grows it
	}
	clear(d.recs)
	d.recs = d.recs[:0]
	d.scratch = d.scratch[:0]
	d.fix = d.fix[:0]
}

// resolve points the records at their fields in scratch.
func (d *Decoder) resolve() {
	for _, f := range d.fix {
		b := d.scratch[f.start:f.end:f.end]
		if f.start == f.end {
			continue // empty: none
		}
		if f.key {
			d.recs[f.rec].Key = b
		} else {
			d.recs[f.rec].Payload = b
		}
	}
}
