package catalog

import (
	"os"
	"testing"
)

// skipService skips a test whose external service (MinIO, DuckDB,
// PostgreSQL) is not installed, or fails it when ZOMBI_TEST_REQUIRE_SERVICES
// is set, as .ci/run does, so that a missing install cannot pass as a skip.
func skipService(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("ZOMBI_TEST_REQUIRE_SERVICES") != "" {
		tb.Fatal("ZOMBI_TEST_REQUIRE_SERVICES is set: " + msg)
	}
	tb.Skip(msg)
}
