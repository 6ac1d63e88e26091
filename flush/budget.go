package flush

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DefaultHotMaxBytes is the hot-tier budget used when ZOMBI_HOT_MAX_GB is
// not set: 80 % of the space available to the data directory now, so
// that ingest stops with 503 before the disk fills when the cold tier is
// unreachable.
func DefaultHotMaxBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("flush: statfs %s: %w", dir, err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	return avail / 5 * 4, nil
}
