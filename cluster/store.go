package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Sentinel errors.
var (
	// ErrNotOwner: the partition is not owned by this node.
	ErrNotOwner = errors.New("cluster: partition not owned by this node")
	// ErrAlive: the node's lease is live, so its partitions cannot be
	// handed off.
	ErrAlive = errors.New("cluster: node is alive")
	// ErrClosed: the Cluster or Admin was closed.
	ErrClosed = errors.New("cluster: closed")
)

// Assignment is the state of one partition of a table.
type Assignment struct {
	Table     string
	Partition uint32
	// Node and Address are the owner's id and advertised address; "" when
	// the partition is free.
	Node, Address string
	// Alive reports that the owner's lease is live.
	Alive bool
	// Mine reports that this node owns the partition (always false from
	// Admin).
	Mine bool
	// Epoch counts the claims of the partition; a claim of a free row
	// bumps it.
	Epoch int64
	// PrevNode, Flushed and SkipTo are the takeover record: the last
	// owner, the last offset committed to Iceberg when it was freed, and
	// the last offset the next owner must skip (its first is SkipTo+1).
	PrevNode        string
	Flushed, SkipTo uint64
	// Reserved bounds the offsets handed out in the partition from
	// above, by whichever node owned it (Cluster.Reserve): a handoff
	// skips up to it, since a dead owner may have acked any of them.
	Reserved uint64
}

// Member is one node of the cluster, as its row records it.
type Member struct {
	Node, Address string
	// Alive: the lease is live and the node has not stopped.
	Alive bool
	// Stopped: the node closed cleanly.
	Stopped bool
	// RenewedAt and ExpiresAt are its last renewal and its lease's end,
	// on the database's clock.
	RenewedAt, ExpiresAt time.Time
	// Partitions is how many partitions it owns, of every table.
	Partitions int
}

// schemaLockKey is the pg_advisory_xact_lock key that serialises schema
// creation ("zombi" in ASCII).
const schemaLockKey int64 = 0x7a6f6d6269

// schema creates the tables if missing; see the package comment.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS zombi_nodes (
		node       text PRIMARY KEY,
		address    text NOT NULL,
		started_at timestamptz NOT NULL,
		renewed_at timestamptz NOT NULL,
		expires_at timestamptz NOT NULL,
		stopped    boolean NOT NULL DEFAULT false)`,
	`CREATE TABLE IF NOT EXISTS zombi_partitions (
		tbl         text NOT NULL,
		part        bigint NOT NULL,
		node        text NULL,
		epoch       bigint NOT NULL,
		prev_node   text NULL,
		flushed     bigint NOT NULL DEFAULT 0,
		skip_to     bigint NOT NULL DEFAULT 0,
		reserved    bigint NOT NULL DEFAULT 0,
		claimed_at  timestamptz,
		released_at timestamptz,
		PRIMARY KEY (tbl, part),
		CHECK (skip_to >= flushed))`,
	`CREATE INDEX IF NOT EXISTS zombi_partitions_node ON zombi_partitions (node)`,
	`CREATE TABLE IF NOT EXISTS zombi_consumer_offsets (
		grp        text NOT NULL,
		tbl        text NOT NULL,
		part       bigint NOT NULL,
		off        bigint NOT NULL,
		updated_at timestamptz,
		PRIMARY KEY (grp, tbl, part))`,
}

// The statements. A node is alive while expires_at > now() and not
// stopped; inside a transaction that waited for a lock, clock_timestamp()
// replaces now() (the transaction's start).
const (
	upsertNode = `INSERT INTO zombi_nodes AS n (node, address, started_at, renewed_at, expires_at, stopped)
		VALUES ($1, $2, now(), now(), now() + make_interval(secs => $3), false)
		ON CONFLICT (node) DO UPDATE SET address = EXCLUDED.address, renewed_at = EXCLUDED.renewed_at,
			expires_at = EXCLUDED.expires_at, stopped = false`
	registerNode = upsertNode + `, started_at = EXCLUDED.started_at`

	stopNode = `UPDATE zombi_nodes SET stopped = true, expires_at = LEAST(expires_at, now()) WHERE node = $1`

	// nodeLease is the liveness of one node, its lease's end and the
	// seconds left of it; lockNodeLease locks the row against renewals.
	nodeLease     = `SELECT expires_at > clock_timestamp() AND NOT stopped, expires_at, EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 FROM zombi_nodes WHERE node = $1`
	lockNodeLease = nodeLease + ` FOR UPDATE`

	selectMembers = `SELECT n.node, n.address, n.stopped, n.renewed_at, n.expires_at, n.expires_at > now() AND NOT n.stopped,
		(SELECT count(*) FROM zombi_partitions p WHERE p.node = n.node)
		FROM zombi_nodes n ORDER BY n.node`

	// claimPart takes a partition that is free or has no row, as one
	// conditional write: it returns no row when another node (or this
	// one) owns it.
	claimPart = `INSERT INTO zombi_partitions AS p (tbl, part, node, epoch, claimed_at)
		VALUES ($1, $2, $3, 1, now())
		ON CONFLICT (tbl, part) DO UPDATE SET node = EXCLUDED.node, epoch = p.epoch + 1, claimed_at = EXCLUDED.claimed_at
			WHERE p.node IS NULL
		RETURNING p.epoch, COALESCE(p.prev_node, ''), p.flushed, p.skip_to, p.reserved`

	// freePart frees a partition if $3 owns it, writing the takeover
	// record; skip_to never moves back, so offsets an earlier takeover
	// skipped stay skipped.
	freePart = `UPDATE zombi_partitions SET node = NULL, prev_node = node, flushed = $4::bigint,
			skip_to = GREATEST($5::bigint, skip_to), released_at = now()
		WHERE tbl = $1 AND part = $2 AND node = $3
		RETURNING epoch, flushed, skip_to`
	// handoffPart is freePart for a dead owner: it skips every offset
	// the owner reserved too (read under the row's lock, so a
	// reservation that raced the handoff is counted).
	handoffPart = `UPDATE zombi_partitions SET node = NULL, prev_node = node, flushed = $4::bigint,
			skip_to = GREATEST($5::bigint, skip_to, reserved), released_at = now()
		WHERE tbl = $1 AND part = $2 AND node = $3
		RETURNING epoch, flushed, skip_to`

	// reservePart raises the reservation of a partition $3 owns.
	reservePart = `UPDATE zombi_partitions SET reserved = GREATEST(reserved, $4::bigint)
		WHERE tbl = $1 AND part = $2 AND node = $3
		RETURNING reserved`

	// selectParts lists partitions with their owner's address and
	// liveness; one of the where* clauses follows.
	selectParts = `SELECT p.tbl, p.part, COALESCE(p.node, ''), COALESCE(n.address, ''),
		COALESCE(n.expires_at > now() AND NOT n.stopped, false),
		p.epoch, COALESCE(p.prev_node, ''), p.flushed, p.skip_to, p.reserved
		FROM zombi_partitions p LEFT JOIN zombi_nodes n ON n.node = p.node `
	orderParts        = ` ORDER BY p.tbl, p.part`
	wherePart         = `WHERE p.tbl = $1 AND p.part = $2`
	whereTable        = `WHERE $1::text = '' OR p.tbl = $1::text`
	whereNode         = `WHERE p.node = $1`
	whereNodeOrTables = `WHERE p.node = $1 OR p.tbl = ANY($2)`

	upsertOffset = `INSERT INTO zombi_consumer_offsets (grp, tbl, part, off, updated_at) VALUES ($1, $2, $3, $4, now())
		ON CONFLICT (grp, tbl, part) DO UPDATE SET off = EXCLUDED.off, updated_at = EXCLUDED.updated_at`
	selectOffset = `SELECT off FROM zombi_consumer_offsets WHERE grp = $1 AND tbl = $2 AND part = $3`
)

// queryRower is a *sql.DB or a *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// store holds the SQL that Cluster and Admin share.
type store struct {
	db *sql.DB
}

// openStore connects to dsn and creates the schema if missing.
func openStore(ctx context.Context, dsn string) (*store, error) {
	if dsn == "" {
		return nil, errors.New("cluster: no DSN: the postgres:// URL of the catalog's database is required")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("cluster: open database: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	s := &store{db: db}
	if err := s.createSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// createSchema creates the tables, one opener at a time.
func (s *store) createSchema(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cluster: create schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLockKey); err != nil {
		return fmt.Errorf("cluster: create schema: lock: %w", err)
	}
	for _, q := range schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("cluster: create schema: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cluster: create schema: %w", err)
	}
	return nil
}

// lease is a node's lease as the database sees it.
type lease struct {
	alive   bool
	expires time.Time
	left    time.Duration // until expires; <= 0 once expired
}

// nodeLeaseOf runs query (nodeLease or lockNodeLease) on q: the lease of node, found false when it has no row.
func nodeLeaseOf(ctx context.Context, q queryRower, query, node string) (l lease, found bool, err error) {
	var secs float64
	err = q.QueryRowContext(ctx, query, node).Scan(&l.alive, &l.expires, &secs)
	if errors.Is(err, sql.ErrNoRows) {
		return lease{}, false, nil
	}
	if err != nil {
		return lease{}, false, err
	}
	l.left = time.Duration(secs * float64(time.Second))
	return l, true, nil
}

// upsertNode writes node's row with a lease of ttl from now (database
// clock); register also sets started_at.
func (s *store) upsertNode(ctx context.Context, node, address string, ttl time.Duration, register bool) error {
	q := upsertNode
	if register {
		q = registerNode
	}
	_, err := s.db.ExecContext(ctx, q, node, address, ttl.Seconds())
	return err
}

// stopNode marks node stopped, ending its lease.
func (s *store) stopNode(ctx context.Context, node string) error {
	_, err := s.db.ExecContext(ctx, stopNode, node)
	return err
}

// members lists every node.
func (s *store) members(ctx context.Context) ([]Member, error) {
	rows, err := s.db.QueryContext(ctx, selectMembers)
	if err != nil {
		return nil, fmt.Errorf("cluster: members: %w", err)
	}
	defer rows.Close()
	var ms []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.Node, &m.Address, &m.Stopped, &m.RenewedAt, &m.ExpiresAt, &m.Alive, &m.Partitions); err != nil {
			return nil, fmt.Errorf("cluster: members: %w", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster: members: %w", err)
	}
	return ms, nil
}

// claim claims partition p of table for node if it is free or has no row.
// ok is false when some node owns it already (maybe node itself).
func (s *store) claim(ctx context.Context, table string, p uint32, node string) (a Assignment, ok bool, err error) {
	var flushed, skipTo, reserved int64
	err = s.db.QueryRowContext(ctx, claimPart, table, int64(p), node).Scan(&a.Epoch, &a.PrevNode, &flushed, &skipTo, &reserved)
	if errors.Is(err, sql.ErrNoRows) {
		return Assignment{}, false, nil
	}
	if err != nil {
		return Assignment{}, false, fmt.Errorf("cluster: claim %s/%d: %w", table, p, err)
	}
	a.Table, a.Partition, a.Node = table, p, node
	a.Flushed, a.SkipTo, a.Reserved = uint64(flushed), uint64(skipTo), uint64(reserved)
	return a, true, nil
}

// free frees partition p of table if node owns it, recording the takeover
// record; a handoff (dead owner) skips up to its reservation too. ok is
// false when node does not own it. a is the freed row.
func (s *store) free(ctx context.Context, q queryRower, table string, p uint32, node string, flushed, skipTo uint64, handoff bool) (a Assignment, ok bool, err error) {
	if skipTo < flushed {
		return Assignment{}, false, fmt.Errorf("cluster: free %s/%d: skip_to %d below flushed %d", table, p, skipTo, flushed)
	}
	f, err := toDB(flushed)
	if err != nil {
		return Assignment{}, false, err
	}
	st, err := toDB(skipTo)
	if err != nil {
		return Assignment{}, false, err
	}
	var gotFlushed, gotSkip int64
	stmt := freePart
	if handoff {
		stmt = handoffPart
	}
	err = q.QueryRowContext(ctx, stmt, table, int64(p), node, f, st).Scan(&a.Epoch, &gotFlushed, &gotSkip)
	if errors.Is(err, sql.ErrNoRows) {
		return Assignment{}, false, nil
	}
	if err != nil {
		return Assignment{}, false, fmt.Errorf("cluster: free %s/%d: %w", table, p, err)
	}
	a.Table, a.Partition, a.PrevNode = table, p, node
	a.Flushed, a.SkipTo = uint64(gotFlushed), uint64(gotSkip)
	return a, true, nil
}

// parts runs selectParts with the where clause and its arguments.
func (s *store) parts(ctx context.Context, where string, args ...any) ([]Assignment, error) {
	rows, err := s.db.QueryContext(ctx, selectParts+where+orderParts, args...)
	if err != nil {
		return nil, fmt.Errorf("cluster: partitions: %w", err)
	}
	defer rows.Close()
	var as []Assignment
	for rows.Next() {
		var a Assignment
		var part, flushed, skipTo, reserved int64
		if err := rows.Scan(&a.Table, &part, &a.Node, &a.Address, &a.Alive, &a.Epoch, &a.PrevNode, &flushed, &skipTo, &reserved); err != nil {
			return nil, fmt.Errorf("cluster: partitions: %w", err)
		}
		a.Partition, a.Flushed, a.SkipTo, a.Reserved = uint32(part), uint64(flushed), uint64(skipTo), uint64(reserved)
		if a.Node == "" {
			a.Address = ""
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster: partitions: %w", err)
	}
	return as, nil
}

// part returns the row of partition p of table, found false when it has
// none.
func (s *store) part(ctx context.Context, table string, p uint32) (Assignment, bool, error) {
	as, err := s.parts(ctx, wherePart, table, int64(p))
	if err != nil || len(as) == 0 {
		return Assignment{}, false, err
	}
	return as[0], true, nil
}

// handoff frees every partition of node, which must not be alive; see
// Admin.Handoff.
func (s *store) handoff(ctx context.Context, node string, marks func(table string, p uint32) (flushed, skipTo uint64, err error)) ([]Assignment, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	alive := func(l lease, found bool, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("cluster: handoff %s: %w", node, err)
		case !found:
			return fmt.Errorf("cluster: handoff %s: no such node", node)
		case l.alive:
			return fmt.Errorf("%w: %s holds a lease until %s (%v from now): stop it, or wait for its lease to expire",
				ErrAlive, node, l.expires.UTC().Format(time.RFC3339), l.left.Round(time.Millisecond))
		}
		return nil
	}
	// A first check, before asking marks (which may read Iceberg tables)
	// about a node that is alive anyway.
	if err := alive(nodeLeaseOf(ctx, s.db, nodeLease, node)); err != nil {
		return nil, err
	}
	owned, err := s.parts(ctx, whereNode, node)
	if err != nil {
		return nil, err
	}
	type mark struct{ flushed, skipTo uint64 }
	ms := make([]mark, len(owned))
	for i, a := range owned {
		f, st, err := marks(a.Table, a.Partition)
		if err != nil {
			return nil, fmt.Errorf("cluster: handoff %s: marks of %s/%d: %w", node, a.Table, a.Partition, err)
		}
		if st < f {
			return nil, fmt.Errorf("cluster: handoff %s: %s/%d: skip-to %d below flushed %d", node, a.Table, a.Partition, st, f)
		}
		ms[i] = mark{f, st}
	}
	// The node's row stays locked until the partitions are freed, so a
	// renewal either came first (and the node is alive) or waits, and the
	// node re-reads its partitions after it.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster: handoff %s: %w", node, err)
	}
	defer tx.Rollback()
	if err := alive(nodeLeaseOf(ctx, tx, lockNodeLease, node)); err != nil {
		return nil, err
	}
	var freed []Assignment
	for i, a := range owned {
		f, ok, err := s.free(ctx, tx, a.Table, a.Partition, node, ms[i].flushed, ms[i].skipTo, true)
		if err != nil {
			return nil, fmt.Errorf("cluster: handoff %s: %w", node, err)
		}
		if ok { // else it changed hands meanwhile: leave it
			freed = append(freed, f)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("cluster: handoff %s: %w", node, err)
	}
	return freed, nil
}

// reserve raises the reservation of partition p of table, which node
// must own; ok is false when it does not.
func (s *store) reserve(ctx context.Context, table string, p uint32, node string, upTo uint64) (reserved uint64, ok bool, err error) {
	u, err := toDB(upTo)
	if err != nil {
		return 0, false, err
	}
	var r int64
	err = s.db.QueryRowContext(ctx, reservePart, table, int64(p), node, u).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cluster: reserve %s/%d: %w", table, p, err)
	}
	return uint64(r), true, nil
}

// commitOffset records the offset of group in partition p of table.
func (s *store) commitOffset(ctx context.Context, group, table string, p uint32, off uint64) error {
	if group == "" || table == "" {
		return errors.New("cluster: commit offset: empty group or table")
	}
	o, err := toDB(off)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, upsertOffset, group, table, int64(p), o); err != nil {
		return fmt.Errorf("cluster: commit offset %s %s/%d: %w", group, table, p, err)
	}
	return nil
}

// offset returns the offset of group in partition p of table, found false
// when it has none.
func (s *store) offset(ctx context.Context, group, table string, p uint32) (uint64, bool, error) {
	var off int64
	err := s.db.QueryRowContext(ctx, selectOffset, group, table, int64(p)).Scan(&off)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cluster: offset %s %s/%d: %w", group, table, p, err)
	}
	return uint64(off), true, nil
}

// toDB converts an offset to bigint.
func toDB(v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("cluster: offset %d: above the database's bigint", v)
	}
	return int64(v), nil
}
