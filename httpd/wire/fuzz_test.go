package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The oracle of the JSON decoders is encoding/json: the same bodies are
// well-formed (nesting past 300 aside), and an accepted event has the
// fields encoding/json finds in it.

func FuzzJSONEvent(f *testing.F) {
	for _, s := range []string{
		`{"payload":"hi"}`,
		`{"payload":"x","partition":3,"timestamp_ms":1700000000000,"idempotency_key":"k"}`,
		`{"payload":{"a":[1,2,{"b":null}]}}`, `{"payload": [ 1 , "a b" ] }`,
		`{"payload":42}`, `{"payload":null}`, `{"payload_base64":"AP8="}`, `{"payload_base64":"AP8"}`,
		`{"payload":"a","payload_base64":"YQ=="}`, `{"partition":-1,"payload":""}`,
		`{"payload":"\u00e9\ud83d\ude00\\\"\ud800","timestamp_ms":null,"idempotency_key":null}`,
		`{"p\u0061yload":"x","idempotency_key":"\n"}`, `{"payload":"a","payload":"b"}`,
		`[]`, `"x"`, ``, `{`, `{"payload":1e999}`, `{"payload":-0.5E-3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d Decoder
		rec, err := d.JSONEvent(body)
		checkSyntax(t, body, err)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		if p, ok := m["payload"]; ok {
			var want []byte
			var s string
			if string(p) != "null" && json.Unmarshal(p, &s) == nil {
				want = []byte(s)
			} else {
				var buf bytes.Buffer
				if err := json.Compact(&buf, p); err != nil {
					t.Fatal(err)
				}
				want = buf.Bytes()
			}
			if !bytes.Equal(rec.Payload, want) {
				t.Fatalf("%q: payload %q, want %q", body, rec.Payload, want)
			}
		}
		var key *string
		if k, ok := m["idempotency_key"]; ok {
			if err := json.Unmarshal(k, &key); err != nil {
				t.Fatalf("%q: accepted key %s", body, k)
			}
		}
		if key != nil && string(rec.Key) != *key || key == nil && rec.Key != nil {
			t.Fatalf("%q: key %q", body, rec.Key)
		}
		var part, ts int64
		if v, ok := m["partition"]; ok && json.Unmarshal(v, &part) != nil && string(v) != "null" {
			t.Fatalf("%q: accepted partition %s", body, v)
		}
		if v, ok := m["timestamp_ms"]; ok && json.Unmarshal(v, &ts) != nil && string(v) != "null" {
			t.Fatalf("%q: accepted timestamp %s", body, v)
		}
		if int64(rec.Partition) != part || rec.TimestampMs != ts {
			t.Fatalf("%q: partition %d ts %d, want %d %d", body, rec.Partition, rec.TimestampMs, part, ts)
		}
	})
}

func FuzzJSONBulk(f *testing.F) {
	for _, s := range []string{
		`{"records":[]}`,
		`{"records":[{"payload":"a"},{"payload":{"x": 1},"partition":2},{"payload_base64":"AAEC","idempotency_key":"k"}]}`,
		`{"records":[{"payload":"a"},{}]}`, `{"records":{}}`, `{}`, `{"records":[1]}`, `{"x":[{"y":"z"}],"records":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d := Decoder{MaxRecords: 1000}
		recs, err := d.JSONBulk(body)
		checkSyntax(t, body, err)
		if err != nil {
			return
		}
		// Decoding again with the same decoder gives the same records:
		// scratch references were resolved against the final buffer.
		want := make([][]byte, len(recs))
		for i, r := range recs {
			want[i] = bytes.Clone(r.Payload)
		}
		recs2, err := d.JSONBulk(body)
		if err != nil || len(recs2) != len(want) {
			t.Fatalf("second decode: %v", err)
		}
		for i := range recs2 {
			if !bytes.Equal(recs2[i].Payload, want[i]) {
				t.Fatalf("record %d: %q then %q", i, want[i], recs2[i].Payload)
			}
		}
	})
}

// checkSyntax fails unless the decoder's verdict on well-formedness is
// encoding/json's.
func checkSyntax(t *testing.T, body []byte, err error) {
	t.Helper()
	if err != nil {
		we, ok := err.(*Error)
		if !ok {
			t.Fatalf("error of type %T: %v", err, err)
		}
		if we.syntax {
			if json.Valid(body) && utf8.Valid(body) && !strings.Contains(we.Msg, "nesting depth exceeds") {
				t.Fatalf("syntax error %q on valid JSON %q", we.Msg, body)
			}
			return
		}
	}
	if !json.Valid(body) {
		t.Fatalf("accepted malformed JSON %q (error: %v)", body, err)
	}
	if err == nil && !utf8.Valid(body) {
		t.Fatalf("accepted a body that is not UTF-8: %q", body)
	}
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
		var d1, d2 Decoder
		rec, err1 := d1.JSONEvent(ev)
		bulk := append(append([]byte(`{"records":[`), ev...), `]}`...)
		recs, err2 := d2.JSONBulk(bulk)
		if err1 != nil {
			// A body that is not one JSON value can become valid inside an
			// array ("1],[2"): only compare when the event itself parses.
			if err2 == nil && len(recs) == 1 && ValidJSON(ev) == nil {
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

func FuzzProto(f *testing.F) {
	f.Add(pbEvent([]byte("one"), 100, "k"), false)
	f.Add(pbEvent(nil, 0, ""), false)
	f.Add(pbBulkRecord([]byte("a"), 7, 9, "x"), true)
	f.Add([]byte{0x0a, 0x05, 0x01}, true)
	f.Add([]byte{0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, body []byte, bulk bool) {
		if bulk {
			var d Decoder
			recs, err := d.ProtoBulk(body)
			if err == nil {
				for _, r := range recs {
					_ = bytes.Clone(r.Payload)
				}
			}
			return
		}
		rec, err := ProtoEvent(body, 1)
		if err == nil && rec.Partition != 1 {
			t.Fatalf("partition %d", rec.Partition)
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
		ev := pbEvent(payload, ts, key)
		// The same as a bulk record: field numbers differ.
		var bulk []byte
		bulk = protowire.AppendTag(bulk, bulkRecords, protowire.BytesType)
		bulk = protowire.AppendBytes(bulk, pbBulkRecord(payload, partition, ts, key))

		single, err1 := ProtoEvent(ev, partition)
		var d Decoder
		recs, err2 := d.ProtoBulk(bulk)
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
		_, _ = ProtoEvent(append(ev, extra...), partition)
		_, _ = d.ProtoBulk(append(bulk, extra...))
	})
}

func pbEvent(payload []byte, ts int64, key string) []byte {
	var b []byte
	b = protowire.AppendTag(b, eventPayload, protowire.BytesType)
	b = protowire.AppendBytes(b, payload)
	if ts != 0 {
		b = protowire.AppendTag(b, eventTimestampMs, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ts))
	}
	if key != "" {
		b = protowire.AppendTag(b, eventIdemKey, protowire.BytesType)
		b = protowire.AppendString(b, key)
	}
	return b
}

func pbBulkRecord(payload []byte, partition uint32, ts int64, key string) []byte {
	var b []byte
	b = protowire.AppendTag(b, bulkRecPayload, protowire.BytesType)
	b = protowire.AppendBytes(b, payload)
	b = protowire.AppendTag(b, bulkRecPartition, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(partition))
	b = protowire.AppendTag(b, bulkRecTimestampMs, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(ts))
	if key != "" {
		b = protowire.AppendTag(b, bulkRecIdemKey, protowire.BytesType)
		b = protowire.AppendString(b, key)
	}
	return b
}
