package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zombihq/zombi/internal/testsvc"
)

func TestOptionsRefused(t *testing.T) {
	good := Options{DSN: "postgres://127.0.0.1:1/x", Node: "n-1.a_b", Address: "h:1"}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want []string
	}{
		"no_dsn":       {func(o *Options) { o.DSN = "" }, []string{"no DSN"}},
		"no_node":      {func(o *Options) { o.Node = "" }, []string{"no node id"}},
		"bad_node":     {func(o *Options) { o.Node = "a/b" }, []string{`node id "a/b": '/' not allowed`}},
		"long_node":    {func(o *Options) { o.Node = strings.Repeat("x", 65) }, []string{"longer than 64"}},
		"no_address":   {func(o *Options) { o.Address = "" }, []string{"no address"}},
		"bad_address":  {func(o *Options) { o.Address = "host" }, []string{`address "host": want host:port`}},
		"partitions":   {func(o *Options) { o.Partitions = -1 }, []string{"-1 partitions"}},
		"short_lease":  {func(o *Options) { o.LeaseTTL = time.Millisecond }, []string{"lease TTL 1ms"}},
		"all_reported": {func(o *Options) { o.DSN, o.Node = "", "" }, []string{"no DSN", "no node id"}},
	} {
		t.Run(name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			c, err := Open(context.Background(), o)
			if err == nil {
				c.Close(context.Background())
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := OpenAdmin(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "no DSN") {
		t.Errorf("OpenAdmin without DSN: %v", err)
	}
}

// owners tracks who owns each partition according to the answers the
// nodes got. A node forgets a partition before it asks to release it, and
// records one after a claim said Mine; since a claim can only succeed
// after the previous owner's release committed, a partition recorded for
// two nodes at once means two nodes owned it at once.
type owners struct {
	mu   sync.Mutex
	m    map[key]string
	errs []string
}

func (o *owners) got(node string, k key) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur, ok := o.m[k]; ok && cur != node {
		o.errs = append(o.errs, fmt.Sprintf("%s/%d: %s told Mine while %s owns it", k.table, k.part, node, cur))
	}
	o.m[k] = node
}

func (o *owners) drop(node string, k key) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur := o.m[k]; cur != node {
		o.errs = append(o.errs, fmt.Sprintf("%s/%d: %s releases it but %q owns it", k.table, k.part, node, cur))
	}
	delete(o.m, k)
}

func (o *owners) fail(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, fmt.Sprintf(format, args...))
}

// Eight nodes race Own, Claim and Release on the same partitions of two
// tables, round after round: no partition is ever Mine for two nodes at
// once, and at the end of each round the nodes' caches, the answers they
// got and the database agree.
func TestClaimRace(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	const (
		nodes  = 8
		rounds = 4
		ops    = 40
		parts  = 12 // claimed by number: 0..parts-1
	)
	tables := []string{"a", "b"}
	cs := make([]*Cluster, nodes)
	var wg sync.WaitGroup
	for i := range cs { // opening together also races schema creation
		wg.Go(func() {
			c, err := Open(ctx, Options{DSN: dsn, Node: fmt.Sprintf("n%d", i), Address: fmt.Sprintf("n%d:1", i), Partitions: 2, Logger: testLogger(t)})
			if err != nil {
				t.Error(err)
				return
			}
			cs[i] = c
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close(ctx)
		}
	})
	o := &owners{m: map[key]string{}}
	check := func(round int) {
		t.Helper()
		if len(o.errs) > 0 {
			t.Fatalf("round %d:\n%s", round, strings.Join(o.errs, "\n"))
		}
		cached := map[key]string{}
		for _, c := range cs {
			for tbl, ps := range c.Owned() {
				for _, p := range ps {
					if prev, ok := cached[key{tbl, p}]; ok {
						t.Fatalf("round %d: %s/%d in the caches of %s and %s", round, tbl, p, prev, c.Node())
					}
					cached[key{tbl, p}] = c.Node()
				}
			}
		}
		db := map[key]string{}
		for _, a := range must(cs[0].Assignments(ctx, ""))(t) {
			if a.Node != "" {
				db[key{a.Table, a.Partition}] = a.Node
			}
		}
		if !maps.Equal(o.m, db) || !maps.Equal(cached, db) {
			t.Fatalf("round %d: answers %v\ncaches %v\ndatabase %v", round, o.m, cached, db)
		}
	}
	for round := range rounds {
		start := make(chan struct{})
		stopReaders := make(chan struct{})
		var readers sync.WaitGroup
		for i, c := range cs {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(i)))
			wg.Go(func() {
				<-start
				for n := range ops {
					tbl := tables[rng.IntN(len(tables))]
					switch op := rng.IntN(10); {
					case n == 0 || op < 3: // everyone's first op races Own
						ps, err := c.Own(ctx, tbl)
						if err != nil {
							o.fail("%s: own %s: %v", c.Node(), tbl, err)
							return
						}
						if len(ps) != 2 {
							o.fail("%s: own %s: %v", c.Node(), tbl, ps)
						}
						for _, p := range ps {
							o.got(c.Node(), key{tbl, p})
						}
					case op < 8:
						p := uint32(rng.IntN(parts))
						a, err := c.Claim(ctx, tbl, p)
						if err != nil {
							o.fail("%s: claim %s/%d: %v", c.Node(), tbl, p, err)
							return
						}
						if a.Mine {
							o.got(c.Node(), key{tbl, p})
						} else if a.Node == "" || a.Node == c.Node() {
							o.fail("%s: claim %s/%d: %+v", c.Node(), tbl, p, a)
						}
					default:
						ps := c.Owned()[tbl]
						if len(ps) == 0 {
							continue
						}
						p := ps[rng.IntN(len(ps))]
						o.drop(c.Node(), key{tbl, p})
						if err := c.Release(ctx, tbl, p, uint64(n)); err != nil {
							o.fail("%s: release %s/%d: %v", c.Node(), tbl, p, err)
						}
					}
				}
			})
			readers.Go(func() { // the cache, read concurrently (for -race)
				for {
					select {
					case <-stopReaders:
						return
					default:
					}
					c.Lookup(tables[0], 0)
					c.Owned()
					c.Healthy()
					time.Sleep(time.Millisecond)
				}
			})
		}
		close(start)
		wg.Wait()
		close(stopReaders)
		readers.Wait()
		check(round)
		// Releases in between: every node frees all it owns, at once,
		// so the next round claims free rows with a takeover record.
		for _, c := range cs {
			wg.Go(func() {
				for tbl, ps := range c.Owned() {
					for _, p := range ps {
						o.drop(c.Node(), key{tbl, p})
						if err := c.Release(ctx, tbl, p, 7); err != nil {
							o.fail("%s: release %s/%d: %v", c.Node(), tbl, p, err)
						}
					}
				}
			})
		}
		wg.Wait()
		check(round)
		if len(o.m) != 0 {
			t.Fatalf("round %d: owned after releasing everything: %v", round, o.m)
		}
	}
	// Every release wrote its takeover record; skip_to never moved back.
	for _, a := range must(cs[0].Assignments(ctx, ""))(t) {
		if a.Node != "" || a.PrevNode == "" || a.SkipTo < a.Flushed || a.Epoch < 1 {
			t.Errorf("after the last release: %+v", a)
		}
	}
}

// Own is sticky: a node reopened gets back the partitions it owns, and
// after a release, the free ones it owned last — unless another node took
// them meanwhile, with their takeover record.
func TestOwnSticky(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	a := openNode(t, dsn, "a", 2)
	b := openNode(t, dsn, "b", 2)
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{0, 1})
	eq(t, must(b.Own(ctx, "t"))(t), []uint32{2, 3})
	eq(t, must(b.Own(ctx, "t"))(t), []uint32{2, 3}) // cached

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := a.Own(ctx, "t")
	isErr(t, err, ErrClosed)
	for _, m := range must(b.Members(ctx))(t) {
		if m.Node == "a" && (m.Alive || !m.Stopped || m.Partitions != 2) {
			t.Fatalf("closed node: %+v", m)
		}
	}
	// Closed, a still owns its partitions: b cannot take them.
	if got := must(b.Claim(ctx, "t", 0))(t); got.Mine || got.Node != "a" || got.Alive || got.Address != "a.test:8080" {
		t.Fatalf("b claims a's partition: %+v", got)
	}

	a = openNode(t, dsn, "a", 2)
	eq(t, a.Owned()["t"], []uint32{0, 1}) // known from Open on
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{0, 1})
	if got := must(a.Claim(ctx, "t", 0))(t); !got.Mine || got.Epoch != 1 || !got.Alive {
		t.Fatalf("reopened: %+v", got)
	}

	if err := a.Release(ctx, "t", 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "t", 1, 20); err != nil {
		t.Fatal(err)
	}
	isErr(t, a.Release(ctx, "t", 1, 20), ErrNotOwner)
	isErr(t, a.Release(ctx, "t", 2, 20), ErrNotOwner) // b's
	if len(a.Owned()) != 0 {
		t.Fatalf("owned after release: %v", a.Owned())
	}
	a.Close(ctx)

	// c prefers a free partition (with its takeover record) to a new one.
	c := openNode(t, dsn, "c", 1)
	eq(t, must(c.Own(ctx, "t"))(t), []uint32{0})
	got, ok := c.Lookup("t", 0)
	want := Assignment{Table: "t", Partition: 0, Node: "c", Address: "c.test:8080", Alive: true, Mine: true, Epoch: 2, PrevNode: "a", Flushed: 10, SkipTo: 10}
	if !ok || got != want {
		t.Fatalf("c took over %+v, want %+v", got, want)
	}

	// a prefers its own free partition 1, then a new number.
	a = openNode(t, dsn, "a", 2)
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{1, 4})
	got = must(a.Claim(ctx, "t", 1))(t)
	if !got.Mine || got.Epoch != 2 || got.PrevNode != "a" || got.Flushed != 20 || got.SkipTo != 20 {
		t.Fatalf("a took 1 back: %+v", got)
	}
	if got, ok := a.Lookup("t", 0); !ok || got.Node != "c" || got.Mine {
		t.Fatalf("a's view of 0: %+v %v", got, ok)
	}
}

// A node that dies keeps its partitions until an operator hands them off,
// which a live node refuses; the next owner continues from the takeover
// record.
func TestDeadNodeHandoff(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	admin := openAdmin(t, dsn)
	a := openNode(t, dsn, "a", 2)
	b := openNode(t, dsn, "b", 1)
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{0, 1})
	if got := must(b.Claim(ctx, "t", 0))(t); got.Mine || got.Node != "a" || !got.Alive || got.Address != "a.test:8080" {
		t.Fatalf("b claims a's partition: %+v", got)
	}
	if got, ok := b.Lookup("t", 0); !ok || got.Node != "a" {
		t.Fatalf("b's lookup: %+v %v", got, ok)
	}
	called := false
	marks := func(table string, p uint32) (uint64, uint64, error) {
		called = true
		return 5 + uint64(p)*10, 9 + uint64(p)*10, nil
	}
	_, err := admin.Handoff(ctx, "a", marks)
	isErr(t, err, ErrAlive)
	if !strings.Contains(err.Error(), "holds a lease until") || called {
		t.Fatalf("handoff of a live node: %v (marks called: %v)", err, called)
	}

	// a reserves offsets of partition 1 ahead of use; a reservation
	// never moves back, and only the owner can make one.
	if err := a.Reserve(ctx, "t", 1, 1000); err != nil {
		t.Fatal(err)
	}
	if err := a.Reserve(ctx, "t", 1, 500); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Lookup("t", 1); got.Reserved != 1000 {
		t.Fatalf("reservation after a lower one: %+v", got)
	}
	isErr(t, b.Reserve(ctx, "t", 1, 2000), ErrNotOwner)

	a.crash()
	waitFor(t, 3*time.Second, "a dead", func() bool { return !alive(t, admin, "a") })
	if got := must(b.Claim(ctx, "t", 0))(t); got.Mine || got.Node != "a" || got.Alive {
		t.Fatalf("b claims a dead node's partition: %+v", got)
	}
	eq(t, must(b.Own(ctx, "t"))(t), []uint32{2})

	_, err = admin.Handoff(ctx, "a", func(string, uint32) (uint64, uint64, error) { return 0, 0, errors.New("no table") })
	if err == nil || !strings.Contains(err.Error(), "no table") {
		t.Fatalf("handoff with failing marks: %v", err)
	}
	_, err = admin.Handoff(ctx, "a", func(string, uint32) (uint64, uint64, error) { return 5, 4, nil })
	if err == nil || !strings.Contains(err.Error(), "below flushed") {
		t.Fatalf("handoff with skip-to below flushed: %v", err)
	}
	freed := must(admin.Handoff(ctx, "a", marks))(t)
	wantFreed := []Assignment{
		{Table: "t", Partition: 0, PrevNode: "a", Epoch: 1, Flushed: 5, SkipTo: 9},
		{Table: "t", Partition: 1, PrevNode: "a", Epoch: 1, Flushed: 15, SkipTo: 1000}, // past a's reservation
	}
	if !reflect.DeepEqual(freed, wantFreed) {
		t.Fatalf("freed %+v\nwant %+v", freed, wantFreed)
	}
	if again := must(admin.Handoff(ctx, "a", marks))(t); len(again) != 0 {
		t.Fatalf("second handoff freed %+v", again)
	}
	if _, err := admin.Handoff(ctx, "nobody", marks); err == nil || !strings.Contains(err.Error(), "no such node") {
		t.Fatalf("handoff of an unknown node: %v", err)
	}

	got := must(b.Claim(ctx, "t", 0))(t)
	want := Assignment{Table: "t", Partition: 0, Node: "b", Address: "b.test:8080", Alive: true, Mine: true, Epoch: 2, PrevNode: "a", Flushed: 5, SkipTo: 9}
	if got != want {
		t.Fatalf("b takes over: %+v\nwant %+v", got, want)
	}
	// A release after a takeover that flushed nothing keeps the skip.
	if err := b.Release(ctx, "t", 0, 5); err != nil {
		t.Fatal(err)
	}
	if got := must(b.Claim(ctx, "t", 0))(t); got.Flushed != 5 || got.SkipTo != 9 || got.PrevNode != "b" || got.Epoch != 3 {
		t.Fatalf("claim after release: %+v", got)
	}

	// a comes back: 0 is b's now, it gets 1 back and a new number.
	a = openNode(t, dsn, "a", 2)
	if len(a.Owned()) != 0 {
		t.Fatalf("a owns %v after the handoff", a.Owned())
	}
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{1, 3})
	ms := must(admin.Members(ctx))(t)
	if len(ms) != 2 || ms[0].Node != "a" || !ms[0].Alive || ms[0].Partitions != 2 || ms[1].Node != "b" || ms[1].Partitions != 2 {
		t.Fatalf("members %+v", ms)
	}
	as := must(admin.Assignments(ctx, "t"))(t)
	if len(as) != 4 || as[0].Node != "b" || as[1].Node != "a" || as[1].PrevNode != "a" || as[1].SkipTo != 1000 || as[2].Node != "b" || as[3].Node != "a" {
		t.Fatalf("assignments %+v", as)
	}
}

// Healthy follows the database: false once the lease may have expired
// while PostgreSQL is down, true again after it restarts, with the node's
// partitions still its own.
func TestHealthyThroughOutage(t *testing.T) {
	pg := testsvc.NewPostgres(t)
	ctx := context.Background()
	a := openNode(t, pg.URL, "a", 1)
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{0})
	if !a.Healthy() {
		t.Fatal("not healthy")
	}
	pg.Stop()
	stopped := time.Now()
	waitFor(t, 2*time.Second, "unhealthy", func() bool { return !a.Healthy() })
	if d := time.Since(stopped); d > 800*time.Millisecond {
		t.Errorf("unhealthy %v after the database stopped, lease 600ms", d)
	}
	if got, ok := a.Lookup("t", 0); !ok || !got.Mine || got.Alive {
		t.Fatalf("lookup while unhealthy: %+v %v", got, ok)
	}
	// Not healthy, Claim and Own ask the database rather than the cache.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := a.Claim(short, "t", 0); err == nil {
		t.Fatal("claim answered from the cache while not healthy")
	}
	if _, err := a.Own(short, "t"); err == nil {
		t.Fatal("own answered from the cache while not healthy")
	}
	pg.Start()
	waitFor(t, 5*time.Second, "healthy", a.Healthy)
	eq(t, a.Owned()["t"], []uint32{0})
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{0})
}

// A node cut off from the database while an operator hands its partitions
// off learns it when it can renew again: it drops them before it reports
// healthy.
func TestHandoffWhileCutOff(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	admin := openAdmin(t, dsn)
	px := startProxy(t, must(hostPort(dsn))(t))
	a := openNode(t, px.dsn(t, dsn), "a", 2)
	b := openNode(t, dsn, "b", 1)
	eq(t, must(a.Own(ctx, "t"))(t), []uint32{0, 1})

	px.cut()
	waitFor(t, 2*time.Second, "a unhealthy", func() bool { return !a.Healthy() })
	waitFor(t, 2*time.Second, "a dead", func() bool { return !alive(t, admin, "a") })
	freed := must(admin.Handoff(ctx, "a", func(string, uint32) (uint64, uint64, error) { return 3, 4, nil }))(t)
	if len(freed) != 2 {
		t.Fatalf("freed %+v", freed)
	}
	if got := must(b.Claim(ctx, "t", 0))(t); !got.Mine || got.SkipTo != 4 {
		t.Fatalf("b takes over: %+v", got)
	}
	eq(t, a.Owned()["t"], []uint32{0, 1}) // a cannot know yet, but is not healthy

	px.resume(t)
	waitFor(t, 5*time.Second, "a healthy", a.Healthy)
	if len(a.Owned()) != 0 {
		t.Fatalf("a still owns %v after renewing", a.Owned())
	}
	if got, ok := a.Lookup("t", 0); !ok || got.Mine || got.Node != "b" {
		t.Fatalf("a's view of 0: %+v %v", got, ok)
	}
	if got := must(a.Claim(ctx, "t", 0))(t); got.Mine || got.Node != "b" {
		t.Fatalf("a claims 0: %+v", got)
	}
	// 1 is free, with a as its last owner: Own takes it back first.
	ps := must(a.Own(ctx, "t"))(t)
	eq(t, ps, []uint32{1, 2})
	if got, _ := a.Lookup("t", 1); got.Epoch != 2 || got.SkipTo != 4 {
		t.Fatalf("a's 1: %+v", got)
	}
}

// Consumer offsets committed by one node are read by another.
func TestConsumerOffsets(t *testing.T) {
	dsn := testsvc.StartPostgres(t)
	ctx := context.Background()
	a := openNode(t, dsn, "a", 1)
	b := openNode(t, dsn, "b", 1)
	if _, ok, err := b.Offset(ctx, "g", "t", 3); ok || err != nil {
		t.Fatalf("offset before any commit: %v %v", ok, err)
	}
	if err := a.CommitOffset(ctx, "g", "t", 3, 42); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := b.Offset(ctx, "g", "t", 3); off != 42 || !ok || err != nil {
		t.Fatalf("offset %d %v %v", off, ok, err)
	}
	if err := b.CommitOffset(ctx, "g", "t", 3, 43); err != nil {
		t.Fatal(err)
	}
	if off, _, _ := a.Offset(ctx, "g", "t", 3); off != 43 {
		t.Fatalf("offset %d after update", off)
	}
	if _, ok, _ := a.Offset(ctx, "other", "t", 3); ok {
		t.Fatal("another group's offset")
	}
	if err := a.CommitOffset(ctx, "", "t", 3, 1); err == nil {
		t.Fatal("empty group accepted")
	}
	if err := a.CommitOffset(ctx, "g", "t", 3, 1<<63); err == nil {
		t.Fatal("offset above bigint accepted")
	}
}

func eq(t *testing.T, got, want []uint32) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
