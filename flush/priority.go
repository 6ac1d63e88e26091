package flush

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerPriority pins the calling goroutine to its OS thread and lowers
// that thread's CPU priority to nice: the flusher then takes the CPU that
// ingest leaves, as RocksDB runs its compaction threads. The thread ends
// with the goroutine (it stays locked), so no other goroutine inherits it.
func lowerPriority(nice int) {
	if nice <= 0 {
		return
	}
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
}
