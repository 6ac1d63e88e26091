package bench

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protowire"
)

// flakyServer answers writes on 127.0.0.1 with 202, except every 3rd
// (503), 7th (connection closed unanswered), 11th (500) and 13th (no
// answer within the client's timeout), and remembers the payload ids of
// the requests it acknowledged and of those that failed.
type flakyServer struct {
	t       *testing.T
	srv     *httptest.Server
	timeout time.Duration // the client's
	n       atomic.Int64
	mu      sync.Mutex
	acked   []string
	failed  map[string]bool
}

func startFlaky(t *testing.T, timeout time.Duration) *flakyServer {
	f := &flakyServer{t: t, timeout: timeout, failed: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *flakyServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusOK) // GET /health
		return
	}
	body, _ := io.ReadAll(r.Body)
	ids, err := payloadIDs(body, r.Header.Get("Content-Type"), strings.HasSuffix(r.URL.Path, "/bulk"))
	if err != nil {
		f.t.Errorf("%s: %v", r.URL.Path, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	fail := func() {
		f.mu.Lock()
		for _, id := range ids {
			f.failed[id] = true
		}
		f.mu.Unlock()
	}
	switch n := f.n.Add(1); {
	case n%3 == 0:
		fail()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	case n%7 == 0, n%13 == 0:
		fail()
		if n%13 == 0 {
			time.Sleep(f.timeout + 100*time.Millisecond)
		}
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	case n%11 == 0:
		fail()
		w.WriteHeader(http.StatusInternalServerError)
	default:
		f.mu.Lock()
		f.acked = append(f.acked, ids...)
		f.mu.Unlock()
		offs := make([]string, len(ids))
		for i := range offs {
			offs[i] = fmt.Sprint(n*1000 + int64(i))
		}
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"offsets":[%s],"offset":%s}`, strings.Join(offs, ","), offs[0])
	}
}

// payloadIDs decodes a write body as the server would and returns the id
// of each payload.
func payloadIDs(body []byte, ctype string, bulk bool) ([]string, error) {
	var payloads [][]byte
	if ctype == protoContentType {
		if !bulk {
			body = protoField(body, pbEventPayload)
			payloads = append(payloads, body)
		}
		for bulk && len(body) > 0 {
			num, typ, n := protowire.ConsumeTag(body)
			if n < 0 || num != pbBulkRecords || typ != protowire.BytesType {
				return nil, fmt.Errorf("bad bulk record at %q", body)
			}
			rec, m := protowire.ConsumeBytes(body[n:])
			if m < 0 {
				return nil, fmt.Errorf("bad bulk record at %q", body)
			}
			payloads = append(payloads, protoField(rec, pbRecPayload))
			body = body[n+m:]
		}
	} else {
		v, err := fastjson.ParseBytes(body)
		if err != nil {
			return nil, err
		}
		evs := []*fastjson.Value{v}
		if bulk {
			evs = v.GetArray("records")
		}
		for _, ev := range evs {
			// A JSON value payload is stored as its compact text.
			payloads = append(payloads, ev.Get("payload").MarshalTo(nil))
		}
	}
	var ids []string
	for _, p := range payloads {
		id, ok := PayloadID(p)
		if !ok {
			return nil, fmt.Errorf("payload %q carries no id", p)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// protoField returns the bytes of field num in a protobuf message.
func protoField(msg []byte, num protowire.Number) []byte {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return nil
		}
		m := protowire.ConsumeFieldValue(n, typ, msg[l:])
		if m < 0 {
			return nil
		}
		if n == num && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(msg[l:])
			return v
		}
		msg = msg[l+m:]
	}
	return nil
}

// The acks file holds the id of every event of every request answered
// 202, once, and none of the requests that failed (503, 500, connection
// closed, timeout); the ids carry the run's tag.
func TestAcksFile(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, c := range []Config{
		{Scenario: ScenarioSingle, Conns: 3, Requests: 80},
		{Scenario: ScenarioBulk, Conns: 2, Batch: 5, Requests: 60, FreshPayloads: true},
		{Scenario: ScenarioBulk, Conns: 2, Batch: 4, Requests: 60, Encoding: EncodingProtobuf},
		{Scenario: ScenarioSingle, Conns: 2, Requests: 40, Encoding: EncodingProtobuf, Warmup: 50 * time.Millisecond},
	} {
		name := c.Scenario + "-" + cmp.Or(c.Encoding, EncodingJSON)
		f := startFlaky(t, timeout)
		var acks bytes.Buffer
		c.Target, c.Timeout, c.Duration, c.Acks = strings.TrimPrefix(f.srv.URL, "http://"), timeout, 20*time.Second, &acks
		rep, err := Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(acks.String(), "\n"), "\n")
		f.mu.Lock()
		want := slices.Clone(f.acked)
		failed := len(f.failed)
		for _, l := range lines {
			if f.failed[l] {
				t.Errorf("%s: failed event %s written as acked", name, l)
			}
		}
		f.mu.Unlock()
		slices.Sort(lines)
		slices.Sort(want)
		if !slices.Equal(lines, want) {
			t.Fatalf("%s: %d acks lines, want the %d ids the server acked\ngot  %v\nwant %v", name, len(lines), len(want), lines, want)
		}
		if len(slices.Compact(slices.Clone(lines))) != len(lines) {
			t.Fatalf("%s: an id acked twice", name)
		}
		if failed == 0 || len(lines) == 0 || rep.RunTag == "" || !strings.HasPrefix(lines[0], rep.RunTag+"-w") {
			t.Fatalf("%s: %d failed, %d acked, run tag %q, first id %q", name, failed, len(lines), rep.RunTag, lines[0])
		}
		if c.Warmup == 0 && rep.Events != int64(len(lines)) {
			t.Fatalf("%s: report counts %d acked events, acks file %d", name, rep.Events, len(lines))
		}
	}
}

// Against the real server, the tagged JSON payloads are stored as sent
// (the consistency check reads each back, of Size bytes, with its id),
// and the acks file lists every acked event.
func TestAcksAgainstServer(t *testing.T) {
	addr := startZombi(t, nil)
	for _, c := range []Config{
		{Encoding: EncodingJSON, Conns: 3, Batch: 4, Partitions: 2, Requests: 60, FreshPayloads: true},
		{Encoding: EncodingProtobuf, Conns: 2, Requests: 50},
	} {
		var acks bytes.Buffer
		c.Target, c.Scenario, c.Duration, c.Acks = addr, ScenarioConsistency, 10*time.Second, &acks
		rep, err := Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		want := int(c.Requests) * max(c.Batch, 1)
		if len(rep.Violations) > 0 || rep.Consistency.ReadBack != want || strings.Count(acks.String(), "\n") != want {
			t.Fatalf("%s: violations %v, read back %d, %d acks lines, want %d", c.Encoding, rep.Violations,
				rep.Consistency.ReadBack, strings.Count(acks.String(), "\n"), want)
		}
	}
}
