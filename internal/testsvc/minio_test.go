package testsvc

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// An object written before Stop reads back after Start: same address,
// same data.
func TestMinIO(t *testing.T) {
	m := StartMinIO(t)
	cl, err := minio.New(m.Addr, &minio.Options{Creds: credentials.NewStaticV4(m.User, m.Secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := []byte("hello")
	if _, err := cl.PutObject(ctx, MinIOBucket, "k", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	if _, err := cl.StatObject(ctx, MinIOBucket, "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("MinIO answers after Stop")
	}
	m.Start(t)
	o, err := cl.GetObject(ctx, MinIOBucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}
