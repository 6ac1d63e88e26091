package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Mark is one partition's committed position.
type Mark struct {
	// Flushed is the last offset committed to the table
	// (zombi.watermark.<p>); 0 when nothing was.
	Flushed uint64
	// High is the engine's high watermark when Flushed was committed
	// (zombi.high_watermark.<p>).
	High uint64
	// Owner is the server that committed Flushed (zombi.owner.<p>,
	// Options.Owner); "" when it named none.
	Owner string
	// Check fingerprints the event at offset Flushed (zombi.check.<p>,
	// Range.Check), so that a server can tell its own history from
	// another one numbered alike; "" when none was recorded.
	Check string
}

// ForeignTo returns ErrForeignOwner, naming table and partition p, when m
// was committed by a server other than owner; nil when either names none.
func (m Mark) ForeignTo(owner, table string, p uint32) error {
	if owner == "" || m.Owner == "" || m.Owner == owner {
		return nil
	}
	return fmt.Errorf("%w: table %s partition %d is written by zombi node %q and this is node %q; "+
		"its offsets are not ours (a new data directory starts again from 1): give each node its own partitions, or its own ZOMBI_CATALOG_NAMESPACE",
		ErrForeignOwner, table, p, m.Owner, owner)
}

// Watermarks maps partitions to their committed marks.
type Watermarks map[uint32]Mark

// Range is one partition's part of a commit: the offsets From..To, which
// must follow the committed watermark (From-1) and become the new one.
type Range struct {
	Partition uint32
	From, To  uint64
	// High is the engine's high watermark, recorded beside To.
	High uint64
	// SkippedTo, when not 0, says that the offsets From..SkippedTo are
	// committed without data: they were lost from the hot tier and an
	// operator chose to go on without them. The snapshot's summary says
	// so (SkippedPrefix); the data files hold SkippedTo+1..To.
	SkippedTo uint64
	// Check fingerprints the event at To (Mark.Check).
	Check string
	// Adopt, when not "", is the server this one took the partition
	// over from (a cluster's handover): a committed watermark of Adopt's
	// at From-1 (or at SkippedTo's start) is taken over instead of
	// refused as another owner's (ErrForeignOwner). The snapshot's
	// summary records it (AdoptedPrefix).
	Adopt string
}

// DataFile is a Parquet data file written by flush/, with the statistics
// committed to the manifest. All rows share one (event_date, event_hour).
type DataFile struct {
	Path      string // full location: file:///… or s3://bucket/…
	SizeBytes int64
	Records   int64
	EventDate int32 // days since 1970-01-01 (UTC)
	EventHour int32 // 0..23 (UTC)
	Partition uint32
	// PartitionMax, when above Partition, makes the file hold the
	// partitions Partition..PartitionMax (a compacted file).
	PartitionMax uint32
	Topic        string
	MinSeq       uint64
	MaxSeq       uint64
	MinTs        int64
	MaxTs        int64
	// NullKeys counts rows without an idempotency key.
	NullKeys int64
	// ColumnSizes are the compressed bytes per field ID; optional.
	ColumnSizes map[int]int64
	// Columns are the field IDs of the file's columns; nil means the
	// event schema's, 1..8.
	Columns []int
	// Nulls counts the null values of the columns other than
	// idempotency_key (NullKeys), by field ID; absent means none.
	Nulls map[int]int64
	// Bounds are the lower and upper bounds of typed columns, by field
	// ID, where flush knows them (the event columns' come from the fields
	// above).
	Bounds map[int][2]iceberg.Literal
}

// CommitResult describes a successful Commit.
type CommitResult struct {
	SnapshotID       int64
	MetadataLocation string
	// Already is set when the table already held every range (an earlier
	// attempt whose outcome was unknown had succeeded): nothing new was
	// committed.
	Already  bool
	Attempts int
}

// Table is one event table. Commit is serialised per Table.
type Table struct {
	c     *Catalog
	name  string
	ident table.Identifier

	mu  sync.Mutex // the committer lock; guards tbl
	tbl *table.Table
}

// Name returns the table name.
func (t *Table) Name() string { return t.name }

// Iceberg returns the last loaded iceberg-go table (for scans and views).
func (t *Table) Iceberg() *table.Table {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tbl
}

// Location returns the table location, under which data files go.
func (t *Table) Location() string { return t.Iceberg().Location() }

// MetadataLocation returns the location of the current metadata file, as
// last loaded or committed by this process.
func (t *Table) MetadataLocation() string { return t.Iceberg().MetadataLocation() }

// Refresh reloads the table from the catalog.
func (t *Table) Refresh(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refreshLocked(ctx)
}

// Lock should be held.
func (t *Table) refreshLocked(ctx context.Context) error {
	tbl, err := t.c.cat.LoadTable(ctx, t.ident)
	if err != nil {
		return fmt.Errorf("catalog: load table %s: %w", t.name, err)
	}
	t.tbl = tbl
	return nil
}

// Watermarks reloads the table and returns the committed marks of its
// current snapshot.
func (t *Table) Watermarks(ctx context.Context) (Watermarks, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refreshLocked(ctx); err != nil {
		return nil, err
	}
	return SnapshotWatermarks(t.tbl.CurrentSnapshot())
}

// SnapshotWatermarks parses the zombi.* watermark properties of a
// snapshot summary. A nil snapshot (an empty table) has none.
func SnapshotWatermarks(s *table.Snapshot) (Watermarks, error) {
	if s == nil || s.Summary == nil {
		return Watermarks{}, nil
	}
	w, err := summaryWatermarks(s.Summary.Properties)
	if err != nil {
		return nil, fmt.Errorf("catalog: snapshot %d: %w", s.SnapshotID, err)
	}
	return w, nil
}

func summaryWatermarks(props iceberg.Properties) (Watermarks, error) {
	w := Watermarks{}
	for k, v := range props {
		var prefix string
		for _, pre := range [...]string{WatermarkPrefix, HighWatermarkPrefix, OwnerPrefix, CheckPrefix} {
			if strings.HasPrefix(k, pre) {
				prefix = pre
				break
			}
		}
		if prefix == "" {
			continue
		}
		p, err := strconv.ParseUint(k[len(prefix):], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad watermark key %q", k)
		}
		m := w[uint32(p)]
		switch prefix {
		case OwnerPrefix:
			m.Owner = v
		case CheckPrefix:
			m.Check = v
		default:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad watermark %s=%q", k, v)
			}
			if prefix == HighWatermarkPrefix {
				m.High = n
			} else {
				m.Flushed = n
			}
		}
		w[uint32(p)] = m
	}
	return w, nil
}

// summaryProps returns the snapshot properties of a commit: every mark of
// w (already merged with the new ranges).
func summaryProps(w Watermarks) iceberg.Properties {
	props := make(iceberg.Properties, 3*len(w))
	for p, m := range w {
		ps := strconv.FormatUint(uint64(p), 10)
		props[WatermarkPrefix+ps] = strconv.FormatUint(m.Flushed, 10)
		props[HighWatermarkPrefix+ps] = strconv.FormatUint(m.High, 10)
		if m.Owner != "" {
			props[OwnerPrefix+ps] = m.Owner
		}
		if m.Check != "" {
			props[CheckPrefix+ps] = m.Check
		}
	}
	return props
}

// Commit adds files to the table in one snapshot whose summary advances
// the watermark of every range's partition to its To (and carries the
// other partitions forward).
//
// Before every attempt it reloads the table and checks each range against
// the committed watermark: when every partition is already at or beyond
// To, the commit had already succeeded (CommitResult.Already); when one is
// neither From-1 nor at/beyond To, it returns ErrConflict and commits
// nothing. Any failed attempt (table.ErrCommitFailed, the SQL catalog's
// "requirement failed: branch main has changed", a lost connection) is
// retried with backoff up to Options.CommitAttempts, so a range is never
// committed twice and never skipped.
func (t *Table) Commit(ctx context.Context, ranges []Range, files []DataFile) (CommitResult, error) {
	if len(ranges) == 0 {
		return CommitResult{}, errors.New("catalog: commit without ranges")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.commitLocked(ctx, "commit", "commit to "+t.name, false, func() (CommitResult, bool, error) {
		return t.commitOnceLocked(ctx, ranges, files)
	})
}

// commitLocked runs once (one attempt of a commit or a replace) under
// attemptLocked and records in its result the attempts it took; desc
// names the operation in the error when every attempt failed.
//
// Lock should be held.
func (t *Table) commitLocked(ctx context.Context, op, desc string, reloadFirst bool, once func() (CommitResult, bool, error)) (CommitResult, error) {
	var res CommitResult
	exhausted, err := t.attemptLocked(ctx, op, reloadFirst, func(attempt int) (bool, error) {
		r, retry, err := once()
		if err == nil || !retry {
			r.Attempts = attempt
			res = r
		}
		return retry, err
	})
	if exhausted {
		return CommitResult{}, fmt.Errorf("catalog: %s: %d attempts failed: %w", desc, t.c.opts.CommitAttempts, err)
	}
	return res, err
}

// attemptLocked runs once up to Options.CommitAttempts times, backing off
// between attempts and reloading the table before each retry (and before
// the first attempt too when reloadFirst), until once succeeds or says
// its failure is not worth retrying (retry false). It returns once's last
// error, and exhausted when every attempt failed. Commit, Replace and
// ExpireSnapshots share it.
//
// Lock should be held.
func (t *Table) attemptLocked(ctx context.Context, op string, reloadFirst bool, once func(attempt int) (retry bool, err error)) (exhausted bool, err error) {
	o := &t.c.opts
	var lastErr error
	for attempt := 1; attempt <= o.CommitAttempts; attempt++ {
		if attempt > 1 {
			if err := sleepCtx(ctx, backoff(attempt-1, o.RetryInitial, o.RetryMax)); err != nil {
				return false, errors.Join(lastErr, err)
			}
		}
		if attempt > 1 || reloadFirst {
			if err := t.refreshLocked(ctx); err != nil {
				lastErr = err
				o.Logger.Warn("iceberg "+op+": reload failed", "table", t.name, "attempt", attempt, "err", err)
				continue
			}
		}
		retry, err := once(attempt)
		if err == nil || !retry {
			return false, err
		}
		lastErr = err
		o.Logger.Warn("iceberg "+op+" failed; retrying", "table", t.name, "attempt", attempt, "err", err)
	}
	return true, lastErr
}

// commitOnceLocked makes one attempt against t.tbl as loaded. retry says
// whether a failure is worth another attempt after a reload.
//
// Lock should be held.
func (t *Table) commitOnceLocked(ctx context.Context, ranges []Range, files []DataFile) (res CommitResult, retry bool, err error) {
	cur := t.tbl.CurrentSnapshot()
	w, err := SnapshotWatermarks(cur)
	if err != nil {
		return res, false, err
	}
	done := 0
	adopted := map[uint32]string{} // partitions taken over, and from whom
	for _, r := range ranges {
		m := w[r.Partition]
		if r.Adopt != "" && m.Owner == r.Adopt && m.Owner != t.c.opts.Owner {
			adopted[r.Partition] = r.Adopt
			// A takeover: only from where the previous owner left off.
			if m.Flushed != r.From-1 {
				return res, false, fmt.Errorf("%w: table %s partition %d: node %q committed up to %d, taken over at %d",
					ErrConflict, t.name, r.Partition, r.Adopt, m.Flushed, r.From-1)
			}
		} else if err := m.ForeignTo(t.c.opts.Owner, t.name, r.Partition); err != nil {
			return res, false, err
		}
		if r.From == 0 || r.To < r.From || r.SkippedTo != 0 && (r.SkippedTo < r.From || r.SkippedTo >= r.To) {
			return res, false, fmt.Errorf("catalog: bad range %d..%d (skipped to %d) of partition %d", r.From, r.To, r.SkippedTo, r.Partition)
		}
		switch m := w[r.Partition]; {
		case m.Flushed >= r.To:
			done++
		case m.Flushed != r.From-1:
			return res, false, fmt.Errorf("%w: table %s partition %d: committed watermark %d, commit of %d..%d",
				ErrConflict, t.name, r.Partition, m.Flushed, r.From, r.To)
		}
	}
	if done == len(ranges) {
		res.Already = true
		res.MetadataLocation = t.tbl.MetadataLocation()
		if cur != nil {
			res.SnapshotID = cur.SnapshotID
		}
		return res, false, nil
	}
	if done != 0 {
		return res, false, fmt.Errorf("%w: table %s: only some partitions of the commit are already committed", ErrConflict, t.name)
	}
	for _, r := range ranges {
		w[r.Partition] = Mark{Flushed: r.To, High: max(r.High, r.To), Owner: cmp.Or(t.c.opts.Owner, w[r.Partition].Owner), Check: r.Check}
	}
	dfs, err := t.dataFilesLocked(files)
	if err != nil {
		return res, false, err
	}
	props := summaryProps(w)
	for _, r := range ranges {
		ps := strconv.FormatUint(uint64(r.Partition), 10)
		if r.SkippedTo != 0 {
			props[SkippedPrefix+ps] = strconv.FormatUint(r.From, 10) + "-" + strconv.FormatUint(r.SkippedTo, 10)
		}
		if from, ok := adopted[r.Partition]; ok {
			props[AdoptedPrefix+ps] = from + "@" + strconv.FormatUint(r.From-1, 10)
		}
	}
	tx := t.tbl.NewTransaction()
	if err := tx.AddDataFiles(ctx, dfs, props, table.WithoutDuplicateCheck()); err != nil {
		// Nothing was sent to the catalog; a failure to write manifests
		// (object store down) is worth retrying.
		return res, true, fmt.Errorf("catalog: stage commit: %w", err)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		// ErrCommitFailed, the SQL catalog's plain "requirement failed:
		// branch "main" has changed", or an unknown outcome: all are
		// settled by reloading and checking the watermark again.
		return res, true, err
	}
	res.MetadataLocation = tbl.MetadataLocation()
	if s := tbl.CurrentSnapshot(); s != nil {
		res.SnapshotID = s.SnapshotID
	}
	t.adoptLocked(ctx, tbl)
	t.expireLocked(ctx)
	return res, false, nil
}

// adoptLocked makes a table that a commit returned the current one, as
// loaded back from the catalog. The table iceberg-go's Commit returns
// keeps the metadata it was built from reachable, and that one its own:
// keeping it kept every version since the process started, so the live
// heap grew with the square of the commits (223 MB after 400 commits of
// one file each; TestCommitsDoNotPinOldMetadata). The reload parses the
// metadata file just written into a table that holds nothing older. The
// commit has succeeded: if the reload fails, the returned table is kept
// and the next commit or refresh tries again.
func (t *Table) adoptLocked(ctx context.Context, committed *table.Table) {
	t.tbl = committed
	if err := t.refreshLocked(ctx); err != nil {
		t.c.opts.Logger.Warn("reload table after commit", "table", t.name, "err", err)
	}
}

// expireLocked runs the snapshot expiry of ExpireSnapshots (with the
// table's default age and minimum) once the table holds 10 % more than
// Options.RetainSnapshots, so the metadata file stays bounded between
// scheduled expiries. The commit has succeeded already: a failure is
// only logged (the next commit tries again).
//
// Lock should be held.
func (t *Table) expireLocked(ctx context.Context) {
	keep := t.c.opts.RetainSnapshots
	if keep < 0 || len(t.tbl.Metadata().Snapshots()) <= keep+keep/10 {
		return
	}
	if _, err := t.expireOnceLocked(ctx, 0, 0); err != nil {
		t.c.opts.Logger.Warn("expire snapshots failed", "table", t.name, "err", err)
	}
}

// dataFilesLocked converts files to iceberg-go data files with the
// partition values and column statistics of the table's spec.
//
// Lock should be held.
func (t *Table) dataFilesLocked(files []DataFile) ([]iceberg.DataFile, error) {
	spec := t.tbl.Spec()
	sortID := t.tbl.SortOrder().OrderID()
	out := make([]iceberg.DataFile, 0, len(files))
	for i := range files {
		f := &files[i]
		b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, f.Path, iceberg.ParquetFile,
			map[int]any{PartitionFieldEventDate: iceberg.Date(f.EventDate), PartitionFieldEventHour: f.EventHour},
			map[int]string{PartitionFieldEventDate: "date"}, nil, f.Records, f.SizeBytes)
		if err != nil {
			return nil, fmt.Errorf("catalog: data file %s: %w", f.Path, err)
		}
		lower, upper, err := bounds(f)
		if err != nil {
			return nil, fmt.Errorf("catalog: data file %s: %w", f.Path, err)
		}
		ids := f.Columns
		if ids == nil {
			ids = eventColumns[:]
		}
		counts := make(map[int]int64, len(ids))
		nulls := make(map[int]int64, len(ids))
		for _, id := range ids {
			counts[id] = f.Records
			nulls[id] = f.Nulls[id]
		}
		nulls[FieldIdempotencyKey] = f.NullKeys
		for id, b := range f.Bounds {
			l, err1 := b[0].MarshalBinary()
			u, err2 := b[1].MarshalBinary()
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("catalog: data file %s: bounds of field %d: %w", f.Path, id, err)
			}
			lower[id], upper[id] = l, u
		}
		b.LowerBoundValues(lower).UpperBoundValues(upper).ValueCounts(counts).NullValueCounts(nulls)
		if len(f.ColumnSizes) > 0 {
			b.ColumnSizes(f.ColumnSizes)
		}
		if sortID != 0 {
			b.SortOrderID(sortID)
		}
		out = append(out, b.Build())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FilePath() < out[j].FilePath() })
	return out, nil
}

// eventColumns are the field IDs of the event schema.
var eventColumns = [...]int{FieldSequence, FieldTopic, FieldPartition, FieldPayload, FieldTimestampMs, FieldIdempotencyKey, FieldEventDate, FieldEventHour}

// bounds returns the Iceberg single-value encodings of the lower and upper
// bounds of the columns whose range flush knows.
func bounds(f *DataFile) (lower, upper map[int][]byte, err error) {
	lower, upper = make(map[int][]byte, 6), make(map[int][]byte, 6)
	put := func(id int, lo, hi iceberg.Literal) {
		if err != nil {
			return
		}
		var l, h []byte
		if l, err = lo.MarshalBinary(); err != nil {
			return
		}
		if h, err = hi.MarshalBinary(); err != nil {
			return
		}
		lower[id], upper[id] = l, h
	}
	put(FieldSequence, iceberg.NewLiteral(int64(f.MinSeq)), iceberg.NewLiteral(int64(f.MaxSeq)))
	put(FieldTimestampMs, iceberg.NewLiteral(f.MinTs), iceberg.NewLiteral(f.MaxTs))
	put(FieldPartition, iceberg.NewLiteral(int32(f.Partition)), iceberg.NewLiteral(int32(max(f.Partition, f.PartitionMax))))
	put(FieldEventDate, iceberg.NewLiteral(iceberg.Date(f.EventDate)), iceberg.NewLiteral(iceberg.Date(f.EventDate)))
	put(FieldEventHour, iceberg.NewLiteral(f.EventHour), iceberg.NewLiteral(f.EventHour))
	if f.Topic != "" && len(f.Topic) <= 16 {
		put(FieldTopic, iceberg.NewLiteral(f.Topic), iceberg.NewLiteral(f.Topic))
	}
	return lower, upper, err
}
