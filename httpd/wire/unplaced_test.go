package wire

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// With MarkUnplaced, a record that names no partition gets Unplaced and
// one that names a partition keeps it; without it, the default is 0.
// (An explicit 4294967295, over every partition the engine takes, is
// Unplaced too.)
func TestMarkUnplaced(t *testing.T) {
	bulkRec := func(p uint64) []byte {
		var r []byte
		r = protowire.AppendTag(r, bulkRecPayload, protowire.BytesType)
		r = protowire.AppendBytes(r, []byte("x"))
		if p != ^uint64(0) { // all ones: no partition field at all
			r = protowire.AppendTag(r, bulkRecPartition, protowire.VarintType)
			r = protowire.AppendVarint(r, p)
		}
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		return protowire.AppendBytes(b, r)
	}
	proto := append(append(bulkRec(^uint64(0)), bulkRec(0)...), bulkRec(3)...)
	for _, mark := range []bool{false, true} {
		none := uint32(0)
		if mark {
			none = Unplaced
		}
		d := Decoder{MarkUnplaced: mark}
		r, err := d.JSONEvent([]byte(`{"payload":"a"}`))
		if err != nil || r.Partition != none {
			t.Fatalf("mark %v: single without partition: %d, %v", mark, r.Partition, err)
		}
		r, err = d.JSONEvent([]byte(`{"payload":"a","partition":0}`))
		if err != nil || r.Partition != 0 {
			t.Fatalf("mark %v: single with partition 0: %d, %v", mark, r.Partition, err)
		}
		recs, err := d.JSONBulk([]byte(`{"records":[{"payload":"a"},{"payload":"b","partition":7},{"payload":"c","partition":0}]}`))
		if err != nil || len(recs) != 3 || recs[0].Partition != none || recs[1].Partition != 7 || recs[2].Partition != 0 {
			t.Fatalf("mark %v: bulk %+v, %v", mark, recs, err)
		}
		recs, err = d.ProtoBulk(proto)
		if err != nil || len(recs) != 3 || recs[0].Partition != none || recs[1].Partition != none || recs[2].Partition != 3 {
			t.Fatalf("mark %v: proto bulk %+v, %v", mark, recs, err)
		}
	}
}
