package flush

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/zombihq/zombi/catalog"
)

// writeError marks a failure to write a data file: the round is retried
// from the committed watermark (nothing was committed).
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// partWriter writes the data files of one partition's range in one round.
// Batches arrive in offset order; each is sorted and split by hour. The
// file of the batch's last hour stays open so that the next batch can
// append to it as a new row group when it continues in time order (the
// usual case), which makes files of up to TargetFileBytes while only one
// batch is ever in memory. A file whose rows would not stay in
// (timestamp_ms, sequence) order is closed and a new one begun.
//
// Only one file is open at a time; finished files complete their upload
// in the background (tracked by up) while the next batch is read.
type partWriter struct {
	f     *Flusher
	ctx   context.Context
	pw    *parquetWriter
	base  string // table location
	p     uint32
	from  uint64 // first offset of the range: names the files
	n     int    // files begun
	up    *uploads
	tail  *openFile
	files []catalog.DataFile
}

type openFile struct {
	obj  ObjectWriter
	cw   *countWriter
	df   catalog.DataFile
	raw  int64
	last row // the last row written, for the order check
}

// uploads tracks the data files of one round whose bytes are all
// encoded and whose upload is completing in the background. The round
// waits for them before it commits.
type uploads struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (u *uploads) fail(err error) {
	u.mu.Lock()
	u.errs = append(u.errs, err)
	u.mu.Unlock()
}

// wait waits for every upload and returns their errors.
func (u *uploads) wait() error {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	return errors.Join(u.errs...)
}

func rowLess(a, b *row) bool {
	return a.TimestampMs < b.TimestampMs || a.TimestampMs == b.TimestampMs && a.Sequence < b.Sequence
}

// add writes one batch's rows (which it sorts).
func (w *partWriter) add(rows []row) error {
	sortRows(rows)
	target := w.f.opts.TargetFileBytes
	spans := split(rows, target)
	for i := range spans {
		s := &spans[i]
		t := w.tail
		if t != nil && (t.df.EventDate != s.df.EventDate || t.df.EventHour != s.df.EventHour ||
			!rowLess(&t.last, &s.rows[0]) || t.raw+s.raw > target) {
			if err := w.finish(); err != nil {
				return err
			}
			t = nil
		}
		if t == nil {
			if err := w.begin(s); err != nil {
				return err
			}
			t = w.tail
		} else {
			mergeStats(&t.df, &s.df)
		}
		if err := w.pw.writeRowGroup(s.rows); err != nil {
			return &writeError{fmt.Errorf("flush: encode %s: %w", t.df.Path, err)}
		}
		t.raw += s.raw
		t.last = s.rows[len(s.rows)-1]
		if t.last.IdempotencyKey != nil { // the row outlives its batch; its key must not
			k := *t.last.IdempotencyKey
			t.last.IdempotencyKey = &k
		}
		t.last.Payload = nil
		if i < len(spans)-1 {
			// Only the last hour of a batch can continue in the next.
			if err := w.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

func mergeStats(d, s *catalog.DataFile) {
	d.Records += s.Records
	d.NullKeys += s.NullKeys
	d.MinSeq, d.MaxSeq = min(d.MinSeq, s.MinSeq), max(d.MaxSeq, s.MaxSeq)
	d.MinTs, d.MaxTs = min(d.MinTs, s.MinTs), max(d.MaxTs, s.MaxTs)
}

// begin opens the next data file for span s.
func (w *partWriter) begin(s *fileSpan) error {
	select {
	case w.f.pending <- struct{}{}:
	case <-w.ctx.Done():
		return context.Cause(w.ctx)
	}
	df := s.df
	df.Path = dataFilePath(w.base, w.f.cat.Owner(), df.EventDate, df.EventHour, w.p, w.from, w.n)
	w.n++
	obj, err := w.f.opts.Store.Create(w.ctx, df.Path)
	if err != nil {
		<-w.f.pending
		return &writeError{fmt.Errorf("flush: create %s: %w", df.Path, err)}
	}
	cw := &countWriter{w: obj}
	w.pw.begin(cw)
	w.tail = &openFile{obj: obj, cw: cw, df: df}
	return nil
}

// finish closes the open file, if any, and leaves the completion of its
// upload to the background.
func (w *partWriter) finish() error {
	t := w.tail
	if t == nil {
		return nil
	}
	w.tail = nil
	w.pw.fileStats(&t.df)
	if err := w.pw.end(); err != nil {
		t.obj.Abort()
		<-w.f.pending
		return &writeError{fmt.Errorf("flush: encode %s: %w", t.df.Path, err)}
	}
	t.df.SizeBytes = t.cw.n
	crashPoint("encoded")
	w.files = append(w.files, t.df)
	w.up.wg.Add(1)
	go func() {
		defer w.up.wg.Done()
		defer func() { <-w.f.pending }()
		if err := t.obj.Close(); err != nil { // counted when the round is retried
			w.up.fail(&writeError{fmt.Errorf("flush: write %s: %w", t.df.Path, err)})
		}
	}()
	return nil
}

// abort discards the open file after a failure.
func (w *partWriter) abort() {
	if t := w.tail; t != nil {
		w.tail = nil
		w.pw.discard()
		t.obj.Abort()
		<-w.f.pending
	}
}
