package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster is this node's membership of the cluster: its lease, and the
// partitions it owns. Its methods are safe for concurrent use.
type Cluster struct {
	st   *store
	opts Options
	log  *slog.Logger

	// base is the origin of leaseUntil on the monotonic clock.
	base time.Time
	// leaseUntil is the time since base before which the lease this node
	// last renewed is surely live: the local time taken before sending the
	// renewal, plus the TTL. 0 means not healthy.
	leaseUntil atomic.Int64
	closed     atomic.Bool

	stop context.CancelFunc // stops the renewal loop
	done chan struct{}      // closed when the renewal loop has returned

	// sem serialises the database work that changes the cache below: this
	// node's claims and releases, and the renewal loop's refresh. A
	// refresh reads the rows and then replaces the cache, so a claim in
	// between would be forgotten. A channel, so that waiting honours ctx.
	sem chan struct{}

	// mu guards parts and writes. They are changed with sem held too, so
	// a holder of sem may read them without mu.
	mu sync.RWMutex
	// parts holds every partition row seen: this node's exactly (Mine),
	// other nodes' as last read.
	parts map[key]Assignment
	// writes is Own's answer, by table.
	writes map[string][]uint32

	// Renewal loop only.
	failing bool // the last renewal failed (logged)
	fenced  bool // logged that the lease may have expired
}

// key names a partition of a table.
type key struct {
	table string
	part  uint32
}

// Open joins the cluster as o.Node: it validates o, creates the schema if
// missing, registers the node (address, start time, a fresh lease) and
// starts renewing the lease every LeaseTTL/3. The partitions the node owns
// from before (a restart) are its again at once. Opening as a node whose
// lease is still live is allowed — a kill -9 and an immediate restart of
// the same data directory is the normal case — and takes its row over.
func Open(ctx context.Context, o Options) (*Cluster, error) {
	o.ensureDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, o.DSN)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		st:     st,
		opts:   o,
		log:    o.Logger.With("node", o.Node),
		base:   time.Now(),
		sem:    make(chan struct{}, 1),
		parts:  make(map[key]Assignment),
		writes: make(map[string][]uint32),
		done:   make(chan struct{}),
	}
	fail := func(err error) (*Cluster, error) {
		st.db.Close()
		return nil, err
	}
	l, found, err := nodeLeaseOf(ctx, st.db, nodeLease, o.Node)
	if err != nil {
		return fail(fmt.Errorf("cluster: register node %s: %w", o.Node, err))
	}
	if found && l.alive {
		c.log.Warn("cluster: taking over the row of a node with this id whose lease is still live (a restart after a crash?)",
			"expires", l.expires)
	}
	sent := c.now()
	if err := st.upsertNode(ctx, o.Node, o.Address, o.LeaseTTL, true); err != nil {
		return fail(fmt.Errorf("cluster: register node %s: %w", o.Node, err))
	}
	c.leaseUntil.Store(sent + int64(o.LeaseTTL))
	if _, err := c.refresh(ctx); err != nil {
		return fail(err)
	}
	loop, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.run(loop)
	owned := 0
	for _, ps := range c.Owned() {
		owned += len(ps)
	}
	c.log.Info("cluster: joined", "address", o.Address, "lease", o.LeaseTTL, "owned", owned)
	return c, nil
}

// Close stops renewing the lease, marks the node stopped (no longer
// alive) and closes the database. The node's partitions stay its own:
// Release frees them. Later calls return ErrClosed; a second Close returns
// nil.
func (c *Cluster) Close(ctx context.Context) error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.stop()
	<-c.done
	c.leaseUntil.Store(0)
	var err error
	if e := c.st.stopNode(ctx, c.opts.Node); e != nil {
		err = fmt.Errorf("cluster: mark node %s stopped: %w", c.opts.Node, e)
	}
	return errors.Join(err, c.st.db.Close())
}

// Node returns this node's id.
func (c *Cluster) Node() string { return c.opts.Node }

// Healthy reports whether this node's lease is surely live: false from the
// moment the lease it last renewed may have expired (measured from before
// the renewal was sent), until a renewal succeeds and the node has re-read
// its partitions. A node that is not healthy must not act as an owner: an
// operator may be handing its partitions off.
func (c *Cluster) Healthy() bool {
	return !c.closed.Load() && c.now() < c.leaseUntil.Load()
}

// Own returns the partitions of table this node writes when a write names
// none, sorted: Options.Partitions of them, claimed as needed. It prefers
// partitions this node owns already, then free ones it owned last, then
// other free ones, then the lowest partition numbers never claimed. The
// answer is cached: while the node is healthy, later calls make no
// database round trip.
func (c *Cluster) Own(ctx context.Context, table string) ([]uint32, error) {
	if err := c.usable(table); err != nil {
		return nil, err
	}
	if ps, ok := c.cachedWrites(table); ok {
		return ps, nil
	}
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.unlock()
	if ps, ok := c.cachedWrites(table); ok { // filled while we waited
		return ps, nil
	}
	rows, err := c.st.parts(ctx, whereTable, table)
	if err != nil {
		return nil, err
	}
	want := c.opts.Partitions
	var chosen []uint32
	var freeMine, freeOther []uint32
	used := make(map[uint32]bool, len(rows))
	for _, a := range rows {
		a = c.put(a)
		used[a.Partition] = true
		switch {
		case a.Mine && len(chosen) < want:
			chosen = append(chosen, a.Partition)
		case a.Node == "" && a.PrevNode == c.opts.Node:
			freeMine = append(freeMine, a.Partition)
		case a.Node == "":
			freeOther = append(freeOther, a.Partition)
		}
	}
	for _, p := range append(freeMine, freeOther...) {
		if len(chosen) == want {
			break
		}
		ok, err := c.claimOne(ctx, table, p)
		if err != nil {
			return nil, err
		}
		if ok {
			chosen = append(chosen, p)
		}
	}
	for p := uint64(0); len(chosen) < want; p++ {
		if p > math.MaxUint32 {
			return nil, fmt.Errorf("cluster: own %s: no partition number left", table)
		}
		if used[uint32(p)] {
			continue
		}
		ok, err := c.claimOne(ctx, table, uint32(p))
		if err != nil {
			return nil, err
		}
		if ok {
			chosen = append(chosen, uint32(p))
		} // else another node inserted it first: try the next number
	}
	slices.Sort(chosen)
	c.mu.Lock()
	c.writes[table] = chosen
	c.mu.Unlock()
	return slices.Clone(chosen), nil
}

// claimOne claims p for this node if it is free or has no row, and
// reports whether it did.
func (c *Cluster) claimOne(ctx context.Context, table string, p uint32) (bool, error) {
	a, ok, err := c.st.claim(ctx, table, p, c.opts.Node)
	if err != nil || !ok {
		return false, err
	}
	c.put(a)
	c.logClaim(a)
	return true, nil
}

// Claim claims partition p of table for this node if it is free or has no
// row, and returns the result: Mine when this node owns p (already or
// now), else the owner's assignment, with its address and liveness. A
// partition this node owns is answered from memory while it is healthy.
func (c *Cluster) Claim(ctx context.Context, table string, p uint32) (Assignment, error) {
	if err := c.usable(table); err != nil {
		return Assignment{}, err
	}
	if a, ok := c.Lookup(table, p); ok && a.Mine && a.Alive {
		return a, nil
	}
	if err := c.lock(ctx); err != nil {
		return Assignment{}, err
	}
	defer c.unlock()
	for range 100 {
		a, ok, err := c.st.claim(ctx, table, p, c.opts.Node)
		if err != nil {
			return Assignment{}, err
		}
		if ok {
			a = c.put(a)
			c.logClaim(a)
			return a, nil
		}
		a, found, err := c.st.part(ctx, table, p)
		if err != nil {
			return Assignment{}, err
		}
		if found && a.Node != "" {
			return c.put(a), nil
		} // freed between the two statements: claim again
	}
	return Assignment{}, fmt.Errorf("cluster: claim %s/%d: it keeps changing hands", table, p)
}

// Reserve records that this node may hand out the offsets of partition
// p of table up to upTo (never lowering what it reserved before), before
// it hands them out: a handoff of this node's partitions skips every
// reserved offset, since it may have acked any of them. ErrNotOwner when
// p is not this node's.
func (c *Cluster) Reserve(ctx context.Context, table string, p uint32, upTo uint64) error {
	if err := c.usable(table); err != nil {
		return err
	}
	r, ok, err := c.st.reserve(ctx, table, p, c.opts.Node, upTo)
	if err != nil {
		return err
	}
	k := key{table, p}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		if c.parts[k].Mine {
			delete(c.parts, k)
		}
		return fmt.Errorf("%w: %s/%d", ErrNotOwner, table, p)
	}
	if a, mine := c.parts[k]; mine && a.Mine {
		a.Reserved = r
		c.parts[k] = a
	}
	return nil
}

// Lookup returns the known owner of partition p of table, from memory: this
// node's partitions always, other nodes' as last read (refreshed every
// LeaseTTL/3 for the tables this node has seen). ok is false when p is
// free or unknown here; Claim then asks the database.
func (c *Cluster) Lookup(table string, p uint32) (Assignment, bool) {
	c.mu.RLock()
	a, ok := c.parts[key{table, p}]
	c.mu.RUnlock()
	if !ok || a.Node == "" {
		return Assignment{}, false
	}
	if a.Mine {
		a.Alive = c.Healthy()
	}
	return a, true
}

// Owned returns every partition this node owns, sorted, by table (from
// memory).
func (c *Cluster) Owned() map[string][]uint32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m := make(map[string][]uint32)
	for k, a := range c.parts {
		if a.Mine {
			m[k.table] = append(m[k.table], k.part)
		}
	}
	for _, ps := range m {
		slices.Sort(ps)
	}
	return m
}

// Release frees partition p of table if this node owns it, recording this
// node as the previous owner and flushed — the last offset of p committed
// to Iceberg, everything before it flushed — as both flushed and skip_to
// (skip_to never moves back below an earlier takeover's). It returns
// ErrNotOwner if this node does not own p.
func (c *Cluster) Release(ctx context.Context, table string, p uint32, flushed uint64) error {
	if err := c.usable(table); err != nil {
		return err
	}
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	a, ok, err := c.st.free(ctx, c.st.db, table, p, c.opts.Node, flushed, flushed, false)
	if err != nil {
		return err
	}
	k := key{table, p}
	c.mu.Lock()
	was := c.parts[k].Mine
	if ok {
		c.parts[k] = a
	} else if was {
		delete(c.parts, k)
	}
	delete(c.writes, table) // Own chooses again
	c.mu.Unlock()
	if !ok {
		if was {
			c.log.Warn("cluster: partition to release no longer owned by this node", "table", table, "partition", p)
		}
		return fmt.Errorf("%w: %s/%d", ErrNotOwner, table, p)
	}
	c.log.Info("cluster: released", "table", table, "partition", p, "flushed", a.Flushed, "skip_to", a.SkipTo)
	return nil
}

// Assignments returns every partition row of table ("" for every table),
// sorted by table then partition, with the owners' liveness.
func (c *Cluster) Assignments(ctx context.Context, table string) ([]Assignment, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	as, err := c.st.parts(ctx, whereTable, table)
	for i := range as {
		as[i].Mine = as[i].Node == c.opts.Node
	}
	return as, err
}

// Members returns every node that ever joined, sorted by id, with its
// liveness and how many partitions it owns.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	return c.st.members(ctx)
}

// CommitOffset records off as the offset of consumer group in partition p
// of table, replacing the previous one.
func (c *Cluster) CommitOffset(ctx context.Context, group, table string, p uint32, off uint64) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return c.st.commitOffset(ctx, group, table, p, off)
}

// Offset returns the offset of consumer group in partition p of table, as
// committed by any node; ok is false when none was.
func (c *Cluster) Offset(ctx context.Context, group, table string, p uint32) (off uint64, ok bool, err error) {
	if c.closed.Load() {
		return 0, false, ErrClosed
	}
	return c.st.offset(ctx, group, table, p)
}

// run renews the lease every LeaseTTL/3 until ctx is done.
func (c *Cluster) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.renew(ctx)
		}
	}
}

// renew renews the lease and refreshes the cache. After a gap — the
// previous lease may have expired before this renewal went through, so an
// operator may have handed partitions off — the node re-reads its
// partitions before it counts as healthy again.
func (c *Cluster) renew(ctx context.Context) {
	ttl := c.opts.LeaseTTL
	sent := c.now()
	rctx, cancel := context.WithTimeout(ctx, ttl/2)
	err := c.st.upsertNode(rctx, c.opts.Node, c.opts.Address, ttl, false)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if !c.failing {
			c.log.Warn("cluster: lease renewal failed", "err", err)
			c.failing = true
		}
		if !c.fenced && !c.Healthy() {
			c.log.Error("cluster: lease may have expired: not healthy until a renewal succeeds", "ttl", ttl)
			c.fenced = true
		}
		return
	}
	gap := c.now() >= c.leaseUntil.Load()
	if !gap {
		c.leaseUntil.Store(sent + int64(ttl))
	}
	rctx, cancel = context.WithTimeout(ctx, ttl/2)
	lost, err := c.refresh(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("cluster: refresh of partition owners failed", "err", err)
		}
		if gap {
			return // still not healthy: try again at the next tick
		}
	}
	if gap {
		c.leaseUntil.Store(sent + int64(ttl))
		c.log.Info("cluster: lease renewed after a gap; owned partitions re-read", "lost", lost)
	} else if c.failing {
		c.log.Info("cluster: lease renewed again")
	}
	c.failing, c.fenced = false, false
}

// refresh re-reads the rows of this node's partitions and of every table
// in the cache, and replaces the cache with them. It returns how many
// partitions this node believed it owned and no longer does (handed off
// while it could not renew), and logs each.
func (c *Cluster) refresh(ctx context.Context) (lost int, err error) {
	if err := c.lock(ctx); err != nil {
		return 0, err
	}
	defer c.unlock()
	tables := make([]string, 0, len(c.writes))
	seen := make(map[string]bool)
	for k := range c.parts {
		if !seen[k.table] {
			seen[k.table] = true
			tables = append(tables, k.table)
		}
	}
	rows, err := c.st.parts(ctx, whereNodeOrTables, c.opts.Node, tables)
	if err != nil {
		return 0, err
	}
	parts := make(map[key]Assignment, len(rows))
	for _, a := range rows {
		parts[key{a.Table, a.Partition}] = c.mine(a)
	}
	var gone []Assignment
	for k, a := range c.parts {
		if a.Mine && !parts[k].Mine {
			gone = append(gone, parts[k])
		}
	}
	c.mu.Lock()
	c.parts = parts
	for t, ps := range c.writes {
		if slices.ContainsFunc(ps, func(p uint32) bool { return !parts[key{t, p}].Mine }) {
			delete(c.writes, t) // Own chooses again
		}
	}
	c.mu.Unlock()
	for _, a := range gone {
		c.log.Warn("cluster: partition no longer owned by this node (handed off while it could not renew its lease?)",
			"table", a.Table, "partition", a.Partition, "owner", a.Node, "prev_node", a.PrevNode, "skip_to", a.SkipTo)
	}
	return len(gone), nil
}

// put records a row in the cache and returns it with Mine set.
// Lock sem should be held.
func (c *Cluster) put(a Assignment) Assignment {
	a = c.mine(a)
	c.mu.Lock()
	c.parts[key{a.Table, a.Partition}] = a
	c.mu.Unlock()
	return a
}

// mine sets a.Mine, and this node's address and health when it is.
func (c *Cluster) mine(a Assignment) Assignment {
	a.Mine = a.Node == c.opts.Node
	if a.Mine {
		a.Address, a.Alive = c.opts.Address, c.Healthy()
	}
	return a
}

// logClaim logs a claim: a takeover at Info, a new partition at Debug.
func (c *Cluster) logClaim(a Assignment) {
	if a.PrevNode != "" {
		c.log.Info("cluster: claimed", "table", a.Table, "partition", a.Partition, "epoch", a.Epoch,
			"prev_node", a.PrevNode, "flushed", a.Flushed, "skip_to", a.SkipTo)
	} else {
		c.log.Debug("cluster: claimed", "table", a.Table, "partition", a.Partition, "epoch", a.Epoch)
	}
}

// cachedWrites returns Own's cached answer for table, if the node is
// healthy and the answer complete.
func (c *Cluster) cachedWrites(table string) ([]uint32, bool) {
	if !c.Healthy() {
		return nil, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	ps, ok := c.writes[table]
	if !ok || len(ps) != c.opts.Partitions {
		return nil, false
	}
	return slices.Clone(ps), true
}

// usable checks that c is open and table named.
func (c *Cluster) usable(table string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if table == "" {
		return errors.New("cluster: empty table name")
	}
	return nil
}

// lock takes sem, or fails when ctx is done first.
func (c *Cluster) lock(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cluster) unlock() { <-c.sem }

// now is the monotonic time since c.base.
func (c *Cluster) now() int64 { return int64(time.Since(c.base)) }
