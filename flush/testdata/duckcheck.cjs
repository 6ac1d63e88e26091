// duckcheck reads Parquet data files with DuckDB's own reader, an
// independent check of what flush/ writes. Usage:
//   NODE_PATH=<dir>/node_modules node duckcheck.cjs file.parquet...
// It prints one JSON object: rows, distinct (partition, sequence) pairs,
// min/max sequence and timestamp_ms, null keys, and the field_id of each
// column from the Parquet footer.
const { DuckDBInstance } = require('@duckdb/node-api');

async function main() {
  const files = process.argv.slice(2);
  const list = '[' + files.map((f) => "'" + f.replaceAll("'", "''") + "'").join(',') + ']';
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const stats = await c.runAndReadAll(
    `SELECT count(*)::BIGINT AS rows,
            count(DISTINCT (partition, sequence))::BIGINT AS distinct_events,
            min(sequence)::BIGINT AS min_seq, max(sequence)::BIGINT AS max_seq,
            min(timestamp_ms)::BIGINT AS min_ts, max(timestamp_ms)::BIGINT AS max_ts,
            count(*) FILTER (WHERE idempotency_key IS NULL)::BIGINT AS null_keys,
            count(*) FILTER (WHERE event_hour <> hour(make_timestamp(timestamp_ms * 1000)))::BIGINT AS bad_hours
       FROM read_parquet(${list})`);
  const row = stats.getRowObjectsJson()[0];
  const schema = await c.runAndReadAll(
    `SELECT DISTINCT name, field_id FROM parquet_schema(${list}) WHERE field_id IS NOT NULL ORDER BY field_id`);
  row.field_ids = Object.fromEntries(schema.getRowObjectsJson().map((r) => [r.name, Number(r.field_id)]));
  process.stdout.write(JSON.stringify(row) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
