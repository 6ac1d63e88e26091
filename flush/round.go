package flush

// A flush round: the sealed offsets of every partition of a table, read
// in batches, written as data files and committed to the table as one
// Iceberg snapshot.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/zombihq/zombi/catalog"
)

// sealAll seals the active segment of every partition that holds
// records not yet sealed.
func (f *Flusher) sealAll(table string) error {
	for _, pi := range f.e.Partitions(table) {
		if pi.High <= pi.Flushed || pi.Failed != nil {
			continue
		}
		segs, err := f.e.Segments(table, pi.Partition)
		if err != nil {
			return err
		}
		if n := len(segs); n > 0 && !segs[n-1].Sealed && segs[n-1].Last >= segs[n-1].First {
			if err := f.e.Seal(table, pi.Partition); err != nil {
				return fmt.Errorf("flush: seal %s/%d: %w", table, pi.Partition, err)
			}
		}
	}
	return nil
}

// sealedEnd returns the last offset of the sealed segments that follow
// from without an unsealed one in between, or from-1 when there is none.
func (f *Flusher) sealedEnd(table string, p uint32, from uint64) (uint64, error) {
	segs, err := f.e.Segments(table, p)
	if err != nil {
		return 0, err
	}
	end := from - 1
	for _, s := range segs {
		if s.Last < s.First || s.Last < from {
			continue
		}
		if !s.Sealed {
			break
		}
		end = s.Last
	}
	return end, nil
}

// roundLocked flushes at most RoundBytes of every partition, BatchBytes
// at a time, and commits them together. It returns the number of partitions committed.
//
// ts.mu should be held.
func (f *Flusher) roundLocked(ctx context.Context, ts *tableState, res *Result) (int, error) {
	var ranges []catalog.Range
	var files []catalog.DataFile
	var prs []PartitionResult
	var raw int64
	var up uploads
	defer up.wait() // no upload outlives the round, whatever its outcome
	enc := f.writers.get(ts.lay)
	defer f.writers.put(enc)
	enc.takeCounts() // of a round that did not commit
	writeStart := time.Now()
	for _, pi := range f.e.Partitions(ts.name) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if ts.stuck[pi.Partition] != nil {
			continue
		}
		tk, own := f.owns(ts.name, pi.Partition)
		if !own {
			continue // another node numbers it now
		}
		adopt, skipTo := f.handover(tk, ts.committed[pi.Partition])
		if err := f.notOursLocked(ts, pi.Partition); err != nil && adopt == "" {
			ts.stuck[pi.Partition] = err
			continue
		}
		from := ts.committed[pi.Partition].Flushed + 1
		start := from // the first offset to read: past a gap being skipped
		if to, ok := ts.skip[pi.Partition]; ok && to >= from {
			start = to + 1
		}
		if skipTo >= start {
			start = skipTo + 1
		}
		end, err := f.sealedEnd(ts.name, pi.Partition, start)
		if err != nil {
			return 0, err
		}
		if end < start {
			continue
		}
		// Consecutive batches of the partition, up to RoundBytes, form
		// one contiguous range of one commit; a batch is read while the
		// previous one's upload completes. A gap (offsets the hot tier no
		// longer holds) ends the range before it; a range that would
		// start at one stops the partition, and only it.
		pr := PartitionResult{Partition: pi.Partition, From: from, To: start - 1}
		pw := &partWriter{f: f, ctx: ctx, pw: enc, base: ts.tbl.Location(), p: pi.Partition, from: start, up: &up}
		var check string // of the range's last event
		for next, partRaw := start, int64(0); next <= end && partRaw < f.opts.RoundBytes; {
			b := &ts.batch
			b.reset()
			to, err := collect(f.e, ts.name, pi.Partition, next, end, f.opts.BatchBytes, b)
			if errors.Is(err, ErrGap) && next > start {
				break // commit what precedes the gap; the next round stops at it
			}
			if err == nil {
				check = b.rows[len(b.rows)-1].check() // before add, which may reorder
				err = pw.add(b.rows)
			}
			if err != nil {
				pw.abort()
				if !errors.Is(err, ErrGap) {
					return 0, err
				}
				f.stats.gapErrors.Add(1)
				ts.stuck[pi.Partition] = fmt.Errorf("%w; the partition is not flushed past it until the offsets are restored "+
					"or skipped (POST /tables/%s/skip-gap?partition=%d)", err, ts.name, pi.Partition)
				break
			}
			pr.To, pr.Events = to, pr.Events+int64(len(b.rows))
			partRaw += b.bytes
			raw += b.bytes
			next = to + 1
		}
		if ts.stuck[pi.Partition] != nil {
			continue
		}
		if err := pw.finish(); err != nil {
			return 0, err
		}
		pr.Files = len(pw.files)
		files = append(files, pw.files...)
		rg := catalog.Range{Partition: pi.Partition, From: from, To: pr.To, High: pi.High, Check: check, Adopt: adopt}
		if start > from {
			rg.SkippedTo, pr.SkippedTo = start-1, start-1
		}
		ranges = append(ranges, rg)
		prs = append(prs, pr)
	}
	ts.batch.reset()
	if err := up.wait(); err != nil {
		// Nothing is committed; the next flush writes the range again.
		return 0, err
	}
	if len(ranges) == 0 {
		return 0, nil
	}
	crashPoint("uploaded")
	commitStart := time.Now()
	res.WriteDuration += commitStart.Sub(writeStart)
	cctx, cancel := f.catalogCtx(ctx)
	cr, err := ts.tbl.Commit(cctx, ranges, files)
	cancel()
	res.CommitDuration += time.Since(commitStart)
	if err != nil {
		f.stats.commitErrors.Add(1)
		if context.Cause(cctx) == errCatalogTimeout && ctx.Err() == nil {
			err = fmt.Errorf("%w (%v): %w", errCatalogTimeout, f.opts.CatalogTimeout, err)
		}
		return 0, err
	}
	crashPoint("committed")
	ts.extract.add(enc.takeCounts())
	for _, r := range ranges {
		ts.committed[r.Partition] = catalog.Mark{Flushed: r.To, High: max(r.High, r.To), Owner: f.cat.Owner(), Check: r.Check}
		if r.SkippedTo != 0 {
			delete(ts.skip, r.Partition)
			f.opts.Logger.Warn("committed the skip of offsets missing from the hot tier", "table", ts.name,
				"partition", r.Partition, "from", r.From, "to", r.SkippedTo, "snapshot_id", cr.SnapshotID)
		}
	}
	var events, fileBytes int64
	for _, pr := range prs {
		events += pr.Events
	}
	for _, df := range files {
		fileBytes += df.SizeBytes
	}
	if !cr.Already {
		f.stats.snapshots.Add(1)
	}
	f.stats.flushes.Add(1)
	f.stats.events.Add(events)
	f.stats.rawBytes.Add(raw)
	f.stats.fileBytes.Add(fileBytes)
	f.stats.files.Add(int64(len(files)))
	res.Partitions = append(res.Partitions, prs...)
	res.Events += events
	res.Files += len(files)
	res.RawBytes += raw
	res.FileBytes += fileBytes
	res.Commits++
	res.SnapshotID, res.MetadataLocation = cr.SnapshotID, cr.MetadataLocation
	// The commit is durable in the table; now let the engine delete. A
	// failure here is repaired by prepareLocked after the restart.
	var errs []error
	for _, r := range ranges {
		if err := f.e.MarkFlushed(ts.name, r.Partition, r.To); err != nil {
			errs = append(errs, fmt.Errorf("flush: mark %s/%d flushed to %d: %w", ts.name, r.Partition, r.To, err))
		}
	}
	return len(ranges), errors.Join(errs...)
}

type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// dataFilePath names a data file under the table location, Hive-style by
// partition value: <partition>-<first offset of the commit>-<n>.parquet,
// or <partition>-<from>-<n>-<owner>.parquet when the catalog names this
// server (catalog.Options.Owner). A range that starts at a given offset
// is committed at most once, so a name is never reused for a committed
// file; a re-flush after a failed round overwrites its own orphans. The
// owner keeps another server's files apart: its offsets are its own, and
// a flush it attempts on this server's table (refused at the commit:
// catalog.ErrForeignOwner) must not overwrite a committed file first.
func dataFilePath(base, owner string, date, hour int32, p uint32, from uint64, n int) string {
	day := time.Unix(int64(date)*86400, 0).UTC().Format("2006-01-02")
	name := fmt.Sprintf("%d-%020d-%d.parquet", p, from, n)
	if owner != "" {
		name = fmt.Sprintf("%d-%020d-%d-%s.parquet", p, from, n, owner)
	}
	u, err := url.JoinPath(base, "data", "event_date="+day, "event_hour="+strconv.Itoa(int(hour)), name)
	if err != nil { // base came from the catalog; cannot happen for file:// and s3://
		return base + "/data/event_date=" + day + "/event_hour=" + strconv.Itoa(int(hour)) + "/" + name
	}
	return u
}
