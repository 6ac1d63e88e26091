package flush

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// ObjectInfo is one object found by a Lister.
type ObjectInfo struct {
	Location string // file:///… or s3://bucket/key
	Size     int64
	ModTime  time.Time
}

// Lister is implemented by stores that can enumerate the objects under a
// location (LocalStore and S3Store): the orphan cleanup needs it.
type Lister interface {
	// List calls fn for every object under prefix (a directory-like
	// location, e.g. a table location), recursively.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}

// List implements Lister. A missing prefix holds nothing.
func (LocalStore) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	root, err := localPath(prefix)
	if err != nil {
		return err
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed meanwhile
				return nil
			}
			return err
		}
		return fn(ObjectInfo{Location: "file://" + filepath.ToSlash(p), Size: info.Size(), ModTime: info.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("flush: list %s: %w", prefix, err)
	}
	return nil
}

// List implements Lister.
func (s *S3Store) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	key, err := s.key(prefix)
	if err != nil {
		return err
	}
	if key != "" && !strings.HasSuffix(key, "/") {
		key += "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine on an early return
	for obj := range s.client.ListObjects(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("flush: list %s: %w", prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue
		}
		if err := fn(ObjectInfo{Location: "s3://" + s.opts.Bucket + "/" + obj.Key, Size: obj.Size, ModTime: obj.LastModified}); err != nil {
			return err
		}
	}
	return nil
}
