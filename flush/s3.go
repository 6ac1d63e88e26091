package flush

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options configures an S3Store. A zero value means "use the default".
type S3Options struct {
	// Bucket is the bucket; locations must name it. Required.
	Bucket string
	// Endpoint is host[:port] or a URL; "http://" selects plain HTTP.
	// Default s3.amazonaws.com.
	Endpoint string
	// Region is the bucket's region. Default us-east-1.
	Region string
	// AccessKey, SecretKey and SessionToken are static credentials.
	// Default: the AWS_* environment variables, then the instance role.
	AccessKey, SecretKey, SessionToken string
	// PartSize is the multipart part size: an upload holds one part
	// buffer. Default 8 MiB (S3's minimum is 5 MiB).
	PartSize uint64
	// MaxConcurrentUploads bounds the uploads in flight, so memory stays
	// within MaxConcurrentUploads × PartSize. Default 4.
	MaxConcurrentUploads int
	// ClientRetries is minio-go's own retry count per request (a part is
	// retried from its buffer). Default 3.
	ClientRetries int
	// ResponseTimeout is how long a request waits for the answer once it
	// is sent, and how long sending it may make no progress (64 KiB). A
	// store that holds a request without answering, or stops reading its
	// body, fails it after that (and it is retried) instead of stalling
	// the upload. Default 1 min (minio-go's).
	ResponseTimeout time.Duration
}

// S3Store streams objects to S3 or MinIO with multipart uploads.
type S3Store struct {
	opts   S3Options
	client *minio.Client
	sem    chan struct{} // one token per upload in flight
}

// NewS3Store returns a store for opts.Bucket. It does not contact S3.
func NewS3Store(opts S3Options) (*S3Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("flush: s3 bucket is required")
	}
	if opts.Endpoint == "" {
		opts.Endpoint = "s3.amazonaws.com"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.PartSize == 0 {
		opts.PartSize = 8 << 20
	}
	if opts.PartSize < 5<<20 {
		return nil, fmt.Errorf("flush: s3 part size %d is below S3's 5 MiB minimum", opts.PartSize)
	}
	if opts.MaxConcurrentUploads <= 0 {
		opts.MaxConcurrentUploads = 4
	}
	if opts.ClientRetries <= 0 {
		opts.ClientRetries = 3
	}
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = time.Minute
	}
	endpoint, secure := opts.Endpoint, true
	if u, err := url.Parse(opts.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if opts.AccessKey != "" {
		creds = credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, opts.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.IAM{},
		})
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("flush: s3 client: %w", err)
	}
	tr.ResponseHeaderTimeout = opts.ResponseTimeout
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &progressConn{Conn: c, timeout: opts.ResponseTimeout}, nil
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    tr,
		Region:       opts.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   opts.ClientRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("flush: s3 client: %w", err)
	}
	return &S3Store{opts: opts, client: client, sem: make(chan struct{}, opts.MaxConcurrentUploads)}, nil
}

// Client returns the minio-go client (tests create buckets with it).
func (s *S3Store) Client() *minio.Client { return s.client }

func (s *S3Store) key(location string) (string, error) {
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("flush: location %q: %w", location, err)
	}
	if u.Scheme != "s3" && u.Scheme != "s3a" {
		return "", fmt.Errorf("flush: s3 store cannot write %q", location)
	}
	if u.Host != s.opts.Bucket {
		return "", fmt.Errorf("flush: location %q is not in bucket %q", location, s.opts.Bucket)
	}
	return strings.TrimPrefix(u.Path, "/"), nil
}

// Create implements Store. It waits for an upload slot, then streams
// what is written through a pipe into a multipart upload.
func (s *S3Store) Create(ctx context.Context, location string) (ObjectWriter, error) {
	key, err := s.key(location)
	if err != nil {
		return nil, err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	o := &s3Object{pw: pw, cancel: cancel, done: make(chan struct{}), release: func() { <-s.sem }}
	go func() {
		defer close(o.done)
		_, err := s.client.PutObject(ctx, s.opts.Bucket, key, pr, -1, minio.PutObjectOptions{
			PartSize:    s.opts.PartSize,
			NumThreads:  1,
			ContentType: "application/vnd.apache.parquet",
		})
		o.err = err
		// Unblock a writer still writing after a failed upload.
		pr.CloseWithError(errors.Join(err, errUploadEnded))
	}()
	return o, nil
}

var errUploadEnded = errors.New("flush: upload ended")

// progressConn fails a write that makes no progress for timeout. A store
// that stops reading a request body blocks the writer once the socket
// buffers are full, and TCP keeps a zero window open for as long as the
// peer answers probes: without a deadline an upload would wait for as
// long as the connection stays open. Each 64 KiB gets its own deadline,
// so a slow but moving upload is not cut.
type progressConn struct {
	net.Conn
	timeout time.Duration
}

func (c *progressConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return n, err
		}
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// Remove implements Store.
func (s *S3Store) Remove(ctx context.Context, location string) error {
	key, err := s.key(location)
	if err != nil {
		return err
	}
	err = s.client.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{})
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return nil
	}
	return err
}

type s3Object struct {
	pw      *io.PipeWriter
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // PutObject's result; read after done
	release func()
	closed  bool
}

func (o *s3Object) Write(p []byte) (int, error) { return o.pw.Write(p) }

func (o *s3Object) Close() error {
	if o.closed {
		return errors.New("flush: object already closed")
	}
	o.closed = true
	o.pw.Close()
	<-o.done
	o.cancel()
	o.release()
	return o.err
}

func (o *s3Object) Abort() {
	if o.closed {
		return
	}
	o.closed = true
	o.cancel() // aborts the multipart upload
	o.pw.CloseWithError(errors.New("flush: upload aborted"))
	<-o.done
	o.release()
}

// CatalogProps returns the iceberg-go FileIO properties that let the
// catalog write metadata and manifests to the same bucket
// (catalog.Options.IOProps).
func (s *S3Store) CatalogProps() map[string]string { return s3IOProps(s.opts) }

func s3IOProps(o S3Options) map[string]string {
	props := map[string]string{"s3.region": o.Region}
	if o.Endpoint != "" && o.Endpoint != "s3.amazonaws.com" {
		ep := o.Endpoint
		if !strings.Contains(ep, "://") {
			ep = "https://" + ep
		}
		props["s3.endpoint"] = ep
		props["s3.force-virtual-addressing"] = "false"
	}
	if o.AccessKey != "" {
		props["s3.access-key-id"] = o.AccessKey
		props["s3.secret-access-key"] = o.SecretKey
		if o.SessionToken != "" {
			props["s3.session-token"] = o.SessionToken
		}
	}
	return props
}
