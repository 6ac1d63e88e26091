// Package peer measures the hot tier (engine, segment) on a real disk and
// compares it, in the same process and run, with Pebble (WAL on), the
// store a Go server would otherwise reach for.
//
// The Go benchmarks (go test -bench . ./...) sweep record sizes, batch
// sizes, durability modes and concurrency. cmd/benchtable runs a fixed set
// of workloads side by side, alternating engine and Pebble runs, and prints
// the Markdown table `make bench` shows: throughput, the ratio to Pebble,
// the cost of FsyncAlways under concurrency, and the bytes written to disk
// per byte appended (from /proc/self/io).
//
// This is its own Go module so that Pebble never reaches the server binary.
package peer

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Payloads returns n distinct payloads of size bytes each: random
// alphanumerics, so that neither the engine nor Pebble's block compression
// gains from repetition.
func Payloads(n, size int, seed uint64) [][]byte {
	const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, size)
		for j := range b {
			b[j] = alpha[r.IntN(len(alpha))]
		}
		out[i] = b
	}
	return out
}

// IOCounters are the process's I/O counters from /proc/self/io and the
// sectors written by the device that holds the data directory.
type IOCounters struct {
	// WriteBytes is /proc/self/io write_bytes: bytes this process caused
	// to be sent to the block layer (page-cache pages it dirtied, counted
	// once per dirtying, plus direct I/O). Journal writes by jbd2 are not
	// included.
	WriteBytes int64
	// DeviceBytes is the device's sectors written × 512 from
	// /sys/dev/block/M:m/stat. It is machine-wide: it includes the
	// filesystem journal, and any other process writing to that disk.
	DeviceBytes int64
}

// ReadIO reads the counters; devStat is the device stat file from
// DeviceStatPath ("" to skip it).
func ReadIO(devStat string) (IOCounters, error) {
	var c IOCounters
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return c, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == "write_bytes" {
			c.WriteBytes, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return c, fmt.Errorf("parse /proc/self/io: %w", err)
			}
		}
	}
	if devStat != "" {
		b, err := os.ReadFile(devStat)
		if err != nil {
			return c, err
		}
		f := strings.Fields(string(b))
		if len(f) < 7 {
			return c, fmt.Errorf("parse %s: %d fields", devStat, len(f))
		}
		sectors, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			return c, fmt.Errorf("parse %s: %w", devStat, err)
		}
		c.DeviceBytes = sectors * 512
	}
	return c, nil
}

// Sub returns c - d.
func (c IOCounters) Sub(d IOCounters) IOCounters {
	return IOCounters{WriteBytes: c.WriteBytes - d.WriteBytes, DeviceBytes: c.DeviceBytes - d.DeviceBytes}
}

// DeviceStatPath returns the block-device stat file of the filesystem
// holding dir, or "" when there is none (tmpfs, overlay without a device).
func DeviceStatPath(dir string) string {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return ""
	}
	p := fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev))
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// FSType names the filesystem holding dir ("ext4", "tmpfs", …).
func FSType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint32(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", uint32(st.Type))
}

// BenchDir returns the parent directory for benchmark data: $ZOMBI_BENCH_DIR
// if set, else the OS temp dir. It must be on a real disk, not tmpfs.
func BenchDir() string {
	if d := os.Getenv("ZOMBI_BENCH_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// SyncFS flushes every dirty page and the journal to disk (sync(2)), so
// that the writeback of a workload happens inside its measuring window.
func SyncFS() { unix.Sync() }

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Result is the outcome of one run of a workload.
type Result struct {
	Events       int64         // records appended
	PayloadBytes int64         // payload bytes appended
	Elapsed      time.Duration // appends only: not open or close
	IO           IOCounters    // from before open to after close and sync(2), if measured
}

// EventsPerSec is appended records per second.
func (r Result) EventsPerSec() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// MBPerSec is payload megabytes (10^6) per second.
func (r Result) MBPerSec() float64 { return float64(r.PayloadBytes) / 1e6 / r.Elapsed.Seconds() }

// removeAll removes a run's directory, ignoring errors (a benchmark must
// not fail because cleanup did).
func removeAll(dir string) { _ = os.RemoveAll(dir) }

// runDir creates a fresh directory for one run under parent.
func runDir(parent, name string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, strings.ReplaceAll(name, "/", "_")+"-")
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// SyncLatency writes n successive 4 KiB blocks into a new 64 MiB file
// under parent, each followed by fdatasync(2), and returns the median and
// 99th percentile of the write+sync time. The file is reserved with
// fallocate(2) (unwritten extents, as segment.Create does: each sync must
// also commit the extent conversion to the journal) or, with zeroFill,
// written with zeros and synced first (as a recycled segment would be).
func SyncLatency(parent string, zeroFill bool, n int) (p50, p99 time.Duration, err error) {
	f, done, err := scratchFile(parent, "synclat")
	if err != nil {
		return 0, 0, err
	}
	defer done()
	const size = 64 << 20
	fd := int(f.Fd())
	if zeroFill {
		z := make([]byte, 1<<20)
		for off := 0; off < size; off += len(z) {
			if _, err := f.WriteAt(z, int64(off)); err != nil {
				return 0, 0, err
			}
		}
	} else if err := unix.Fallocate(fd, 0, 0, size); err != nil {
		return 0, 0, err
	}
	if err := unix.Fdatasync(fd); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i)
	}
	lat := make([]float64, 0, n)
	for i := 0; i < n && (i+1)*len(buf) <= size; i++ {
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i*len(buf))); err != nil {
			return 0, 0, err
		}
		if err := unix.Fdatasync(fd); err != nil {
			return 0, 0, err
		}
		lat = append(lat, float64(time.Since(t)))
	}
	sort.Float64s(lat)
	return time.Duration(Median(lat)), time.Duration(lat[len(lat)*99/100]), nil
}

// PageCacheCost measures what a bulk append pays the kernel to put bytes
// into the page cache: the CPU time (user+system, this thread only) of one
// 16 KiB pwrite(2), the size of a group-committed bulk write, into a new
// 256 MiB fallocated file — every page freshly allocated, as for a new
// segment — and of the same writes again, into the now cached pages. The
// second is the floor any file-backed log pays; the difference is the
// price of fresh memory, which on a VM whose host reclaims the guest's
// free pages (virtio-balloon free page reporting) includes the host's
// fault to back each page again.
func PageCacheCost(parent string) (fresh, cached time.Duration, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, done, err := scratchFile(parent, "pagecache")
	if err != nil {
		return 0, 0, err
	}
	defer done()
	const size, chunk = 256 << 20, 16 << 10
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	pass := func() (time.Duration, error) {
		c0 := threadCPU()
		for off := 0; off < size; off += chunk {
			if _, err := f.WriteAt(buf, int64(off)); err != nil {
				return 0, err
			}
		}
		return (threadCPU() - c0) / (size / chunk), nil
	}
	if fresh, err = pass(); err != nil {
		return 0, 0, err
	}
	if cached, err = pass(); err != nil {
		return 0, 0, err
	}
	return fresh, cached, nil
}

// threadCPU returns the calling thread's CPU time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SyncCPUCost measures how much CPU a stream of fdatasync(2) calls takes
// from other work: spinners on every CPU count iterations for d, alone and
// then beside a goroutine doing back-to-back 4 KiB write + fdatasync into
// a fallocated file. It returns the fraction of the spinners' work lost
// and the number of syncs done. On bare metal a sync mostly waits for the
// device; on some VMs the wait is paid in guest CPU.
func SyncCPUCost(parent string, d time.Duration) (lost float64, syncs int, err error) {
	f, cleanup, err := scratchFile(parent, "synccpu")
	if err != nil {
		return 0, 0, err
	}
	defer cleanup()
	const size = 64 << 20
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return 0, 0, err
	}
	// One P more than the spinners, so the syncing goroutine is not
	// queued behind them after each sync; the kernel shares the CPUs.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.NumCPU() + 1))
	spin := func() int64 {
		var n int64
		res := make(chan int64)
		for range runtime.NumCPU() {
			go func() {
				var k int64
				for end := time.Now().Add(d); time.Now().Before(end); {
					for range 1000 {
						k++
					}
				}
				res <- k
			}()
		}
		for range runtime.NumCPU() {
			n += <-res
		}
		return n
	}
	alone := spin()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for off := int64(0); ; off = (off + 4096) % size {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := f.WriteAt(buf, off); err != nil {
				done <- err
				return
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				done <- err
				return
			}
			syncs++
		}
	}()
	beside := spin()
	close(stop)
	if err := <-done; err != nil {
		return 0, 0, err
	}
	return 1 - float64(beside)/float64(alone), syncs, nil
}

// scratchFile creates an empty file in a fresh directory under parent;
// done closes it and removes the directory.
func scratchFile(parent, name string) (f *os.File, done func(), err error) {
	dir, err := runDir(parent, name)
	if err != nil {
		return nil, nil, err
	}
	if f, err = os.Create(filepath.Join(dir, "f")); err != nil {
		removeAll(dir)
		return nil, nil, err
	}
	return f, func() { f.Close(); removeAll(dir) }, nil
}
