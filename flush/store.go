package flush

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
)

// Store is the object store that data files are streamed to.
type Store interface {
	// Create starts the object at location (a file:// or s3:// URI as
	// found under the Iceberg table location). The object appears, whole,
	// only when the writer's Close returns nil.
	Create(ctx context.Context, location string) (ObjectWriter, error)
	// Remove deletes the object at location; a missing object is not an
	// error.
	Remove(ctx context.Context, location string) error
}

// ObjectWriter streams one object.
type ObjectWriter interface {
	// Write appends to the object.
	Write(p []byte) (int, error)
	// Close finishes the object and makes it durable and visible.
	Close() error
	// Abort discards the object; it is a no-op after Close.
	Abort()
}

// LocalStore writes file:// locations to the local filesystem: into a
// temporary file, fsynced and renamed into place (and the directory
// fsynced), so a committed data file survives a power loss.
type LocalStore struct{}

// Create implements Store.
func (LocalStore) Create(_ context.Context, location string) (ObjectWriter, error) {
	path, err := localPath(location)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", location, err)
	}
	tmp := path + ".tmp-" + strconv.FormatUint(rand.Uint64(), 36)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", location, err)
	}
	return &localObject{f: f, bw: bufio.NewWriterSize(f, 256<<10), tmp: tmp, path: path}, nil
}

// Remove implements Store.
func (LocalStore) Remove(_ context.Context, location string) error {
	path, err := localPath(location)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func localPath(location string) (string, error) {
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("flush: location %q: %w", location, err)
	}
	if u.Scheme != "file" && u.Scheme != "" {
		return "", fmt.Errorf("flush: local store cannot write %q", location)
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return "", fmt.Errorf("flush: location %q is not an absolute path", location)
	}
	return filepath.Clean(u.Path), nil
}

type localObject struct {
	f         *os.File
	bw        *bufio.Writer
	tmp, path string
	done      bool
}

func (o *localObject) Write(p []byte) (int, error) { return o.bw.Write(p) }

func (o *localObject) Close() error {
	if o.done {
		return errors.New("flush: object already closed")
	}
	o.done = true
	err := o.bw.Flush()
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.tmp, o.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(o.path))
	}
	if err != nil {
		os.Remove(o.tmp)
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

func (o *localObject) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.f.Close()
	os.Remove(o.tmp)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
