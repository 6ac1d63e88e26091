package flush

import (
	"context"
	"sync"
	"testing"

	"github.com/zombihq/zombi/catalog"
)

// owners is a cluster's ownership table as the flushers see it
// (Options.Owns): partition → owner and takeover record.
type owners struct {
	mu sync.Mutex
	m  map[uint32]ownerRec
}

type ownerRec struct {
	node string
	tk   Takeover
}

func (o *owners) set(p uint32, node string, tk Takeover) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[p] = ownerRec{node, tk}
}

func (o *owners) of(node string) func(string, uint32) (Takeover, bool) {
	return func(_ string, p uint32) (Takeover, bool) {
		o.mu.Lock()
		defer o.mu.Unlock()
		r, ok := o.m[p]
		return r.tk, ok && r.node == node
	}
}

// A partition passes between two nodes of a cluster: a clean release
// (node-a flushed everything; node-b goes on from its watermark), then a
// handoff of a dead node-b with unflushed events (node-a goes on past
// them; the commit records them as skipped). Each node flushes only
// while it owns the partition, and the table holds every event that was
// committed, exactly once, under the offsets it was acked with.
func TestHandoverBetweenNodes(t *testing.T) {
	ctx := context.Background()
	catDir := t.TempDir()
	own := &owners{m: map[uint32]ownerRec{}}
	node := func(name string) *env {
		return openEnvCatalog(t, t.TempDir(), Options{Owns: own.of(name)}, func(o *catalog.Options) { o.DataDir, o.Owner = catDir, name })
	}
	a, b := node("node-a"), node("node-b")
	ts := func(i int) int64 { return baseTs + int64(i) }
	want := map[evKey]event{}

	own.set(0, "node-a", Takeover{})
	appendN(t, a.e, "events", 0, 300, ts, want)
	if _, err := a.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	// node-b does not own partition 0: events it holds there (written
	// before it lost it, say) stay in its hot tier, unflushed.
	appendN(t, b.e, "events", 0, 5, ts, map[evKey]event{})
	if _, err := b.f.FlushTable(ctx, "events"); err != nil {
		t.Fatalf("flush of a partition owned elsewhere: %v", err)
	}
	if w, _ := b.f.Watermarks(ctx, "events"); w[0].Owner != "node-a" || w[0].Flushed != 300 {
		t.Fatalf("after node-b's flush: %+v", w)
	}

	// node-a releases at 300; node-b takes over and goes on past it.
	own.set(0, "node-b", Takeover{From: "node-a", Flushed: 300, SkipTo: 300})
	if high, err := b.e.Advance("events", 0, 300); err != nil || high != 300 {
		t.Fatalf("advance: %d, %v", high, err)
	}
	b.f.Reload("events")
	appendN(t, b.e, "events", 0, 200, ts, want) // 301..500
	if _, err := b.f.FlushTable(ctx, "events"); err != nil {
		t.Fatalf("flush after the takeover: %v", err)
	}
	if _, err := a.f.FlushTable(ctx, "events"); err != nil {
		t.Fatalf("the old owner's flush: %v", err)
	}
	w, err := a.f.Watermarks(ctx, "events")
	if err != nil || w[0].Owner != "node-b" || w[0].Flushed != 500 {
		t.Fatalf("after the takeover: %+v, %v", w, err)
	}

	// node-b dies with 501..540 unflushed; the operator hands it off.
	appendN(t, b.e, "events", 0, 40, ts, map[evKey]event{})
	own.set(0, "node-a", Takeover{From: "node-b", Flushed: 500, SkipTo: 540})
	if high, err := a.e.Advance("events", 0, 540); err != nil || high != 540 {
		t.Fatalf("advance: %d, %v", high, err)
	}
	a.f.Reload("events")
	appendN(t, a.e, "events", 0, 100, ts, want) // 541..640
	if _, err := a.f.FlushTable(ctx, "events"); err != nil {
		t.Fatalf("flush after the handoff: %v", err)
	}
	w, err = a.f.Watermarks(ctx, "events")
	if err != nil || w[0].Owner != "node-a" || w[0].Flushed != 640 {
		t.Fatalf("after the handoff: %+v, %v", w, err)
	}
	tbl, err := a.f.cat.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	sum := tbl.Iceberg().CurrentSnapshot().Summary.Properties
	if sum[catalog.SkippedPrefix+"0"] != "501-540" || sum[catalog.AdoptedPrefix+"0"] != "node-b@500" {
		t.Fatalf("handoff summary: skipped %q adopted %q", sum[catalog.SkippedPrefix+"0"], sum[catalog.AdoptedPrefix+"0"])
	}
	scanTable(t, tbl, want)
}
