package flush

// Reconciling the hot tier with the table before a flush: the committed
// watermarks are read back from the table, the engine's flushed
// watermark is caught up with them after a crash between a commit and
// MarkFlushed, and a partition whose committed offsets are not this hot
// tier's (another server's, or a restored data directory's) is stopped
// (package comment, Exactly once).

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// prepareLocked opens the catalog table and, when needed, loads the
// committed watermarks and moves the engine's flushed watermark up to
// them (the crash between commit and MarkFlushed).
//
// ts.mu should be held.
func (f *Flusher) prepareLocked(ctx context.Context, ts *tableState) error {
	ctx, cancel := f.catalogCtx(ctx)
	defer cancel()
	if ts.tbl == nil {
		tbl, err := f.cat.Table(ctx, ts.name)
		if err != nil {
			return err
		}
		ts.tbl = tbl
	}
	if err := f.layoutLocked(ts); err != nil {
		return err
	}
	if ts.reload.Swap(false) {
		ts.committed = nil
	}
	if ts.committed != nil {
		return nil
	}
	w, err := ts.tbl.Watermarks(ctx)
	if err != nil {
		return err
	}
	diverged := map[uint32]error{}
	for _, pi := range f.e.Partitions(ts.name) {
		m, ok := w[pi.Partition]
		if !ok || m.Flushed <= pi.Flushed || m.ForeignTo(f.cat.Owner(), ts.name, pi.Partition) != nil {
			// Another server's offsets are no watermark of ours:
			// catching up to them would mark ours committed and let
			// the engine delete them. The round stops that partition.
			continue
		}
		if err := f.sameHistory(ts.name, pi, m); err != nil {
			diverged[pi.Partition] = err
			continue
		}
		f.opts.Logger.Info("catching up the flushed watermark with the table", "table", ts.name,
			"partition", pi.Partition, "engine", pi.Flushed, "committed", m.Flushed)
		if err := f.e.MarkFlushed(ts.name, pi.Partition, m.Flushed); err != nil {
			return fmt.Errorf("flush: table %s partition %d: %w", ts.name, pi.Partition, err)
		}
	}
	ts.committed, ts.diverged = w, diverged
	return nil
}

// notOursLocked says why partition p's committed watermark does not
// count this hot tier's offsets (another server owns it, or it diverged
// from this hot tier: sameHistory), or nil when it does.
//
// ts.mu should be held, and ts.committed loaded.
func (f *Flusher) notOursLocked(ts *tableState, p uint32) error {
	return cmp.Or(ts.diverged[p], ts.committed[p].ForeignTo(f.cat.Owner(), ts.name, p))
}

// ErrDiverged says that a partition's committed watermark does not count
// this hot tier's offsets, though this server committed it: the data
// directory was replaced or restored from a backup older than the
// commit, and its offsets were handed out again to other events.
var ErrDiverged = errors.New("flush: the hot tier's offsets are not the ones the table committed")

// sameHistory checks, before the engine's flushed watermark is moved up
// to the committed mark m (the crash between a commit and MarkFlushed),
// that m counts this hot tier's offsets: the hot tier reaches m, and the
// event it holds there is the one committed (m.Check, when recorded).
// Otherwise catching up would mark other events committed and let the
// engine delete them, and the flushes after it would drop the rest.
func (f *Flusher) sameHistory(table string, pi engine.PartitionInfo, m catalog.Mark) error {
	const why = "was the data dir replaced, or restored from a backup older than the commit? Its offsets from there on " +
		"are other events; give it its own ZOMBI_CATALOG_NAMESPACE"
	if m.Flushed > pi.High {
		return fmt.Errorf("%w: table %s partition %d: committed watermark %d is beyond the hot tier's high watermark %d (%s)",
			ErrDiverged, table, pi.Partition, m.Flushed, pi.High, why)
	}
	if m.Check == "" {
		return nil // committed before checks were recorded
	}
	got := ""
	err := f.e.Scan(table, pi.Partition, m.Flushed, m.Flushed, func(ev *engine.Event) error {
		got = eventCheck(ev.Offset, ev.TimestampMs, ev.Key, ev.Payload)
		return nil
	})
	if err != nil {
		return fmt.Errorf("flush: table %s partition %d: read offset %d to check it against the table: %w", table, pi.Partition, m.Flushed, err)
	}
	if got != m.Check {
		return fmt.Errorf("%w: table %s partition %d: the event at offset %d is not the one committed (%s)",
			ErrDiverged, table, pi.Partition, m.Flushed, why)
	}
	return nil
}

// eventCheck fingerprints an event for catalog.Mark.Check: the CRC-32C
// of its offset, timestamp, key and payload.
func eventCheck(offset uint64, ts int64, key, payload []byte) string {
	var hdr [20]byte
	binary.LittleEndian.PutUint64(hdr[0:], offset)
	binary.LittleEndian.PutUint64(hdr[8:], uint64(ts))
	binary.LittleEndian.PutUint32(hdr[16:], uint32(len(key)))
	c := crc32.Update(0, castagnoli, hdr[:])
	c = crc32.Update(c, castagnoli, key)
	c = crc32.Update(c, castagnoli, payload)
	return fmt.Sprintf("%08x", c)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
