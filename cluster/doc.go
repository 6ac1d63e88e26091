// Package cluster lets several zombi nodes share the partitions of their
// tables through one PostgreSQL database: the one that already serves as
// their Iceberg SQL catalog. It knows nothing of HTTP, the engine, Parquet
// or Iceberg; the caller turns its answers into routing and flushing.
//
// # Model
//
// A node has an id (1–64 letters, digits, '.', '_' or '-') and an
// advertised address (host:port). It registers when it opens and renews a
// lease every LeaseTTL/3; it is alive while its lease has not expired and
// it has not stopped. Leases are measured on the database's clock (now()),
// never on a node's, so clock skew between nodes does not matter.
//
// Each (table, partition) has at most one owning node. A partition row with
// no node is free; a partition without a row was never claimed. Ownership
// changes only through conditional writes on the row's primary key — a
// claim is "set node = me where node is null" (or an insert that loses to
// an existing row), a release is "set node = null where node = me" — so
// two nodes can never both believe a claim succeeded, whatever the
// interleaving; nothing is decided by reading and then writing.
//
// Ownership is sticky. A node whose lease expires (it crashed, or lost the
// database) keeps its partitions: its unflushed events exist only on its
// disk, so nobody else may write after them until it comes back or an
// operator gives them up (Admin.Handoff). A node's clean stop releases its
// partitions (Release) after flushing them.
//
// A free row keeps a takeover record for the next owner:
//
//   - prev_node: the last owner;
//   - flushed:   the last offset of the partition committed to Iceberg
//     when it was freed;
//   - skip_to:   the last offset the next owner must skip (never reuse),
//     >= flushed. A clean release sets skip_to = flushed (unless an
//     earlier takeover had already skipped further); a handoff of a dead
//     node sets skip_to to the highest offset the dead node may have
//     handed out, and the caller records flushed+1..skip_to as lost.
//
// Claiming a free row bumps its epoch and keeps the record: the new
// owner's first offset is skip_to+1, and its first Iceberg commit takes the
// partition's watermark over from prev_node.
//
// A node fences itself: Healthy is false from the moment the lease it last
// renewed may have expired — counted on the local monotonic clock from
// before the renewal was sent, so never later than the database's expiry —
// until a renewal succeeds again. After such a gap the node re-reads the
// partitions it owns before it reports healthy, and drops (and logs) any
// that an operator handed off meanwhile. Handoff locks the node's row while
// it frees the partitions, so a renewal racing with it either comes first
// (and Handoff refuses: the node is alive) or waits and sees the handoff.
//
// # Why a lease table and not Iceberg table properties
//
// Heartbeats and ownership changes are frequent and tiny, and each needs a
// conditional write: a row-level compare-and-set under a primary key is
// the whole mechanism, and PostgreSQL does it in one statement. Recording
// them as Iceberg table properties would write a metadata file to the
// object store for every heartbeat, every few seconds per node, and
// serialise heartbeats with the data commits of the same table. The data
// commits themselves carry zombi.owner.<p> in their snapshot summary, as a
// second fence (DESIGN §4).
//
// # Schema
//
// Created by Open and OpenAdmin if missing, under a transaction-scoped
// advisory lock (schemaLockKey) so that nodes starting together do not
// collide in CREATE TABLE IF NOT EXISTS:
//
//	zombi_nodes: one row per node that ever opened
//	  node        text primary key   the node's id
//	  address     text not null      its advertised host:port
//	  started_at  timestamptz        when it last opened
//	  renewed_at  timestamptz        its last lease renewal (database clock)
//	  expires_at  timestamptz        when its lease runs out
//	  stopped     boolean            it closed cleanly (not alive)
//
//	zombi_partitions: one row per partition ever claimed
//	  tbl, part   text, bigint       primary key
//	  node        text null          the owner; null when free
//	  epoch       bigint             bumped by every claim of a free row
//	  prev_node   text null          takeover record: the last owner
//	  flushed     bigint             takeover record: committed offset
//	  skip_to     bigint             takeover record: last offset to skip
//	  claimed_at  timestamptz        last claim
//	  released_at timestamptz        last release or handoff
//
//	zombi_consumer_offsets: consumer groups' committed offsets
//	  grp, tbl, part  text, text, bigint   primary key
//	  off             bigint               the committed offset
//	  updated_at      timestamptz
//
// Offsets are uint64 in Go and bigint in the database: values above
// math.MaxInt64 are refused.
package cluster
