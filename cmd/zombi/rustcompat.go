package main

import (
	"log/slog"
	"slices"
	"strings"
)

// rustOnly lists the Rust Zombi's settings of its own engine (RocksDB,
// its write combiner, its flusher's batching), with why each has no
// effect here: an env file written for the Rust Zombi starts this server
// unchanged, and the log says once what it ignores. A name ending in "_"
// is a prefix.
var rustOnly = []struct{ name, why string }{
	{"ZOMBI_ROCKSDB_", "there is no RocksDB: the hot tier is an append-only log of segment files per partition (ZOMBI_SEGMENT_SIZE_MB, ZOMBI_FSYNC)"},
	{"ZOMBI_WRITE_COMBINER_", "concurrent writes to a partition are always combined: one pwrite and one group-commit sync per batch of appenders"},
	{"ZOMBI_BLOOM_", "there are no bloom filters: reads seek through each segment's sparse offset and time index, idempotency keys are kept in a per-partition map"},
	{"ZOMBI_TIMESTAMP_INDEX_ENABLED", "the time index is always on (one entry per ~4 KiB of records in each segment's sparse index)"},
	{"ZOMBI_FLUSH_BATCH_SIZE", "the flusher reads in batches of bytes, not events (8 MiB per partition at a time)"},
	{"ZOMBI_FLUSH_MAX_SEGMENT", "a flush takes whole sealed segments (ZOMBI_SEGMENT_SIZE_MB), up to 128 MiB per partition and commit"},
	{"ZOMBI_SNAPSHOT_THRESHOLD_FILES", "every flush round is one Iceberg commit; small files are merged by compaction (ZOMBI_AUTO_COMPACTION, ZOMBI_COMPACTION_MIN_FILES)"},
	{"ZOMBI_SNAPSHOT_THRESHOLD_GB", "every flush round is one Iceberg commit; small files are merged by compaction (ZOMBI_AUTO_COMPACTION, ZOMBI_COMPACTION_MIN_FILES)"},
}

// ignoredSettings returns the Rust-only settings among the environment
// entries env ("NAME=value"), with why each is ignored, sorted by name.
// Settings of this server that share a prefix (ZOMBI_SNAPSHOT_RETAIN_*)
// are not among them.
func ignoredSettings(env []string) [][2]string {
	ours := map[string]bool{}
	for _, s := range settings {
		ours[s.Env] = true
	}
	var out [][2]string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "ZOMBI_") || ours[name] {
			continue
		}
		for _, r := range rustOnly {
			if name == r.name || strings.HasSuffix(r.name, "_") && strings.HasPrefix(name, r.name) {
				out = append(out, [2]string{name, r.why})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// logIgnoredSettings logs, once at start-up, the Rust-only settings that
// the environment sets.
func logIgnoredSettings(log *slog.Logger, env []string) {
	for _, s := range ignoredSettings(env) {
		log.Warn("setting of the Rust Zombi has no effect here", "setting", s[0], "why", s[1])
	}
}
