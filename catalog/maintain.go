package catalog

// Table maintenance: the catalog side of compaction (LiveFiles, Replace),
// snapshot expiry (ExpireSnapshots, also run by Commit once a table holds
// too many snapshots) and the reference set of orphan cleanup
// (ReferencedFiles). The data files themselves are read and written by
// flush/.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// ErrNotLive is returned by Replace when a file to replace is no longer a
// live data file of the table (another compaction replaced it): nothing
// was committed.
var ErrNotLive = errors.New("catalog: file to replace is no longer live")

// LiveFile is a data file of the table's current snapshot.
type LiveFile struct {
	Path      string
	SizeBytes int64
	Records   int64
	EventDate int32
	EventHour int32
	// MinTs is the lower bound of timestamp_ms (math.MinInt64 when the
	// manifest has none): compaction opens a file only when its merge
	// reaches this timestamp.
	MinTs int64
}

// LiveFiles reloads the table and returns the data files of its current
// snapshot, ordered by path, with the snapshot's ID (0 for an empty
// table).
func (t *Table) LiveFiles(ctx context.Context) ([]LiveFile, int64, error) {
	t.mu.Lock()
	if err := t.refreshLocked(ctx); err != nil {
		t.mu.Unlock()
		return nil, 0, err
	}
	tbl := t.tbl // immutable: read it without the lock
	t.mu.Unlock()
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		return nil, 0, nil
	}
	dfs, err := liveDataFiles(ctx, tbl)
	if err != nil {
		return nil, 0, err
	}
	out := make([]LiveFile, 0, len(dfs))
	for _, df := range dfs {
		lf := LiveFile{Path: df.FilePath(), SizeBytes: df.FileSizeBytes(), Records: df.Count(), MinTs: math.MinInt64}
		pv := df.Partition()
		lf.EventDate, err = int32Of(pv[PartitionFieldEventDate])
		if err == nil {
			lf.EventHour, err = int32Of(pv[PartitionFieldEventHour])
		}
		if err != nil {
			return nil, 0, fmt.Errorf("catalog: data file %s: partition %v: %w", lf.Path, pv, err)
		}
		if b := df.LowerBoundValues()[FieldTimestampMs]; len(b) == 8 {
			lf.MinTs = int64(binary.LittleEndian.Uint64(b))
		}
		out = append(out, lf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, cur.SnapshotID, nil
}

func int32Of(v any) (int32, error) {
	switch x := v.(type) {
	case int32:
		return x, nil
	case iceberg.Date:
		return int32(x), nil
	case int:
		return int32(x), nil
	case int64:
		return int32(x), nil
	}
	return 0, fmt.Errorf("unexpected partition value %T", v)
}

// liveDataFiles returns the data files of tbl's current snapshot.
func liveDataFiles(ctx context.Context, tbl *table.Table) ([]iceberg.DataFile, error) {
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: plan files of %s: %w", tbl.Identifier(), err)
	}
	out := make([]iceberg.DataFile, 0, len(tasks))
	seen := make(map[string]bool, len(tasks))
	for _, task := range tasks {
		if p := task.File.FilePath(); !seen[p] { // a split file appears once per split
			seen[p] = true
			out = append(out, task.File)
		}
	}
	return out, nil
}

// Replace commits, as one Iceberg replace snapshot, the removal of the
// live data files at paths old and the addition of files, which hold
// exactly the rows of old (compaction). The snapshot carries the current
// snapshot's watermarks forward unchanged, so the flusher reads back the
// same committed position after a restart.
//
// Replace is serialised with Commit by the table's committer lock and
// retried like it: before every attempt the table is reloaded and every
// file of old must still be live; when none is and every file of files
// is, an earlier attempt whose outcome was unknown had succeeded
// (CommitResult.Already). When only some are, or files of old are gone
// without files being live, it returns ErrNotLive and commits nothing.
func (t *Table) Replace(ctx context.Context, old []string, files []DataFile) (CommitResult, error) {
	if len(old) == 0 || len(files) == 0 {
		return CommitResult{}, errors.New("catalog: replace needs files to remove and to add")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Always reload: the set of live files must be the catalog's.
	return t.commitLocked(ctx, "replace", "replace in "+t.name, true, func() (CommitResult, bool, error) {
		return t.replaceOnceLocked(ctx, old, files)
	})
}

// Lock should be held.
func (t *Table) replaceOnceLocked(ctx context.Context, old []string, files []DataFile) (res CommitResult, retry bool, err error) {
	cur := t.tbl.CurrentSnapshot()
	if cur == nil {
		return res, false, fmt.Errorf("%w: table %s is empty", ErrNotLive, t.name)
	}
	w, err := SnapshotWatermarks(cur)
	if err != nil {
		return res, false, err
	}
	live, err := liveDataFiles(ctx, t.tbl)
	if err != nil {
		return res, true, err
	}
	byPath := make(map[string]iceberg.DataFile, len(live))
	for _, df := range live {
		byPath[df.FilePath()] = df
	}
	var dels []iceberg.DataFile
	for _, p := range old {
		if df, ok := byPath[p]; ok {
			dels = append(dels, df)
		}
	}
	added := 0
	for i := range files {
		if _, ok := byPath[files[i].Path]; ok {
			added++
		}
	}
	switch {
	case len(dels) == 0 && added == len(files):
		res.Already, res.SnapshotID, res.MetadataLocation = true, cur.SnapshotID, t.tbl.MetadataLocation()
		return res, false, nil
	case len(dels) != len(old) || added != 0:
		return res, false, fmt.Errorf("%w: table %s: %d of %d files to replace are live, %d of %d new files are",
			ErrNotLive, t.name, len(dels), len(old), added, len(files))
	}
	dfs, err := t.dataFilesLocked(files)
	if err != nil {
		return res, false, err
	}
	tx := t.tbl.NewTransaction()
	rw := tx.NewRewrite(summaryProps(w))
	for _, df := range dels {
		rw.DeleteFile(df)
	}
	for _, df := range dfs {
		rw.AddDataFile(df)
	}
	if err := rw.Commit(ctx); err != nil {
		return res, true, fmt.Errorf("catalog: stage replace: %w", err)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return res, true, err
	}
	res.MetadataLocation = tbl.MetadataLocation()
	if s := tbl.CurrentSnapshot(); s != nil {
		res.SnapshotID = s.SnapshotID
	}
	t.adoptLocked(ctx, tbl)
	return res, false, nil
}

// ExpireResult describes one snapshot expiry.
type ExpireResult struct {
	Expired   int // snapshots removed from the metadata
	Remaining int
}

// ExpireSnapshots removes the snapshots older than maxAge (0: the table's
// Options.SnapshotMaxAge) beyond the newest Options.RetainSnapshots in
// any case, always keeping the newest max(minKeep, 1) (minKeep 0:
// Options.MinSnapshots). Files that only expired snapshots reference —
// their manifest lists and manifests, and data files that a compaction
// replaced — are deleted after the commit (iceberg-go's post-commit
// cleanup); a file that a remaining snapshot references is never
// deleted. It is the one expiry mechanism: Commit runs it too, once the
// table holds 10 % more than Options.RetainSnapshots.
func (t *Table) ExpireSnapshots(ctx context.Context, maxAge time.Duration, minKeep int) (ExpireResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var res ExpireResult
	exhausted, err := t.attemptLocked(ctx, "expire snapshots", true, func(int) (bool, error) {
		r, err := t.expireOnceLocked(ctx, maxAge, minKeep)
		if err == nil {
			res = r
		}
		return true, err
	})
	if exhausted {
		return ExpireResult{}, fmt.Errorf("catalog: expire snapshots of %s: %w", t.name, err)
	}
	return res, err
}

// Lock should be held.
func (t *Table) expireOnceLocked(ctx context.Context, maxAge time.Duration, minKeep int) (ExpireResult, error) {
	o := &t.c.opts
	if maxAge <= 0 {
		maxAge = o.SnapshotMaxAge
	}
	if minKeep <= 0 {
		minKeep = o.MinSnapshots
	}
	snaps := t.tbl.Metadata().Snapshots()
	before := len(snaps)
	res := ExpireResult{Remaining: before}
	// The snapshots kept are the newest max(minKeep, 1) and those younger
	// than maxAge (snapshots form one chain on main: both are the newest
	// few), but never more than RetainSnapshots: the metadata file that
	// every commit rewrites stays bounded.
	keepLast := max(minKeep, 1)
	nowMs := time.Now().UnixMilli()
	young := 0
	for _, s := range snaps {
		if nowMs-s.TimestampMs <= maxAge.Milliseconds() {
			young++
		}
	}
	if c := o.RetainSnapshots; c > 0 && max(young, keepLast) > c {
		keepLast, maxAge = c, 0
	}
	tx := t.tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithRetainLast(keepLast), table.WithOlderThan(maxAge)); err != nil {
		return res, err
	}
	tbl, err := tx.Commit(ctx)
	if tbl != nil && tbl != t.tbl && tbl.Metadata() != nil {
		// Committed (a failed post-commit file deletion leaves orphans
		// to the orphan cleanup; it is not an expiry failure).
		res.Remaining = len(tbl.Metadata().Snapshots())
		t.adoptLocked(ctx, tbl)
		res.Expired = before - res.Remaining
		if err != nil {
			o.Logger.Warn("expire snapshots: deleting unreferenced files failed; orphan cleanup will", "table", t.name, "err", err)
		}
		return res, nil
	}
	return res, err
}

// ReferencedFiles reloads the table and returns every file its metadata
// refers to, normalised with NormalizeLocation: the current and previous
// metadata files, statistics files, and for every snapshot its manifest
// list, its manifests and every file entry of those (deleted entries
// included), and, in dataFiles, the data files of the current snapshot.
// It also returns the table location. A file under the location that is
// not in refs belongs to no snapshot and no metadata file.
func (t *Table) ReferencedFiles(ctx context.Context) (refs map[string]bool, dataFiles []string, location string, err error) {
	t.mu.Lock()
	if err := t.refreshLocked(ctx); err != nil {
		t.mu.Unlock()
		return nil, nil, "", err
	}
	tbl := t.tbl
	t.mu.Unlock()
	md := tbl.Metadata()
	refs = make(map[string]bool)
	add := func(p string) {
		if p != "" {
			refs[NormalizeLocation(p)] = true
		}
	}
	add(tbl.MetadataLocation())
	for e := range md.PreviousFiles() {
		add(e.MetadataFile)
	}
	for s := range md.Statistics() {
		add(s.StatisticsPath)
	}
	for s := range md.PartitionStatistics() {
		add(s.StatisticsPath)
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, nil, "", fmt.Errorf("catalog: %s: %w", t.name, err)
	}
	seen := make(map[string]bool)
	for _, s := range md.Snapshots() {
		add(s.ManifestList)
		mans, err := s.Manifests(fs)
		if err != nil {
			return nil, nil, "", fmt.Errorf("catalog: %s: manifests of snapshot %d: %w", t.name, s.SnapshotID, err)
		}
		for _, m := range mans {
			if seen[m.FilePath()] {
				continue
			}
			seen[m.FilePath()] = true
			add(m.FilePath())
			for e, err := range m.Entries(fs, false) {
				if err != nil {
					return nil, nil, "", fmt.Errorf("catalog: %s: manifest %s: %w", t.name, m.FilePath(), err)
				}
				add(e.DataFile().FilePath())
				if r := e.DataFile().ReferencedDataFile(); r != nil {
					add(*r)
				}
			}
		}
	}
	if tbl.CurrentSnapshot() != nil {
		live, err := liveDataFiles(ctx, tbl)
		if err != nil {
			return nil, nil, "", err
		}
		for _, df := range live {
			dataFiles = append(dataFiles, NormalizeLocation(df.FilePath()))
		}
	}
	return refs, dataFiles, NormalizeLocation(tbl.Location()), nil
}

// NormalizeLocation returns the canonical spelling of a file location,
// so that a location listed from the object store and one written in a
// manifest compare equal: file:///a/b (also for file:/a/b and a bare
// /a/b) and s3://bucket/key (also for s3a://), with the path cleaned.
func NormalizeLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	switch u.Scheme {
	case "", "file":
		if u.Host != "" && u.Host != "localhost" {
			return loc
		}
		return "file://" + path.Clean("/"+u.Path)
	case "s3", "s3a":
		return "s3://" + u.Host + "/" + strings.TrimPrefix(path.Clean("/"+u.Path), "/")
	}
	return loc
}
