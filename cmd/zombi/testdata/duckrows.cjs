// duckrows reads Parquet data files with DuckDB's own reader (columns
// matched by name across files of different schema versions) and prints
// the selected columns of every row, ordered by partition and sequence,
// as a JSON array. Usage:
//   NODE_PATH=<dir>/node_modules node duckrows.cjs "<select list>" file.parquet...
const { DuckDBInstance } = require('@duckdb/node-api');

async function main() {
  const select = process.argv[2];
  const files = process.argv.slice(3);
  const list = '[' + files.map((f) => "'" + f.replaceAll("'", "''") + "'").join(',') + ']';
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  const rows = await c.runAndReadAll(
    `SELECT ${select} FROM read_parquet(${list}, union_by_name = true) ORDER BY partition, sequence`);
  process.stdout.write(JSON.stringify(rows.getRowObjectsJson()) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
