package flush

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// minioServer is a MinIO server on 127.0.0.1 over a temporary directory,
// started from the binary named by ZOMBI_TEST_MINIO or the CI cache
// (~/.cache/zombi-bin/minio, built by .ci/run with
// GOBIN=~/.cache/zombi-bin go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c).
type minioServer struct {
	bin, dir, addr string
	cmd            *exec.Cmd
	log            *os.File
	// release ends the goroutine whose locked thread started cmd.
	release chan struct{}
}

const (
	minioUser   = "zombitest"
	minioSecret = "zombitest-secret"
)

func minioBinary() string {
	if p := os.Getenv("ZOMBI_TEST_MINIO"); p != "" {
		return p
	}
	if d, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(d, "zombi-bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// startMinio starts a MinIO server for the test, or skips the test when
// no binary is available.
func startMinio(tb testing.TB) *minioServer {
	tb.Helper()
	bin := minioBinary()
	if bin == "" {
		skipService(tb, "MinIO binary not found: set ZOMBI_TEST_MINIO or build it with "+
			"GOBIN=$HOME/.cache/zombi-bin go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c")
	}
	m := &minioServer{bin: bin, dir: tb.TempDir(), addr: freeAddr(tb)}
	tb.Cleanup(m.stop)
	if err := m.start(); err != nil {
		tb.Fatal(err)
	}
	return m
}

func freeAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (m *minioServer) start() error {
	if m.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(m.dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	data := filepath.Join(m.dir, "data")
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.addr, "--console-address", "127.0.0.1:0", data)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioSecret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the OS thread that forked exits, not the
	// process, and the background flusher locks whatever thread it runs
	// on (lowerPriority), which then ends with it: forked from any
	// thread, MinIO was killed whenever a Flusher whose loop had locked
	// that thread closed. Fork from a thread locked to a goroutine that
	// lives as long as the server instead.
	release, started := make(chan struct{}), make(chan error)
	go func() {
		runtime.LockOSThread()
		started <- cmd.Start()
		<-release
	}()
	if err := <-started; err != nil {
		close(release)
		logf.Close()
		return fmt.Errorf("start minio: %w", err)
	}
	m.cmd, m.log, m.release = cmd, logf, release
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + m.addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			m.stop()
			out, _ := os.ReadFile(filepath.Join(m.dir, "minio.log"))
			return fmt.Errorf("minio on %s not ready after 60s: %s", m.addr, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the server (its data stays for a later start).
func (m *minioServer) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.log.Close()
	close(m.release)
	m.cmd = nil
}

// store returns an S3Store on a new bucket.
func (m *minioServer) store(tb testing.TB, bucket string) *S3Store {
	tb.Helper()
	s, err := NewS3Store(S3Options{Bucket: bucket, Endpoint: "http://" + m.addr, Region: "us-east-1",
		AccessKey: minioUser, SecretKey: minioSecret, ClientRetries: 1})
	if err != nil {
		tb.Fatal(err)
	}
	// /minio/health/ready can answer before the object layer is up.
	for i := 0; ; i++ {
		err := s.Client().MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{})
		if err == nil {
			return s
		}
		if i == 200 {
			tb.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func openS3(t *testing.T, s *S3Store) func(string) (io.ReaderAt, int64) {
	return func(loc string) (io.ReaderAt, int64) {
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := s.Client().GetObject(context.Background(), u.Host, strings.TrimPrefix(u.Path, "/"), minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { obj.Close() })
		st, err := obj.Stat()
		if err != nil {
			t.Fatalf("%s: %v", loc, err)
		}
		return obj, st.Size
	}
}

func TestFlushEndToEndMinIO(t *testing.T) {
	m := startMinio(t)
	s := m.store(t, "zombi")
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{Store: s})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 20000, want)
	res, err := v.f.FlushTable(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.MetadataLocation, "s3://zombi/warehouse/") {
		t.Fatalf("metadata location %q", res.MetadataLocation)
	}
	tbl, _ := v.f.Table(ctx, "events")
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
	if n := checkDataFiles(t, tbl, openS3(t, s)); n < 5 {
		t.Fatalf("%d data files", n)
	}
}

// MinIO goes away for a while: flushes fail, nothing is committed or
// marked flushed, the hot tier grows past its budget; when MinIO is back
// everything lands exactly once.
func TestMinIOStoppedThenRestarted(t *testing.T) {
	m := startMinio(t)
	s := m.store(t, "zombi")
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{Store: s, UploadAttempts: 2, HotMaxBytes: 256 << 10})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 2000, want)
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	m.stop()
	fillTable(t, v.e, "events", 6000, want)
	if _, err := v.f.FlushTable(ctx, "events"); err == nil {
		t.Fatal("flush succeeded with MinIO down")
	}
	for _, pi := range v.e.Partitions("events") {
		if pi.Flushed == pi.High {
			t.Fatalf("partition %d marked flushed while MinIO was down", pi.Partition)
		}
	}
	if !v.f.OverBudget() {
		t.Fatalf("not over budget with %d hot bytes", v.f.Stats().HotBytes)
	}
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	if v.f.OverBudget() {
		t.Fatalf("still over budget with %d hot bytes", v.f.Stats().HotBytes)
	}
	tbl, _ := v.f.Table(ctx, "events")
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
}
