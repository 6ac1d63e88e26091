package flush

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// duckdbModules returns a node_modules directory holding @duckdb/node-api
// (ZOMBI_TEST_DUCKDB_MODULES, or ~/.cache/zombi-duckdb/node_modules where
// .ci/run installs it), or "".
func duckdbModules() string {
	dir := os.Getenv("ZOMBI_TEST_DUCKDB_MODULES")
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "zombi-duckdb", "node_modules")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "@duckdb", "node-api")); err != nil {
		return ""
	}
	return dir
}

// DuckDB's own Parquet reader, independent of parquet-go and iceberg-go,
// reads every committed data file: row count, no duplicate events, nulls,
// hours and the Iceberg field IDs in the footer.
func TestDuckDBReadsDataFiles(t *testing.T) {
	mods := duckdbModules()
	node, err := exec.LookPath("node")
	if mods == "" || err != nil {
		skipService(t, "node and @duckdb/node-api not found: set ZOMBI_TEST_DUCKDB_MODULES or "+
			"npm install --prefix ~/.cache/zombi-duckdb @duckdb/node-api")
	}
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{BatchBytes: 1 << 20})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 20000, want)
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	tbl, _ := v.f.Table(ctx, "events")
	tasks, err := tbl.Iceberg().Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join("testdata", "duckcheck.cjs")}
	for _, task := range tasks {
		u, err := url.Parse(task.File.FilePath())
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, u.Path)
	}
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckcheck: %v", err)
	}
	var got struct { // DuckDB's BIGINTs come as JSON strings
		Rows           int64          `json:"rows,string"`
		DistinctEvents int64          `json:"distinct_events,string"`
		MinSeq         int64          `json:"min_seq,string"`
		NullKeys       int64          `json:"null_keys,string"`
		BadHours       int64          `json:"bad_hours,string"`
		FieldIDs       map[string]int `json:"field_ids"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var nullKeys int64
	for _, ev := range want {
		if ev.key == "" {
			nullKeys++
		}
	}
	if got.Rows != int64(len(want)) || got.DistinctEvents != got.Rows || got.NullKeys != nullKeys || got.BadHours != 0 || got.MinSeq != 1 {
		t.Fatalf("duckdb: %s (want %d rows, %d null keys)", out, len(want), nullKeys)
	}
	wantIDs := map[string]int{"sequence": 1, "topic": 2, "partition": 3, "payload": 4, "timestamp_ms": 5, "idempotency_key": 6, "event_date": 7, "event_hour": 8}
	for name, id := range wantIDs {
		if got.FieldIDs[name] != id {
			t.Fatalf("duckdb field ids %v", got.FieldIDs)
		}
	}
}
