package cluster

import (
	"context"
	"sync/atomic"
)

// Admin is the operator's view of the cluster, without being a member of
// it: for a command run from an operator's machine.
type Admin struct {
	st     *store
	closed atomic.Bool
}

// OpenAdmin connects to the cluster's database at dsn, creating the schema
// if missing.
func OpenAdmin(ctx context.Context, dsn string) (*Admin, error) {
	st, err := openStore(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &Admin{st: st}, nil
}

// Close closes the database. A second Close returns nil.
func (a *Admin) Close() error {
	if !a.closed.CompareAndSwap(false, true) {
		return nil
	}
	return a.st.db.Close()
}

// Members returns every node that ever joined, sorted by id, with its
// liveness and how many partitions it owns.
func (a *Admin) Members(ctx context.Context) ([]Member, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	return a.st.members(ctx)
}

// Assignments returns every partition row of table ("" for every table),
// sorted by table then partition, with the owners' liveness.
func (a *Admin) Assignments(ctx context.Context, table string) ([]Assignment, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	return a.st.parts(ctx, whereTable, table)
}

// Handoff frees every partition of node so that other nodes can claim
// them. node must not be alive: while its lease is live Handoff fails with
// ErrAlive, saying when the lease expires. For each partition, marks
// returns the takeover record to write — flushed, the last offset of the
// partition committed to Iceberg, and skipTo >= flushed, the highest
// offset node may have handed out (the caller records flushed+1..skipTo as
// lost) — and the partition is freed with prev_node = node. Each row is
// freed only if node still owns it, and node's row stays locked meanwhile,
// so neither a concurrent claim nor a renewal is ever overwritten. It
// returns the partitions freed, sorted by table then partition.
func (a *Admin) Handoff(ctx context.Context, node string, marks func(table string, p uint32) (flushed, skipTo uint64, err error)) ([]Assignment, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	return a.st.handoff(ctx, node, marks)
}
