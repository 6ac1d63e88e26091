package testsvc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOBucket is the bucket StartMinIO makes.
const MinIOBucket = "zombi"

// MinIOUser and MinIOSecret are the root credentials of the test MinIO
// (the access key id and the secret access key).
const (
	MinIOUser   = "zombitest"
	MinIOSecret = "zombitest-secret"
)

// MinIO is a throwaway MinIO server on 127.0.0.1 with the bucket
// MinIOBucket, killed when the test ends. Stop and Start take it down and
// bring it back on the same address and data, for tests of what a client
// does while S3 is unreachable.
type MinIO struct {
	// Addr is the host:port of the S3 API (http, region us-east-1).
	Addr string
	// User and Secret are the root credentials (the access key id and
	// the secret access key).
	User, Secret string

	bin, dir string
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has been waited for
}

// StartMinIO starts MinIO on a free port of 127.0.0.1 with its data in a
// temporary directory, and waits until the bucket MinIOBucket exists. The
// binary is $ZOMBI_TEST_MINIO, or else minio in zombi-bin under the user's
// cache directory (~/.cache/zombi-bin/minio, where .ci/run builds it); the
// test is skipped (see Skip) when there is none.
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	bin := os.Getenv("ZOMBI_TEST_MINIO")
	if bin == "" {
		if d, err := os.UserCacheDir(); err == nil {
			bin = filepath.Join(d, "zombi-bin", "minio")
		}
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		Skip(tb, "MinIO binary not found: set ZOMBI_TEST_MINIO or build it into ~/.cache/zombi-bin (see .ci/run)")
	}
	m := &MinIO{
		Addr:   "127.0.0.1:" + strconv.Itoa(FreePort(tb)),
		User:   MinIOUser,
		Secret: MinIOSecret,
		bin:    bin,
		dir:    tb.TempDir(),
	}
	tb.Cleanup(m.Stop)
	m.Start(tb)
	return m
}

// Start starts the server (again, after Stop) on the same address and
// data, and waits until its object layer answers: until the bucket
// MinIOBucket can be found or made.
func (m *MinIO) Start(tb testing.TB) {
	tb.Helper()
	if m.cmd != nil {
		tb.Fatal("testsvc: MinIO started twice")
	}
	logPath := filepath.Join(m.dir, "minio.log")
	logs, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Addr, "--console-address", "127.0.0.1:0", filepath.Join(m.dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.User, "MINIO_ROOT_PASSWORD="+m.Secret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	logs.Close() // the child holds its own copy
	if err != nil {
		tb.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(m.done) }()
	cl, err := minio.New(m.Addr, &minio.Options{Creds: credentials.NewStaticV4(m.User, m.Secret, ""), Region: "us-east-1"})
	if err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := cl.BucketExists(ctx, MinIOBucket)
		if err == nil && !ok {
			err = cl.MakeBucket(ctx, MinIOBucket, minio.MakeBucketOptions{})
		}
		cancel()
		if err == nil {
			return
		}
		select {
		case <-m.done:
			out, _ := os.ReadFile(logPath)
			m.cmd = nil
			tb.Fatalf("minio exited: %v\n%s", cmd.ProcessState, out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logPath)
			tb.Fatalf("minio on %s not ready after 30 s: %v\n%s", m.Addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server, as a crash would, and waits for it; connections
// are refused until Start. Stopping a stopped server does nothing.
func (m *MinIO) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}
