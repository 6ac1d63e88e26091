// Package testsvc starts the real services that tests run against —
// PostgreSQL, MinIO, HAProxy — on 127.0.0.1, as throwaway processes
// removed when the test ends. It is imported by tests only.
//
// A service that is not installed skips the test, or fails it when
// ZOMBI_TEST_REQUIRE_SERVICES is set (as .ci/run does), so that a
// missing install cannot pass as a skip.
package testsvc

import (
	"net"
	"os"
	"testing"
)

// Skip skips tb because a service it needs is missing, or fails it when
// ZOMBI_TEST_REQUIRE_SERVICES is set.
func Skip(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("ZOMBI_TEST_REQUIRE_SERVICES") != "" {
		tb.Fatal("ZOMBI_TEST_REQUIRE_SERVICES is set: " + msg)
	}
	tb.Skip(msg)
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
