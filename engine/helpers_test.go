package engine

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/zombihq/zombi/vfs"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childMain()
		return
	}
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// memOpts returns options for an engine on an in-memory filesystem with
// small segments, so rolls happen in tests.
func memOpts(fs vfs.FS) Options {
	return Options{Dir: "/data", FS: fs, SegmentBytes: 1 << 20, Logger: quiet, BootID: "boot-1"}
}

func mustOpen(t testing.TB, o Options) *Engine {
	t.Helper()
	e, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return e
}

func payload(p uint32, i int) []byte { return []byte(fmt.Sprintf("p%d-event-%06d", p, i)) }

// readAll reads every event of a partition.
func readAll(t testing.TB, e *Engine, table string, p uint32) []Event {
	t.Helper()
	var out []Event
	off := uint64(1)
	for {
		evs, more, err := e.Read(table, Query{Partition: int64(p), Offset: off, Limit: 1000})
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, evs...)
		if !more {
			return out
		}
		off = evs[len(evs)-1].Offset + 1
	}
}
