package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/apache/iceberg-go/table"
)

// Result is what a soak run counted. Lost, Duplicates, ReusedOffsets,
// Phantoms and OrderViolations must be 0, and Violations empty.
type Result struct {
	Config  Config
	Seed    uint64
	WorkDir string // kept when the run failed: the data dir and server.log

	Cycles                int
	Kills                 int // SIGKILLs sent
	KillsInStartup        int // … of them while the server was starting (recovery, catalog)
	KillsDuringFlush      int // … of them while a POST /tables/{t}/flush was in flight
	KillsDuringCompaction int // … of them while a POST /tables/{t}/compact was in flight
	KillsDuringStop       int // … of them during a graceful stop (SIGTERM first)
	StoppedBeforeKill     int // SIGTERMs after which the server was gone before the SIGKILL

	Events               int64 // events generated (each sent at least once)
	Requests             int64 // requests sent, retries included
	AckedRequests        int64
	AckedEvents          int64
	Non202               int64 // answers other than 202 (503 only; others are violations)
	Retried              int64 // keyed requests sent again after a kill (same keys)
	RetriedEvents        int64 // … their events
	RetriedOriginal      int64 // retried events answered with their original offset (they had landed)
	Twins                int64 // keyed requests sent twice at once
	TwinsBothAcked       int64 // … both copies acked (with the same offsets)
	UnackedUnkeyed       int64 // requests without keys that got no answer (not retried)
	UnackedUnkeyedEvents int64 // … their events
	UnackedLanded        int64 // … of which are in Iceberg (once each)

	Flushes, Compactions int64 // POST /tables/{t}/flush and /compact answered 200
	CompactionsBusy      int64 // POST /tables/{t}/compact answered 409 (one was running)
	ColdErrors           int64 // … other answers
	LastColdError        string

	HotChecked    int64 // acked events read back from the hot tier after a restart
	HotFlushed    int64 // acked events already flushed (and deleted) at that check
	IcebergRows   int64
	IcebergTables int

	Lost            int64 // acked events missing (hot tier, watermark or Iceberg)
	Duplicates      int64 // a sequence, payload or idempotency key twice in Iceberg
	ReusedOffsets   int64 // an offset acked, read or committed with two payloads
	Phantoms        int64 // rows in Iceberg that were never sent
	OrderViolations int64 // fresh offsets not increasing

	LogErrors, LogWarnings, Quarantined int64          // lines of the server log
	LogMessages                         map[string]int // errors and warnings by message

	Duration                                  time.Duration
	TimeStart, TimeCheck, TimeLoad, TimeFinal time.Duration // start-ups, hot checks, load and kills, the final checks
	Violations                                []string
	violations                                int
}

// OK reports whether the run kept every guarantee.
func (r *Result) OK() bool {
	return r.violations == 0 && r.Lost == 0 && r.Duplicates == 0 && r.ReusedOffsets == 0 &&
		r.Phantoms == 0 && r.OrderViolations == 0
}

const maxViolations = 30

// violationLocked records a violation (harness.mu held).
func (r *Result) violationLocked(format string, args ...any) {
	r.violations++
	switch {
	case len(r.Violations) < maxViolations:
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	case len(r.Violations) == maxViolations:
		r.Violations = append(r.Violations, "… (more not listed)")
	}
}

// Print writes the counts, and the violations if any.
func (r *Result) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "soak: %d cycles of kill -9 in %v (fsync=%s, %d writers, %d tables × %d partitions, flush every 1 s, seed %d)\n",
		r.Cycles, r.Duration.Round(time.Second), c.Fsync, c.Writers, c.Tables, c.Partitions, r.Seed)
	fmt.Fprintf(w, "  kills:             %d (in flight: %d start-ups, %d POST /flush, %d POST /compact, %d SIGTERM stops; %d stops done before the kill)\n",
		r.Kills, r.KillsInStartup, r.KillsDuringFlush, r.KillsDuringCompaction, r.KillsDuringStop, r.StoppedBeforeKill)
	fmt.Fprintf(w, "  requests:          %d sent, %d acked (%d answered 503); asked for %d flushes and %d compactions (+%d busy, %d failed)\n",
		r.Requests, r.AckedRequests, r.Non202, r.Flushes, r.Compactions, r.CompactionsBusy, r.ColdErrors)
	fmt.Fprintf(w, "  acked events:      %d\n", r.AckedEvents)
	fmt.Fprintf(w, "  retried requests:  %d (%d events, same idempotency keys; %d answered with their original offset)\n",
		r.Retried, r.RetriedEvents, r.RetriedOriginal)
	fmt.Fprintf(w, "  sent twice at once: %d keyed requests (both copies acked with the same offsets: %d)\n", r.Twins, r.TwinsBothAcked)
	fmt.Fprintf(w, "  unacked, no key:   %d requests (%d events, not retried; %d of them landed, once each)\n",
		r.UnackedUnkeyed, r.UnackedUnkeyedEvents, r.UnackedLanded)
	fmt.Fprintf(w, "  checked:           %d acked events read back from the hot tier after restarts (%d already flushed); %d rows scanned in Iceberg (%d tables, /v1)\n",
		r.HotChecked, r.HotFlushed, r.IcebergRows, r.IcebergTables)
	fmt.Fprintf(w, "  time:              %v starting the server, %v under load, %v checking the hot tier, %v for the final flush and checks\n",
		r.TimeStart.Round(time.Millisecond), r.TimeLoad.Round(time.Millisecond), r.TimeCheck.Round(time.Millisecond), r.TimeFinal.Round(time.Millisecond))
	fmt.Fprintf(w, "  server log:        %d errors, %d warnings, %d quarantine lines\n", r.LogErrors, r.LogWarnings, r.Quarantined)
	msgs := slices.Sorted(maps.Keys(r.LogMessages))
	for _, m := range msgs {
		fmt.Fprintf(w, "    %4d × %s\n", r.LogMessages[m], m)
	}
	fmt.Fprintf(w, "  lost = %d, duplicates = %d, reused offsets = %d, phantoms = %d, order violations = %d\n",
		r.Lost, r.Duplicates, r.ReusedOffsets, r.Phantoms, r.OrderViolations)
	if r.ColdErrors > 0 {
		fmt.Fprintf(w, "  last failed flush or compaction: %s\n", r.LastColdError)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  VIOLATION: %s\n", v)
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "  data dir and server log kept in %s\n", r.WorkDir)
	}
	if r.OK() {
		fmt.Fprintln(w, "PASS")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}

// logMsg counts an error or warning line of the server log by its level
// and message.
func (r *Result) logMsg(line string) {
	var m struct{ Level, Msg string }
	if json.Unmarshal([]byte(line), &m) != nil {
		return
	}
	if r.LogMessages == nil {
		r.LogMessages = map[string]int{}
	}
	r.LogMessages[m.Level+" "+m.Msg]++
}

// finalFlush flushes a table and checks that the flushed watermark then
// equals the high watermark, which covers every acked offset.
func (h *harness) finalFlush(ctx context.Context, base, t string) error {
	st, body, err := h.postCold(base, t, "flush")
	if err != nil {
		return err
	}
	var fr struct{ Status string }
	if st != 200 || json.Unmarshal(body, &fr) != nil || fr.Status != "ok" {
		return fmt.Errorf("POST /tables/%s/flush: %d %.300s", t, st, body)
	}
	flushed, high, err := h.watermarks(ctx, base, t)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, hw := range high {
		if flushed[p] != hw {
			h.res.violationLocked("after the final flush %s/%d has flushed %d of %d", t, p, flushed[p], hw)
		}
	}
	for k, m := range h.led.maxAck {
		if k.table == t && high[k.part] < m {
			h.res.Lost++
			h.res.violationLocked("%s/%d: high watermark %d below the acked offset %d", t, k.part, high[k.part], m)
		}
	}
	return nil
}

// finalCompact compacts a table (waiting out a compaction already
// running), so that the scan also reads what compaction wrote.
func (h *harness) finalCompact(ctx context.Context, base, t string) error {
	for range 60 {
		st, body, err := h.postCold(base, t, "compact")
		switch {
		case err != nil:
			return err
		case st == 200:
			return nil
		case st != 409:
			return fmt.Errorf("POST /tables/%s/compact: %d %.300s", t, st, body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("POST /tables/%s/compact: still busy after 30 s", t)
}

// checkAllHot reads what is left in the hot tier after the final flush
// (with ZOMBI_HOT_RETENTION_SECS=0, usually nothing) and checks each
// record against the ledger.
func (h *harness) checkAllHot(ctx context.Context, base string) {
	for _, t := range h.tables {
		for p := range h.cfg.Partitions {
			k := tp{t, p}
			err := h.readHot(ctx, base, t, p, 1, 0, func(r hotRecord) {
				x := payloadHash([]byte(r.Payload))
				h.mu.Lock()
				defer h.mu.Unlock()
				ev := h.led.events[x]
				switch {
				case ev == nil || ev.tp != k:
					h.res.Phantoms++
					h.res.violationLocked("hot tier %s/%d offset %d: a payload never sent there (%.60q)", t, p, r.Sequence, r.Payload)
				case ev.hot:
					h.res.Duplicates++
					h.res.violationLocked("hot tier %s/%d offset %d: a payload already read at another offset", t, p, r.Sequence)
				case ev.acked && ev.off != r.Sequence:
					h.res.Duplicates++
					h.res.violationLocked("hot tier %s/%d: the event acked at offset %d is also at %d", t, p, ev.off, r.Sequence)
				}
				if ev != nil {
					ev.hot = true
				}
				if want, ok := h.led.byOff[tpo{k, r.Sequence}]; ok && want != x {
					h.res.ReusedOffsets++
					h.res.violationLocked("hot tier %s/%d offset %d: another payload than the one acked", t, p, r.Sequence)
				}
			})
			if err != nil {
				h.violation("final hot read of %s/%d: %v", t, p, err)
			}
		}
	}
}

// checkIceberg scans table t through the server's read-only Iceberg REST
// view with iceberg-go and checks every row against the ledger.
func (h *harness) checkIceberg(ctx context.Context, base, t string) error {
	rc, err := rest.NewCatalog(ctx, "zombi", base)
	if err != nil {
		return err
	}
	tbl, err := rc.LoadTable(ctx, []string{"zombi", t})
	if err != nil {
		return err
	}
	scan := tbl.Scan(table.WithSelectedFields("sequence", "partition", "payload", "idempotency_key", "timestamp_ms"))
	_, recs, err := scan.ToArrowRecords(ctx)
	if err != nil {
		return err
	}
	seen := map[tpo]bool{}
	keys := map[string]bool{}
	h.mu.Lock()
	h.res.IcebergTables++
	h.mu.Unlock()
	for rec, err := range recs {
		if err != nil {
			return err
		}
		col := func(name string) arrow.Array {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) == 0 {
				return nil
			}
			return rec.Column(idx[0])
		}
		seq, ok1 := col("sequence").(*array.Int64)
		part, ok2 := col("partition").(*array.Int32)
		pay, ok3 := col("payload").(array.BinaryLike)
		key := col("idempotency_key")
		ts, ok4 := col("timestamp_ms").(*array.Int64)
		if !ok1 || !ok2 || !ok3 || !ok4 || key == nil {
			rec.Release()
			return fmt.Errorf("unexpected schema %v", rec.Schema())
		}
		h.mu.Lock()
		for i := range int(rec.NumRows()) {
			k := tpo{tp{t, int(part.Value(i))}, uint64(seq.Value(i))}
			x := payloadHash(binaryValue(pay, i))
			kv := stringValue(key, i)
			h.icebergRowLocked(k, x, kv, ts.Value(i), seen, keys)
		}
		h.mu.Unlock()
		rec.Release()
	}
	return nil
}

func binaryValue(a array.BinaryLike, i int) []byte {
	switch a := a.(type) {
	case *array.Binary:
		return a.Value(i)
	case *array.LargeBinary:
		return a.Value(i)
	case *array.String:
		return []byte(a.Value(i))
	case *array.LargeString:
		return []byte(a.Value(i))
	}
	return nil
}

func stringValue(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return ""
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	}
	return "?"
}

// icebergRowLocked checks one row (harness.mu held).
func (h *harness) icebergRowLocked(k tpo, x uint64, key string, ts int64, seen map[tpo]bool, keys map[string]bool) {
	r := &h.res
	r.IcebergRows++
	if seen[k] {
		r.Duplicates++
		r.violationLocked("Iceberg %s/%d: sequence %d twice", k.table, k.part, k.off)
	}
	seen[k] = true
	if key != "" {
		if keys[key] {
			r.Duplicates++
			r.violationLocked("Iceberg %s/%d: idempotency key %s twice (at sequence %d)", k.table, k.part, key, k.off)
		}
		keys[key] = true
	}
	if want, ok := h.led.byOff[k]; ok && want != x {
		r.ReusedOffsets++
		r.violationLocked("Iceberg %s/%d sequence %d: another payload than the one acked", k.table, k.part, k.off)
	}
	ev := h.led.events[x]
	switch {
	case ev == nil || ev.tp != k.tp:
		r.Phantoms++
		r.violationLocked("Iceberg %s/%d sequence %d: a payload never sent there", k.table, k.part, k.off)
		return
	case ev.key != key:
		r.violationLocked("Iceberg %s/%d sequence %d: idempotency key %q, sent with %q", k.table, k.part, k.off, key, ev.key)
	case ev.ts != 0 && ev.ts != ts:
		r.violationLocked("Iceberg %s/%d sequence %d: timestamp_ms %d, sent with %d", k.table, k.part, k.off, ts, ev.ts)
	}
	ev.iceberg++
	if ev.iceberg > 1 {
		r.Duplicates++
		r.violationLocked("Iceberg %s/%d: the payload of sequence %d is also at another sequence", k.table, k.part, k.off)
	}
	if ev.acked && ev.off != k.off {
		r.Duplicates++
		r.violationLocked("Iceberg %s/%d: the event acked at offset %d is (also) at sequence %d", k.table, k.part, ev.off, k.off)
	}
}

// finishChecks runs after the Iceberg scans: every acked event must have
// been found, and the unacked ones at most once.
func (h *harness) finishChecks() {
	h.mu.Lock()
	defer h.mu.Unlock()
	missing := 0
	for _, ev := range h.led.events {
		switch {
		case ev.acked && ev.iceberg == 0:
			h.res.Lost++
			if missing < 10 {
				h.res.violationLocked("acked event %s/%d offset %d is not in Iceberg", ev.table, ev.part, ev.off)
			}
			missing++
		case !ev.acked && ev.key != "":
			// A keyed request still unacked after the final retries: reported by final.
		case !ev.acked && ev.iceberg == 1:
			h.res.UnackedLanded++
		}
	}
}
