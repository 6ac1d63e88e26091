package httpd

import (
	"bytes"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zombihq/zombi/engine"
)

// tableNameRE is the table-name rule of DESIGN.md §2, the oracle of both
// hand-written validators.
var tableNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`)

func FuzzTableName(f *testing.F) {
	for _, s := range []string{"t", "events", "A-b_9", "..", ".", "a/b", "a\x00b", "1a", "_a", "-a", "t\u00e9st",
		string(bytes.Repeat([]byte("a"), 128)), string(bytes.Repeat([]byte("a"), 129)), "", "a\n", "a\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := tableNameRE.MatchString(name)
		if got := engine.ValidTableName(name); got != want {
			t.Fatalf("engine.ValidTableName(%q) = %v, the rule says %v", name, got, want)
		}
		if got := validTable([]byte(name)); got != want {
			t.Fatalf("validTable(%q) = %v, the rule says %v", name, got, want)
		}
	})
}

// A body that decodes as one event decodes to the same record as the only
// element of a bulk request, and a bulk request fails exactly when one
// of its records does.
func FuzzJSONSingleVsBulk(f *testing.F) {
	for _, s := range []string{
		`{"payload":"hi"}`, `{"payload":{"a":[1,2]},"partition":3,"timestamp_ms":5,"idempotency_key":"k"}`,
		`{"payload_base64":"AP8="}`, `{"payload":null}`, `{"payload":1e3}`, `{"partition":1}`, `[]`, `1`,
		`{"payload":"\u00e9\ud83d\ude00"}`, `{"payload":"a","payload":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		var d1, d2 decoder
		rec, err1 := d1.decodeJSONEvent(ev)
		bulk := append(append([]byte(`{"records":[`), ev...), `]}`...)
		recs, err2 := d2.decodeJSONBulk(bulk)
		if err1 != nil {
			// A body that is not one JSON value can become valid inside an
			// array ("1],[2"): only compare when the event itself parses.
			if err2 == nil && len(recs) == 1 && parses(&d1, ev) {
				t.Fatalf("event refused (%v) but accepted in a bulk: %q", err1, ev)
			}
			return
		}
		if err2 != nil {
			t.Fatalf("event accepted but refused in a bulk (%v): %q", err2, ev)
		}
		if len(recs) != 1 {
			t.Fatalf("bulk of one event gave %d records", len(recs))
		}
		r := recs[0]
		if !bytes.Equal(r.Payload, rec.Payload) || !bytes.Equal(r.Key, rec.Key) || r.Partition != rec.Partition || r.TimestampMs != rec.TimestampMs {
			t.Fatalf("single %+v, bulk %+v", rec, r)
		}
	})
}

// An Event and a BulkWriteRecord carrying the same fields decode to the
// same record (the partition comes from X-Partition for the single one).
func FuzzProtoSingleVsBulk(f *testing.F) {
	f.Add([]byte("one"), int64(100), "k", uint32(0), []byte(nil))
	f.Add([]byte{}, int64(0), "", uint32(7), []byte{0x28, 0x01})
	f.Add([]byte{0, 0xff}, int64(-1), "\xff", uint32(1<<31), []byte{0x3a, 0x00})
	f.Fuzz(func(t *testing.T, payload []byte, ts int64, key string, partition uint32, extra []byte) {
		// The single event, with extra bytes appended as unknown fields.
		var ev []byte
		ev = protowire.AppendTag(ev, eventPayload, protowire.BytesType)
		ev = protowire.AppendBytes(ev, payload)
		ev = protowire.AppendTag(ev, eventTimestampMs, protowire.VarintType)
		ev = protowire.AppendVarint(ev, uint64(ts))
		if key != "" {
			ev = protowire.AppendTag(ev, eventIdemKey, protowire.BytesType)
			ev = protowire.AppendString(ev, key)
		}
		// The same as a bulk record: field numbers differ.
		var br []byte
		br = protowire.AppendTag(br, bulkRecPayload, protowire.BytesType)
		br = protowire.AppendBytes(br, payload)
		br = protowire.AppendTag(br, bulkRecPartition, protowire.VarintType)
		br = protowire.AppendVarint(br, uint64(partition))
		br = protowire.AppendTag(br, bulkRecTimestampMs, protowire.VarintType)
		br = protowire.AppendVarint(br, uint64(ts))
		if key != "" {
			br = protowire.AppendTag(br, bulkRecIdemKey, protowire.BytesType)
			br = protowire.AppendString(br, key)
		}
		var bulk []byte
		bulk = protowire.AppendTag(bulk, bulkRecords, protowire.BytesType)
		bulk = protowire.AppendBytes(bulk, br)

		single, err1 := decodeProtoEvent(ev, partition)
		var d decoder
		recs, err2 := d.decodeProtoBulk(bulk)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("single: %v, bulk: %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		r := recs[0]
		if !bytes.Equal(r.Payload, single.Payload) || !bytes.Equal(r.Key, single.Key) || r.Partition != single.Partition || r.TimestampMs != single.TimestampMs {
			t.Fatalf("single %+v, bulk %+v", single, r)
		}
		if !bytes.Equal(single.Payload, payload) || single.TimestampMs != ts || string(single.Key) != key {
			t.Fatalf("round trip: %+v", single)
		}
		// Trailing bytes (unknown, repeated or malformed fields) never
		// panic; the field meanings differ, so the results may too.
		decodeProtoEvent(append(ev, extra...), partition)
		d.decodeProtoBulk(append(bulk, extra...))
	})
}

// The authenticator never panics, and accepts a header only when it holds
// exactly one of the known tokens.
func FuzzBearerToken(f *testing.F) {
	f.Add("Bearer " + tokRead)
	f.Add("bearer  " + tokAdmin + " ")
	f.Add("Basic " + tokRead)
	f.Add("Bearer")
	f.Add("Bearer " + tokRead + "x")
	a, err := newAuthenticator(testTokens)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz string) {
		role, ok := a.role([]byte(authz))
		if !ok {
			if role != RoleNone {
				t.Fatalf("unknown token with role %v", role)
			}
			return
		}
		tok, _ := bearerToken([]byte(authz))
		for _, k := range testTokens {
			if k.Secret == string(tok) {
				if k.Role != role {
					t.Fatalf("token %q: role %v, want %v", tok, role, k.Role)
				}
				return
			}
		}
		t.Fatalf("%q accepted as %v", authz, role)
	})
}

func parses(d *decoder, b []byte) bool {
	_, err := d.parser.ParseBytes(b)
	return err == nil
}
