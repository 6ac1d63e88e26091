package catalog

import (
	"database/sql"
	"net/url"

	"github.com/apache/iceberg-go"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite" (pure Go)
)

// openSQL opens an iceberg-go SQL catalog on a database/sql driver. The
// returned *sql.DB belongs to the caller (NewCatalog does not close it).
func openSQL(name, driver, dsn string, dialect sqlcat.SupportedDialect, props iceberg.Properties) (*sqlcat.Catalog, *sql.DB, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, nil, err
	}
	cat, err := sqlcat.NewCatalog(name, db, dialect, props)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return cat, db, nil
}

// sqliteDSN is the modernc.org/sqlite DSN of the catalog file at path:
// WAL so readers do not block the committer, a busy timeout so concurrent
// processes wait instead of failing, and BEGIN IMMEDIATE so a transaction
// never has to upgrade a read lock (which fails at once with SQLITE_BUSY).
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}
