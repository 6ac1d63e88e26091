package httpd

// Placement: in a cluster (several nodes behind one load balancer on the
// same tables), each partition is written by one node. A write that
// names no partition goes to one of this node's own; one that names a
// partition another node owns is refused with 421 and the owner's
// address, never taken by a second writer.

import (
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/wire"
)

// Placement tells a node of a cluster which partitions it writes
// (Config.Placement; cmd/zombi implements it over package cluster). nil:
// a single node, where a write that names no partition goes to 0.
type Placement interface {
	// Own returns the partitions of table this node writes the records
	// that name none in (never empty without an error).
	Own(ctx context.Context, table string) ([]uint32, error)
	// Place returns the owner of partition p of table, claiming it for
	// this node when nobody owns it.
	Place(ctx context.Context, table string, p uint32) (PartitionOwner, error)
	// Lookup returns the owner of partition p of table as last seen,
	// without claiming it or asking the database; false when unknown.
	Lookup(table string, p uint32) (PartitionOwner, bool)
	// Reserve accounts for n records about to be appended to partition
	// p of table, which this node owns: the offsets a node may hand out
	// are reserved in the cluster database ahead of use, so that a dead
	// node's partition is taken over past every offset it could have
	// acked. An error refuses the write.
	Reserve(ctx context.Context, table string, p uint32, n int) error
	// Owners lists every partition of table that has an owner.
	Owners(ctx context.Context, table string) ([]PartitionOwner, error)
	// Status reports this node's standing in the cluster.
	Status() ClusterStatus
	// CommitOffset and Offset keep consumer offsets where every node
	// sees them.
	CommitOffset(ctx context.Context, group, table string, p uint32, off uint64) error
	Offset(ctx context.Context, group, table string, p uint32) (uint64, bool, error)
}

// PartitionOwner is the node that writes a partition.
type PartitionOwner struct {
	Partition     uint32
	Node, Address string // Address: where clients reach it
	Alive         bool   // its lease is live
	Mine          bool   // this node
}

// ClusterStatus is a node's standing in its cluster.
type ClusterStatus struct {
	Node string
	// Err, when not nil, says why this node takes no writes now (it
	// cannot renew its lease: another node could be given its
	// partitions).
	Err error
	// DeadNodes are the nodes whose lease expired and that still own
	// partitions, which take no writes until they come back with their
	// data directory or an operator hands them off (zombi cluster
	// handoff); Orphaned counts those partitions.
	DeadNodes []string
	Orphaned  int
	// Own counts this node's partitions, Elsewhere the live nodes'.
	Own, Elsewhere int
}

// codeWrongNode answers a write or read of a partition that another
// node owns: 421 Misdirected Request, with the owner in the body and in
// the X-Zombi-Owner header.
const codeWrongNode = "WRONG_NODE"

// codeCluster answers a write while this node cannot show that it still
// owns its partitions (its lease lapsed: the database is unreachable):
// 503 with Retry-After.
const codeCluster = "CLUSTER_UNAVAILABLE"

// placeTimeout bounds the database round trips of one request's
// placement (a first write to a table, a partition claimed).
const placeTimeout = 5 * time.Second

// place gives every record that names no partition one of this node's
// own, and checks that this node owns every partition the others name
// (claiming a free one). A record with an idempotency key goes to the
// partition its key hashes to, so that a retry meets the original; the
// others of one request go to one partition, taken in turn. It returns
// false when it has answered the request (and nothing is written).
func (s *Server) place(ctx *fasthttp.RequestCtx, table string, recs []engine.Record) bool {
	pl := s.cfg.Placement
	if pl == nil {
		return true
	}
	if st := pl.Status(); st.Err != nil {
		s.clusterUnavailable(ctx, st.Err)
		return false
	}
	var own []uint32
	turn := uint32(0)
	checked, haveChecked := uint32(0), false
	// The records per partition, for Reserve: one or two partitions
	// per request as a rule.
	var counts [4]partCount
	parts := counts[:0]
	for i := range recs {
		r := &recs[i]
		if r.Partition == wire.Unplaced {
			if own == nil {
				c, cancel := context.WithTimeout(ctx, placeTimeout)
				var err error
				own, err = pl.Own(c, table)
				cancel()
				if err != nil || len(own) == 0 {
					s.clusterUnavailable(ctx, err)
					return false
				}
				turn = uint32(s.turn.Add(1))
			}
			if len(r.Key) > 0 {
				r.Partition = own[keyHash(r.Key)%uint32(len(own))]
			} else {
				r.Partition = own[turn%uint32(len(own))]
			}
			parts = countPart(parts, r.Partition)
			continue
		}
		parts = countPart(parts, r.Partition)
		if haveChecked && r.Partition == checked {
			continue
		}
		if r.Partition >= s.maxPartitions {
			s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput,
				"Invalid partition "+strconv.FormatUint(uint64(r.Partition), 10)+": must be below "+strconv.FormatUint(uint64(s.maxPartitions), 10))
			return false
		}
		po, ok := pl.Lookup(table, r.Partition)
		if !ok || !po.Mine {
			c, cancel := context.WithTimeout(ctx, placeTimeout)
			var err error
			po, err = pl.Place(c, table, r.Partition)
			cancel()
			if err != nil {
				s.clusterUnavailable(ctx, err)
				return false
			}
		}
		if !po.Mine {
			s.wrongNode(ctx, table, po)
			return false
		}
		checked, haveChecked = r.Partition, true
	}
	for _, pc := range parts {
		c, cancel := context.WithTimeout(ctx, placeTimeout)
		err := pl.Reserve(c, table, pc.p, pc.n)
		cancel()
		if err != nil {
			s.clusterUnavailable(ctx, err)
			return false
		}
	}
	return true
}

type partCount struct {
	p uint32
	n int
}

// countPart counts one more record of partition p in parts.
func countPart(parts []partCount, p uint32) []partCount {
	for i := range parts {
		if parts[i].p == p {
			parts[i].n++
			return parts
		}
	}
	return append(parts, partCount{p, 1})
}

// keyHash is FNV-1a of an idempotency key.
func keyHash(k []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range k {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// wrongNode answers 421: partition po.Partition of table is another
// node's.
func (s *Server) wrongNode(ctx *fasthttp.RequestCtx, table string, po PartitionOwner) {
	msg := "Partition " + strconv.FormatUint(uint64(po.Partition), 10) + " of table " + table +
		" is written by zombi node " + strconv.Quote(po.Node) + " at " + po.Address
	if !po.Alive {
		msg += ", which is down: it takes writes again when it comes back, or once an operator hands its partitions off; write without a partition meanwhile"
	} else {
		msg += ": send it there, or write without a partition"
	}
	s.met.errors.Inc()
	ctx.Response.Header.Set("X-Zombi-Owner", po.Address)
	ctx.SetStatusCode(fasthttp.StatusMisdirectedRequest)
	ctx.SetContentType(contentTypeJSON)
	b := ctx.Response.Body()[:0]
	b = appendErrorBody(b, codeWrongNode, msg)
	b = b[:len(b)-1] // reopen the object
	b = append(b, `,"partition":`...)
	b = strconv.AppendUint(b, uint64(po.Partition), 10)
	b = append(b, `,"owner":`...)
	b = appendOwner(b, po)
	b = append(b, '}')
	ctx.SetBody(b)
}

func appendOwner(b []byte, po PartitionOwner) []byte {
	b = append(b, `{"node":`...)
	b = appendJSONString(b, po.Node)
	b = append(b, `,"address":`...)
	b = appendJSONString(b, po.Address)
	b = append(b, `,"alive":`...)
	b = strconv.AppendBool(b, po.Alive)
	return append(b, '}')
}

// clusterUnavailable answers 503 with Retry-After: the cluster database
// cannot place the write now.
func (s *Server) clusterUnavailable(ctx *fasthttp.RequestCtx, err error) {
	msg := "Cannot place the write in the cluster now"
	if err != nil {
		msg += ": " + err.Error()
	}
	ctx.Response.Header.Set("Retry-After", retryAfterSecs)
	s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeCluster, msg)
}

// readElsewhere answers a read of one partition that another node owns
// (421), or, for a read of every partition, names the partitions of
// table that live on other nodes in X-Zombi-Partitions-Elsewhere
// ("p=address,…"): this node's answer holds only its own. It returns
// false when it has answered.
func (s *Server) readElsewhere(ctx *fasthttp.RequestCtx, table string, partition int64) bool {
	pl := s.cfg.Placement
	if pl == nil {
		return true
	}
	if partition != engine.AllPartitions {
		if po, ok := pl.Lookup(table, uint32(partition)); ok && !po.Mine {
			s.wrongNode(ctx, table, po)
			return false
		}
		return true
	}
	c, cancel := context.WithTimeout(ctx, placeTimeout)
	owners, err := pl.Owners(c, table)
	cancel()
	if err != nil {
		return true // the hot tier answers for this node's partitions anyway
	}
	var h []byte
	for _, po := range owners {
		if po.Mine {
			continue
		}
		if len(h) > 0 {
			h = append(h, ',')
		}
		h = strconv.AppendUint(h, uint64(po.Partition), 10)
		h = append(h, '=')
		h = append(h, po.Address...)
	}
	if len(h) > 0 {
		ctx.Response.Header.SetBytesV("X-Zombi-Partitions-Elsewhere", h)
	}
	return true
}
