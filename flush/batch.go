package flush

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// ErrGap is returned when the hot tier no longer holds an offset that the
// table has not committed (a quarantined or deleted segment). The flusher
// never commits past a gap; the partition stops flushing until an
// operator resolves it.
var ErrGap = errors.New("flush: offsets missing from the hot tier")

// batch is the rows of one partition's offset range, copied out of the
// segments (whose mapping may go away after the scan) into an arena that
// is reused from batch to batch.
type batch struct {
	rows   []row
	keys   []string // idempotency keys, pointed to by rows (an old backing array stays alive while referenced)
	chunks [][]byte // arena chunks; chunks[cur] is being filled
	cur    int
	bytes  int64 // raw bytes of the rows (payload + key + fixed columns)
}

const (
	arenaChunk = 1 << 20
	// rowFixedBytes approximates a row's non-payload bytes, for sizing.
	rowFixedBytes = 40
)

// check returns the eventCheck of the event r holds.
func (r *row) check() string {
	var key []byte
	if r.IdempotencyKey != nil {
		key = []byte(*r.IdempotencyKey)
	}
	return eventCheck(uint64(r.Sequence), r.TimestampMs, key, r.Payload)
}

func (b *batch) reset() {
	clear(b.rows) // drop references into large, separately allocated payloads
	b.rows = b.rows[:0]
	clear(b.keys)
	b.keys = b.keys[:0]
	for i := range b.chunks {
		b.chunks[i] = b.chunks[i][:0]
	}
	b.cur = 0
	b.bytes = 0
}

// copy returns a copy of p that lives until reset.
func (b *batch) copy(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	if len(p) > arenaChunk/4 {
		return append([]byte(nil), p...)
	}
	for {
		if b.cur == len(b.chunks) {
			b.chunks = append(b.chunks, make([]byte, 0, arenaChunk))
		}
		c := b.chunks[b.cur]
		if cap(c)-len(c) >= len(p) {
			n := len(c)
			c = append(c, p...)
			b.chunks[b.cur] = c
			return c[n:len(c):len(c)]
		}
		b.cur++
	}
}

var errBatchFull = errors.New("batch full")

// collect scans (table, p) from `from` to `to` into b until b holds limit
// raw bytes, and returns the last offset taken. It takes only offsets
// contiguous from `from`, so nothing is ever skipped: the batch ends
// before a missing offset, and a batch that would start with one is
// ErrGap.
func collect(e *engine.Engine, table string, p uint32, from, to uint64, limit int64, b *batch) (uint64, error) {
	next := from
	err := e.Scan(table, p, from, to, func(ev *engine.Event) error {
		if b.bytes >= limit {
			return errBatchFull
		}
		if ev.Offset != next {
			if next > from {
				// Contiguous up to here: the batch ends before the
				// gap, and the next one starts (and fails) at it.
				return errBatchFull
			}
			return fmt.Errorf("%w: table %s partition %d: expected offset %d, found %d", ErrGap, table, p, next, ev.Offset)
		}
		next++
		hour := floorDiv(ev.TimestampMs, 3_600_000)
		day := floorDiv(hour, 24)
		r := row{
			Sequence:    int64(ev.Offset),
			Topic:       table,
			Partition:   int32(p),
			Payload:     b.copy(ev.Payload),
			TimestampMs: ev.TimestampMs,
			EventDate:   int32(day),
			EventHour:   int32(hour - day*24),
		}
		if r.Payload == nil {
			r.Payload = []byte{} // a required column: empty, not null
		}
		if len(ev.Key) > 0 {
			k := b.copy(ev.Key)
			b.keys = append(b.keys, unsafe.String(&k[0], len(k)))
			r.IdempotencyKey = &b.keys[len(b.keys)-1]
		}
		b.rows = append(b.rows, r)
		b.bytes += int64(len(ev.Payload) + len(ev.Key) + rowFixedBytes)
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return 0, err
	}
	if next == from {
		return 0, fmt.Errorf("%w: table %s partition %d: offset %d not found", ErrGap, table, p, from)
	}
	// A scan that ended before to (the rest is missing) returns what is
	// contiguous; the next call, from next, reports the gap.
	return next - 1, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// sortRows orders rows by (timestamp_ms, sequence), which also groups
// them by (event_date, event_hour). Rows are usually in order already:
// the engine assigns timestamps under its log lock, so only timestamps a
// producer sent can be out of order.
func sortRows(rows []row) {
	cmp := func(a, b *row) int {
		if a.TimestampMs != b.TimestampMs {
			if a.TimestampMs < b.TimestampMs {
				return -1
			}
			return 1
		}
		switch {
		case a.Sequence < b.Sequence:
			return -1
		case a.Sequence > b.Sequence:
			return 1
		}
		return 0
	}
	sorted := true
	for i := 1; i < len(rows); i++ {
		if cmp(&rows[i-1], &rows[i]) > 0 {
			sorted = false
			break
		}
	}
	if !sorted {
		slices.SortFunc(rows, func(a, b row) int { return cmp(&a, &b) })
	}
}

// fileSpan is the rows of one data file: one (event_date, event_hour),
// at most about TargetFileBytes of raw data.
type fileSpan struct {
	rows []row
	raw  int64 // raw bytes of rows
	df   catalog.DataFile
}

// split cuts sorted rows into file spans by hour and by target size, with
// each span's statistics filled in (everything but path and size).
func split(rows []row, target int64) []fileSpan {
	var out []fileSpan
	for i := 0; i < len(rows); {
		j := i
		var raw int64
		for j < len(rows) && rows[j].EventDate == rows[i].EventDate && rows[j].EventHour == rows[i].EventHour {
			raw += int64(len(rows[j].Payload) + rowFixedBytes)
			if k := rows[j].IdempotencyKey; k != nil {
				raw += int64(len(*k))
			}
			j++
			if raw >= target {
				break
			}
		}
		s := fileSpan{rows: rows[i:j], raw: raw}
		df := &s.df
		df.Records = int64(j - i)
		df.EventDate, df.EventHour = rows[i].EventDate, rows[i].EventHour
		df.Partition = uint32(rows[i].Partition)
		df.Topic = rows[i].Topic
		df.MinTs, df.MaxTs = rows[i].TimestampMs, rows[j-1].TimestampMs
		df.MinSeq, df.MaxSeq = uint64(rows[i].Sequence), uint64(rows[i].Sequence)
		for k := i; k < j; k++ {
			seq := uint64(rows[k].Sequence)
			df.MinSeq, df.MaxSeq = min(df.MinSeq, seq), max(df.MaxSeq, seq)
			if rows[k].IdempotencyKey == nil {
				df.NullKeys++
			}
		}
		out = append(out, s)
		i = j
	}
	return out
}
