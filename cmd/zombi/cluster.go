package main

// A node of a cluster: several `zombi serve` behind one load balancer
// share the PostgreSQL catalog and the bucket, and own partitions
// through package cluster (README, Running several nodes). placement is
// the glue: it answers httpd's Placement from the cluster's ownership,
// moves a partition taken over from another node on to where that node
// left off (engine.Advance) before it takes a write, tells the flusher
// which partitions are its own (flush.Options.Owns), and releases them
// at a clean stop once they are flushed.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zombihq/zombi/cluster"
	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/flush"
	"github.com/zombihq/zombi/httpd"
)

// clusterConfig configures the node's membership (the rows after
// cluster in the settings table).
type clusterConfig struct {
	Mode       string // auto (on with a postgres:// catalog), on or off
	Advertise  string // host:port clients are sent to; "": from the listen address
	Partitions int    // partitions of a table a node writes
	LeaseTTL   time.Duration
}

// enabled reports whether serve runs as a node of a cluster.
func (c *config) clusterEnabled() bool {
	pg := strings.HasPrefix(c.Cold.CatalogURL, "postgres://") || strings.HasPrefix(c.Cold.CatalogURL, "postgresql://")
	switch c.Cluster.Mode {
	case "on":
		return true
	case "off":
		return false
	}
	return pg && c.Cold.Enabled
}

// validateCluster checks what a cluster needs: a PostgreSQL catalog.
func (c *config) validateCluster() error {
	if c.Cluster.Mode == "on" && !(strings.HasPrefix(c.Cold.CatalogURL, "postgres://") || strings.HasPrefix(c.Cold.CatalogURL, "postgresql://")) {
		return errors.New("ZOMBI_CLUSTER=on needs a PostgreSQL catalog (ZOMBI_CATALOG_URL=postgres://…): the nodes claim their partitions in it")
	}
	if c.Cluster.Mode == "on" && !c.Cold.Enabled {
		return errors.New("ZOMBI_CLUSTER=on needs the cold tier (ZOMBI_ICEBERG_ENABLED=true)")
	}
	return nil
}

// advertiseAddr is the address other nodes send clients to: the setting,
// or the listen address with this host's name for a wildcard host.
func advertiseAddr(c *config, ln net.Addr) string {
	if c.Cluster.Advertise != "" {
		return c.Cluster.Advertise
	}
	host, port, err := net.SplitHostPort(ln.String())
	if err != nil {
		return ln.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

type tablePart struct {
	table string
	p     uint32
}

// errNotConnected is the status of a node that has not reached the
// cluster database yet.
var errNotConnected = errors.New("not connected to the cluster database yet")

// placement implements httpd.Placement over a cluster.Cluster.
type placement struct {
	log      *slog.Logger
	eng      *engine.Engine
	flusher  func() *flush.Flusher // nil until the cold tier connects
	cl       atomic.Pointer[cluster.Cluster]
	status   atomic.Pointer[httpd.ClusterStatus]
	stop     chan struct{}
	done     chan struct{} // closed when connect's goroutine is gone
	started  atomic.Bool   // connect was called
	stopOnce sync.Once

	mu sync.Mutex
	// ready holds the partitions this node owns that may take writes:
	// moved on past where the node it took them from left off, at the
	// claim's epoch.
	ready map[tablePart]int64
	// res holds the offset reservation of every ready partition.
	res sync.Map // tablePart → *reservation
}

// reserveAhead is how many offsets a node reserves past the ones it has
// handed out, in one database write: a partition taken over from a dead
// node goes on past its reservation, so that no offset it could have
// acked is handed out again.
const reserveAhead = 1 << 20

// reservation is the offsets of a partition this node may hand out.
type reservation struct {
	// handed bounds the offsets handed out from above: the partition's
	// high watermark when it became ready, plus every record counted
	// since (duplicates take no offset).
	handed   atomic.Uint64
	reserved atomic.Uint64 // recorded in the cluster database
	mu       sync.Mutex    // serialises the database writes
}

func newPlacement(eng *engine.Engine, flusher func() *flush.Flusher, log *slog.Logger) *placement {
	pl := &placement{log: log, eng: eng, flusher: flusher, ready: map[tablePart]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	pl.status.Store(&httpd.ClusterStatus{Err: errNotConnected})
	return pl
}

// connect joins the cluster, at once when the database answers (within
// 30 s), otherwise in the background with backoff; the node takes no
// writes until then (503 CLUSTER_UNAVAILABLE). Once joined, it refreshes
// the status every second.
func (pl *placement) connect(o cluster.Options) {
	pl.started.Store(true)
	try := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := cluster.Open(ctx, o)
		if err != nil {
			return err
		}
		for table, parts := range c.Owned() {
			for _, p := range parts {
				if err := pl.prepare(ctx, c, table, p); err != nil {
					pl.log.Error("cluster: cannot take writes for an owned partition", "table", table, "partition", p, "err", err)
				}
			}
		}
		pl.cl.Store(c)
		pl.refresh(ctx)
		pl.log.Info("cluster: joined", "node", o.Node, "address", o.Address, "partitions_per_table", o.Partitions,
			"lease", o.LeaseTTL, "owned", c.Owned())
		return nil
	}
	if err := try(); err != nil {
		pl.status.Store(&httpd.ClusterStatus{Node: o.Node, Err: fmt.Errorf("%w: %w", errNotConnected, err)})
		pl.log.Error("cluster: cannot reach the cluster database; taking no writes until it answers", "err", err)
	}
	go func() {
		defer close(pl.done)
		for attempt := 1; ; attempt++ {
			if pl.cl.Load() == nil {
				if err := try(); err != nil {
					pl.status.Store(&httpd.ClusterStatus{Node: o.Node, Err: fmt.Errorf("%w: %w", errNotConnected, err)})
					pl.log.Warn("cluster: cannot reach the cluster database; retrying", "attempt", attempt, "err", err)
				}
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				pl.refresh(ctx)
				cancel()
			}
			d := time.Second
			if pl.cl.Load() == nil {
				d = min(time.Duration(attempt+1)*time.Second, 10*time.Second)
			}
			select {
			case <-pl.stop:
				return
			case <-time.After(d):
			}
		}
	}()
}

// refresh recomputes the status that readiness and metrics read.
func (pl *placement) refresh(ctx context.Context) {
	c := pl.cl.Load()
	if c == nil {
		return
	}
	st := &httpd.ClusterStatus{Node: c.Node()}
	ms, err := c.Members(ctx)
	if err != nil {
		if st.Err == nil {
			st.Err = fmt.Errorf("cluster database: %w", err)
		}
		pl.status.Store(st)
		return
	}
	for _, m := range ms {
		switch {
		case m.Node == c.Node():
			st.Own = m.Partitions
		case !m.Alive && m.Partitions > 0:
			st.DeadNodes = append(st.DeadNodes, m.Node)
			st.Orphaned += m.Partitions
		case m.Alive:
			st.Elsewhere += m.Partitions
		}
	}
	pl.status.Store(st)
}

// prepare makes partition p of table, which this node owns, ready for
// writes: when it was taken over, the hot tier goes on past the last
// offset the previous owner handed out, and the flusher re-reads the
// table's watermarks.
func (pl *placement) prepare(ctx context.Context, c *cluster.Cluster, table string, p uint32) error {
	a, ok := c.Lookup(table, p)
	if !ok || !a.Mine {
		return fmt.Errorf("partition %d of table %s is not this node's", p, table)
	}
	k := tablePart{table, p}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if e, ok := pl.ready[k]; ok && e == a.Epoch {
		return nil
	}
	to := max(a.SkipTo, a.Flushed)
	if to > 0 {
		high, err := pl.eng.Advance(table, p, to)
		if err != nil {
			return err
		}
		if high > to && a.PrevNode != c.Node() {
			// Offsets of an earlier ownership of ours, past where the
			// node we took it from left off: numbering on would give
			// two events one offset.
			return fmt.Errorf("partition %d of table %s: this node's hot tier holds offsets up to %d, beyond %d where node %q left it; "+
				"they are from an earlier time this node owned it: move <data-dir>/hot/%s/%d aside to take it again",
				p, table, high, to, a.PrevNode, table, p)
		}
		if f := pl.flusher(); f != nil {
			f.Reload(table)
		}
	}
	high := uint64(0)
	for _, pi := range pl.eng.Partitions(table) {
		if pi.Partition == p {
			high = pi.High
		}
	}
	r := &reservation{}
	r.handed.Store(high)
	r.reserved.Store(a.Reserved)
	if a.Reserved < high+1 {
		if err := c.Reserve(ctx, table, p, high+reserveAhead); err != nil {
			return fmt.Errorf("reserve offsets of partition %d of table %s: %w", p, table, err)
		}
		r.reserved.Store(high + reserveAhead)
	}
	pl.res.Store(k, r)
	pl.ready[k] = a.Epoch
	return nil
}

// Reserve implements httpd.Placement.
func (pl *placement) Reserve(ctx context.Context, table string, p uint32, n int) error {
	v, ok := pl.res.Load(tablePart{table, p})
	c := pl.cl.Load()
	if !ok || c == nil {
		return fmt.Errorf("partition %d of table %s is not ready on this node", p, table)
	}
	r := v.(*reservation)
	h := r.handed.Add(uint64(n))
	if h <= r.reserved.Load() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h <= r.reserved.Load() {
		return nil
	}
	to := h + reserveAhead
	if err := c.Reserve(ctx, table, p, to); err != nil {
		r.handed.Add(^uint64(n - 1)) // not appended: refused
		return err
	}
	r.reserved.Store(to)
	return nil
}

func (pl *placement) cluster() (*cluster.Cluster, error) {
	c := pl.cl.Load()
	if c == nil {
		return nil, errNotConnected
	}
	return c, nil
}

func owner(a cluster.Assignment) httpd.PartitionOwner {
	return httpd.PartitionOwner{Partition: a.Partition, Node: a.Node, Address: a.Address, Alive: a.Alive, Mine: a.Mine}
}

// Own implements httpd.Placement.
func (pl *placement) Own(ctx context.Context, table string) ([]uint32, error) {
	c, err := pl.cluster()
	if err != nil {
		return nil, err
	}
	ps, err := c.Own(ctx, table)
	if err != nil {
		return nil, err
	}
	var errs []error
	ready := ps[:0:0]
	for _, p := range ps {
		if err := pl.prepare(ctx, c, table, p); err != nil {
			errs = append(errs, err)
			continue
		}
		ready = append(ready, p)
	}
	if len(ready) == 0 {
		return nil, cmp.Or(errors.Join(errs...), errors.New("no partition to write"))
	}
	return ready, nil
}

// Place implements httpd.Placement.
func (pl *placement) Place(ctx context.Context, table string, p uint32) (httpd.PartitionOwner, error) {
	c, err := pl.cluster()
	if err != nil {
		return httpd.PartitionOwner{}, err
	}
	a, err := c.Claim(ctx, table, p)
	if err != nil {
		return httpd.PartitionOwner{}, err
	}
	if a.Mine {
		if err := pl.prepare(ctx, c, table, p); err != nil {
			return httpd.PartitionOwner{}, err
		}
	}
	return owner(a), nil
}

// Lookup implements httpd.Placement: an own partition counts only once
// it is ready for writes.
func (pl *placement) Lookup(table string, p uint32) (httpd.PartitionOwner, bool) {
	c := pl.cl.Load()
	if c == nil {
		return httpd.PartitionOwner{}, false
	}
	a, ok := c.Lookup(table, p)
	if !ok {
		return httpd.PartitionOwner{}, false
	}
	if a.Mine {
		pl.mu.Lock()
		e, ready := pl.ready[tablePart{table, p}]
		pl.mu.Unlock()
		if !ready || e != a.Epoch {
			return httpd.PartitionOwner{}, false
		}
	}
	return owner(a), true
}

// Owners implements httpd.Placement.
func (pl *placement) Owners(ctx context.Context, table string) ([]httpd.PartitionOwner, error) {
	c, err := pl.cluster()
	if err != nil {
		return nil, err
	}
	as, err := c.Assignments(ctx, table)
	if err != nil {
		return nil, err
	}
	out := make([]httpd.PartitionOwner, 0, len(as))
	for _, a := range as {
		if a.Node != "" {
			out = append(out, owner(a))
		}
	}
	return out, nil
}

// errLeaseLapsed is the status of a node that cannot show that it still
// holds its lease.
var errLeaseLapsed = errors.New("this node cannot renew its lease in the cluster database: its partitions could be handed to another node, so it takes no writes until it can")

// Status implements httpd.Placement: the lease is checked at every call
// (a clock read), the rest is as of the last refresh (every second).
func (pl *placement) Status() httpd.ClusterStatus {
	st := *pl.status.Load()
	if c := pl.cl.Load(); c != nil && st.Err == nil && !c.Healthy() {
		st.Err = errLeaseLapsed
	}
	return st
}

// CommitOffset implements httpd.Placement.
func (pl *placement) CommitOffset(ctx context.Context, group, table string, p uint32, off uint64) error {
	c, err := pl.cluster()
	if err != nil {
		return err
	}
	return c.CommitOffset(ctx, group, table, p, off)
}

// Offset implements httpd.Placement.
func (pl *placement) Offset(ctx context.Context, group, table string, p uint32) (uint64, bool, error) {
	c, err := pl.cluster()
	if err != nil {
		return 0, false, err
	}
	return c.Offset(ctx, group, table, p)
}

// owns is the flusher's Options.Owns: a partition is flushed by this
// node while it owns it and it is ready (prepare).
func (pl *placement) owns(table string, p uint32) (flush.Takeover, bool) {
	c := pl.cl.Load()
	if c == nil {
		return flush.Takeover{}, false
	}
	a, ok := c.Lookup(table, p)
	if !ok || !a.Mine {
		return flush.Takeover{}, false
	}
	pl.mu.Lock()
	e, ready := pl.ready[tablePart{table, p}]
	pl.mu.Unlock()
	if !ready || e != a.Epoch {
		return flush.Takeover{}, false
	}
	return flush.Takeover{From: a.PrevNode, Flushed: a.Flushed, SkipTo: a.SkipTo}, true
}

// release frees, at a clean stop after the final flush, every partition
// of this node that is wholly committed under its name, so that another
// node may go on with it; one with events still to flush stays this
// node's (they are only on its disk), and comes back with it.
func (pl *placement) release(ctx context.Context, f *flush.Flusher) {
	c := pl.cl.Load()
	if c == nil {
		return
	}
	for table, parts := range c.Owned() {
		w, err := f.Watermarks(ctx, table)
		if err != nil {
			pl.log.Warn("cluster: cannot read the table's watermarks; keeping its partitions", "table", table, "err", err)
			continue
		}
		high := map[uint32]uint64{}
		for _, pi := range pl.eng.Partitions(table) {
			high[pi.Partition] = pi.High
		}
		for _, p := range parts {
			m := w[p]
			if m.Owner != c.Node() || m.Flushed != high[p] {
				pl.log.Info("cluster: keeping a partition that is not wholly committed under this node's name",
					"table", table, "partition", p, "committed", m.Flushed, "committed_by", m.Owner, "high", high[p])
				continue
			}
			if err := c.Release(ctx, table, p, m.Flushed); err != nil {
				pl.log.Warn("cluster: cannot release a partition; it stays this node's", "table", table, "partition", p, "err", err)
				continue
			}
			pl.log.Info("cluster: released", "table", table, "partition", p, "at", m.Flushed)
		}
	}
}

// close stops connecting and leaves the cluster (after release).
func (pl *placement) close() {
	pl.stopOnce.Do(func() { close(pl.stop) })
	if !pl.started.Load() {
		return
	}
	<-pl.done
	if c := pl.cl.Load(); c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			pl.log.Warn("cluster: leave", "err", err)
		}
	}
}

// clusterOptions are the cluster.Options of this node.
func clusterOptions(c *config, node, addr string, log *slog.Logger) cluster.Options {
	return cluster.Options{DSN: c.Cold.CatalogURL, Node: node, Address: addr,
		Partitions: c.Cluster.Partitions, LeaseTTL: c.Cluster.LeaseTTL, Logger: log}
}

// parseClusterMode parses ZOMBI_CLUSTER.
func parseClusterMode(v string) (string, error) {
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case "auto", "on", "off":
		return v, nil
	}
	return "", errors.New("want auto, on or off")
}
