package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestFreshPayloadsDiffer(t *testing.T) {
	g := newPayloadGen(3, 82, false, true, "")
	a := string(g.next(0))
	b := string(g.next(1))
	if a == b || len(a) != 82 || len(b) != 82 {
		t.Fatalf("fresh payloads repeat or have the wrong size: %q %q", a, b)
	}
	u := newPayloadGen(3, 82, true, true, "")
	if p := string(u.next(42)); p[:6] != "w3-42-" || len(p) != 82 {
		t.Fatalf("unique fresh payload %q", p)
	}
	if id, ok := PayloadID(u.next(42)); !ok || id != "w3-42" {
		t.Fatalf("PayloadID of a consistency payload: %q %v", id, ok)
	}
}

// Tagged payloads are JSON objects of exactly the configured size whose
// "id" PayloadID reads back, at the smallest size allowed and with the
// longest ids a run can make.
func TestTaggedPayloads(t *testing.T) {
	for _, c := range []struct {
		size   int
		fresh  bool
		worker int
		seq    uint64
		tag    string
	}{
		{82, false, 0, 0, "0a1b2c3d"},
		{82, true, 63, 12345, "0a1b2c3d"},
		{minTaggedSize, true, 10_000, 1<<64 - 1, strings.Repeat("Z", maxTagLen)},
		{20 << 10, false, 7, 99, "ff"},
	} {
		g := newPayloadGen(c.worker, c.size, false, c.fresh, c.tag)
		p := g.next(c.seq)
		var v struct{ ID, Pad string }
		if err := json.Unmarshal(p, &v); err != nil || len(p) != c.size {
			t.Fatalf("payload %q (%d B, want %d): %v", p, len(p), c.size, err)
		}
		want := payloadID(c.tag, c.worker, c.seq)
		if id, ok := PayloadID(p); !ok || id != want || v.ID != want {
			t.Fatalf("PayloadID(%q) = %q %v, want %q", p, id, ok, want)
		}
	}
	// Whitespace or another key order (a re-encoded payload) still reads.
	if id, ok := PayloadID([]byte(`{ "pad": "x", "id": "ab-w1-2" }`)); !ok || id != "ab-w1-2" {
		t.Fatalf("re-encoded payload: %q %v", id, ok)
	}
	for _, p := range []string{"", "w", "w1-", "w1-2", "w-2-", "wx-2-", "abc", `{"id":""}`, `{"id":1}`, `{"id":"x"`} {
		if id, ok := PayloadID([]byte(p)); ok {
			t.Errorf("PayloadID(%q) = %q, want none", p, id)
		}
	}
}

func TestRunTagValidated(t *testing.T) {
	for _, c := range []Config{
		{RunTag: "has-dash"},
		{RunTag: strings.Repeat("a", maxTagLen+1)},
		{RunTag: "ok", Size: minTaggedSize - 1},
	} {
		c.EnsureDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	c := Config{Acks: &strings.Builder{}}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil || len(c.RunTag) != 8 {
		t.Fatalf("default run tag %q: %v", c.RunTag, err)
	}
}

// A write that names no partition (Config.Unplaced) carries none, in
// either encoding; one that names a partition carries it.
func TestBodiesWithoutPartition(t *testing.T) {
	p := func(int) []byte { return []byte("x") }
	if b := appendBulkBody(nil, EncodingJSON, 2, noPartition, false, p); bytes.Contains(b, []byte("partition")) {
		t.Fatalf("bulk without a partition: %s", b)
	}
	if b := appendBulkBody(nil, EncodingJSON, 2, 3, false, p); bytes.Count(b, []byte(`"partition":3`)) != 2 {
		t.Fatalf("bulk to partition 3: %s", b)
	}
	if b := appendSingleBody(nil, EncodingJSON, []byte("x"), false, noPartition); bytes.Contains(b, []byte("partition")) {
		t.Fatalf("single without a partition: %s", b)
	}
	if a, b := appendBulkBody(nil, EncodingProtobuf, 2, noPartition, false, p), appendBulkBody(nil, EncodingProtobuf, 2, 0, false, p); !bytes.Equal(a, b) {
		t.Fatalf("protobuf bulk: no partition %x, partition 0 %x", a, b)
	}
}
