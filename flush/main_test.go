package flush

import (
	"testing"

	"go.uber.org/goleak"
)

// Idle keep-alive connections of the S3 clients (minio-go, and the AWS
// SDK inside iceberg-go) are pooled by net/http, not leaked.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}
