package httpd

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// latencyBucketsUs are the original's histogram buckets, in microseconds.
var latencyBucketsUs = []float64{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000}

// serverMetrics are the metrics of one server, under the Rust Zombi's
// names so existing dashboards keep working.
type serverMetrics struct {
	set *metrics.Set

	writes          *metrics.Counter // events written
	writeRequests   *metrics.Counter // write requests that succeeded
	writeBytes      *metrics.Counter // payload bytes written
	writeLatencySum atomic.Uint64    // ns
	reads           *metrics.Counter
	readRecords     *metrics.Counter
	readLatencySum  atomic.Uint64 // ns
	errors          *metrics.Counter
	rejections      *metrics.Counter
	writeLatency    *metrics.PrometheusHistogram
	readLatency     *metrics.PrometheusHistogram
	fsyncDuration   *metrics.PrometheusHistogram // fed by ObserveFsync

	topicsMu    sync.RWMutex
	writesTopic map[string]*metrics.Counter
	readsTopic  map[string]*metrics.Counter
}

// maxTopicSeries bounds the per-topic series; tables beyond it are only
// counted in the totals.
const maxTopicSeries = 1000

func newServerMetrics(s *Server) *serverMetrics {
	metrics.ExposeMetadata(true)
	set := metrics.NewSet()
	m := &serverMetrics{
		set:           set,
		writes:        set.NewCounter("zombi_writes_total"),
		writeRequests: set.NewCounter("zombi_write_requests_total"),
		writeBytes:    set.NewCounter("zombi_writes_bytes_total"),
		reads:         set.NewCounter("zombi_reads_total"),
		readRecords:   set.NewCounter("zombi_reads_records_total"),
		errors:        set.NewCounter("zombi_errors_total"),
		rejections:    set.NewCounter("zombi_backpressure_rejections_total"),
		writeLatency:  set.NewPrometheusHistogramExt("zombi_write_latency_us", latencyBucketsUs),
		readLatency:   set.NewPrometheusHistogramExt("zombi_read_latency_us", latencyBucketsUs),
		fsyncDuration: set.NewPrometheusHistogramExt("zombi_fsync_duration_seconds", fsyncBucketsSecs),
		writesTopic:   make(map[string]*metrics.Counter),
		readsTopic:    make(map[string]*metrics.Counter),
	}
	set.NewGauge("zombi_uptime_secs", func() float64 { return time.Since(s.start).Seconds() })
	set.NewGauge("zombi_inflight_bytes", func() float64 { return float64(s.adm.bytes.Load()) })
	set.NewGauge("zombi_inflight_writes", func() float64 { return float64(s.adm.writes.Load()) })
	set.NewGauge("zombi_inflight_writes_available", func() float64 {
		return float64(s.adm.maxWrites - s.adm.writes.Load())
	})
	set.NewGauge("zombi_writes_avg_latency_us", func() float64 {
		if n := m.writeRequests.Get(); n > 0 {
			return float64(m.writeLatencySum.Load()) / 1e3 / float64(n)
		}
		return 0
	})
	set.NewGauge("zombi_reads_avg_latency_us", func() float64 {
		if n := m.reads.Get(); n > 0 {
			return float64(m.readLatencySum.Load()) / 1e3 / float64(n)
		}
		return 0
	})
	if pl := s.cfg.Placement; pl != nil {
		// A cluster node's standing: its lease, and the partitions of
		// dead nodes that take no writes (ClusterStatus).
		set.NewGauge("zombi_cluster_lease_ok", func() float64 {
			if pl.Status().Err != nil {
				return 0
			}
			return 1
		})
		set.NewGauge(`zombi_cluster_partitions{state="own"}`, func() float64 { return float64(pl.Status().Own) })
		set.NewGauge(`zombi_cluster_partitions{state="elsewhere"}`, func() float64 { return float64(pl.Status().Elsewhere) })
		set.NewGauge(`zombi_cluster_partitions{state="orphaned"}`, func() float64 { return float64(pl.Status().Orphaned) })
		set.NewGauge("zombi_cluster_dead_nodes", func() float64 { return float64(len(pl.Status().DeadNodes)) })
	}
	set.NewGauge("zombi_writes_rate_per_sec", func() float64 {
		return float64(m.writes.Get()) / max(time.Since(s.start).Seconds(), 1e-9)
	})
	set.NewGauge("zombi_reads_rate_per_sec", func() float64 {
		return float64(m.reads.Get()) / max(time.Since(s.start).Seconds(), 1e-9)
	})
	return m
}

// wrote records n events of the given payload bytes written by one
// request that started at start.
func (m *serverMetrics) wrote(table string, n, payloadBytes int, start time.Time) {
	ns := time.Since(start).Nanoseconds()
	us := float64(ns) / 1e3
	m.writes.Add(n)
	m.writeRequests.Inc()
	m.writeBytes.Add(payloadBytes)
	m.writeLatencySum.Add(uint64(ns))
	m.writeLatency.Update(us)
	if c := m.topicCounter(m.writesTopic, "zombi_writes_by_topic_total", table); c != nil {
		c.Inc()
	}
}

func (m *serverMetrics) read(table string, records int, start time.Time) {
	ns := time.Since(start).Nanoseconds()
	us := float64(ns) / 1e3
	m.reads.Inc()
	m.readRecords.Add(records)
	m.readLatencySum.Add(uint64(ns))
	m.readLatency.Update(us)
	if c := m.topicCounter(m.readsTopic, "zombi_reads_by_topic_total", table); c != nil {
		c.Inc()
	}
}

// topicCounter returns the per-topic counter of family for table, creating
// it below maxTopicSeries.
func (m *serverMetrics) topicCounter(mp map[string]*metrics.Counter, family, table string) *metrics.Counter {
	m.topicsMu.RLock()
	c := mp[table]
	m.topicsMu.RUnlock()
	if c != nil {
		return c
	}
	m.topicsMu.Lock()
	defer m.topicsMu.Unlock()
	if c = mp[table]; c == nil && len(mp) < maxTopicSeries {
		c = m.set.GetOrCreateCounter(fmt.Sprintf(`%s{topic=%q}`, family, table))
		mp[table] = c
	}
	return c
}

// fsyncBucketsSecs are the buckets of zombi_fsync_duration_seconds: a
// 4 KiB write + fdatasync takes 0.15-0.6 ms here, its p99 4-8 ms.
var fsyncBucketsSecs = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}

// ObserveFsync records the duration of one fsync of the hot tier in
// zombi_fsync_duration_seconds. It is safe for concurrent use; the binary
// hands it to the engine's sync hook.
func (s *Server) ObserveFsync(d time.Duration) { s.met.fsyncDuration.Update(d.Seconds()) }

// metrics serves GET /metrics in the Prometheus text format: the counters
// and histograms above, gauges read from the engine at scrape time, the
// cold tier's series, then the Go runtime and process series (go_*,
// process_*).
func (s *Server) metrics(ctx *fasthttp.RequestCtx) {
	var buf bytes.Buffer
	s.met.set.WritePrometheus(&buf)
	s.writeHotMetrics(&buf)
	if cm, ok := s.cfg.Cold.(coldMetrics); ok {
		cm.WritePrometheus(&buf)
	}
	metrics.WriteProcessMetrics(&buf)
	metrics.WriteFDMetrics(&buf) // process_open_fds, process_max_fds (LimitNOFILE)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.SetBody(buf.Bytes())
}

// writeHotMetrics writes the per-partition gauges of the hot tier.
func (s *Server) writeHotMetrics(w io.Writer) {
	type series struct {
		table string
		p     uint32
		v     uint64
	}
	var high, low, events, flushed, unflushed, segs, sizes, failed []series
	for _, t := range s.eng.Tables() {
		for _, p := range s.eng.Partitions(t) {
			high = append(high, series{t, p.Partition, p.High})
			low = append(low, series{t, p.Partition, p.Low})
			flushed = append(flushed, series{t, p.Partition, p.Flushed})
			n := uint64(0)
			if p.High >= p.Low {
				n = p.High - p.Low + 1
			}
			events = append(events, series{t, p.Partition, n})
			backlog := uint64(0)
			if p.High > p.Flushed {
				backlog = p.High - p.Flushed
			}
			unflushed = append(unflushed, series{t, p.Partition, backlog})
			segs = append(segs, series{t, p.Partition, uint64(p.Segments)})
			sizes = append(sizes, series{t, p.Partition, uint64(max(p.Bytes, 0))})
			f := uint64(0)
			if p.Failed != nil {
				f = 1
			}
			failed = append(failed, series{t, p.Partition, f})
		}
	}
	family := func(name, help string, ss []series) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, x := range ss {
			fmt.Fprintf(w, "%s{topic=%q,partition=\"%d\"} %d\n", name, x.table, x.p, x.v)
		}
	}
	family("zombi_high_watermark", "Latest offset assigned (high watermark) per partition", high)
	family("zombi_low_watermark", "First offset held in the hot tier per partition", low)
	family("zombi_flush_watermark", "Last offset committed to the cold tier per partition", flushed)
	family("zombi_hot_storage_events", "Events currently in hot storage per partition", events)
	family("zombi_unflushed_events", "Events not yet committed to the cold tier per partition (high - flush watermark)", unflushed)
	family("zombi_hot_partition_segments", "Segment files in the hot tier per partition", segs)
	family("zombi_hot_partition_bytes", "Bytes of segment data in the hot tier per partition", sizes)
	family("zombi_partition_failed", "1 when the partition log failed (fsync or write error) and takes no writes until restart", failed)
	st := s.eng.Stats()
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("zombi_hot_tables", "Tables in the hot tier", int64(st.Tables))
	gauge("zombi_hot_partitions", "Partition logs in the hot tier", int64(st.Partitions))
	gauge("zombi_hot_segments", "Segment files in the hot tier", int64(st.Segments))
	gauge("zombi_hot_open_segments", "Sealed segments mapped for reads", int64(st.OpenSegments))
	gauge("zombi_hot_quarantined_segments", "Segments set aside as corrupt since the start (see zombi inspect verify)", st.Quarantined)
	fmt.Fprintf(w, "# HELP zombi_hot_segments_recycled_total Segments written over the file of a flushed segment since the start, instead of a new file\n# TYPE zombi_hot_segments_recycled_total counter\nzombi_hot_segments_recycled_total %d\n", st.Recycled)
	fmt.Fprintf(w, "# HELP zombi_hot_storage_bytes Bytes of segment data in the hot tier\n# TYPE zombi_hot_storage_bytes gauge\nzombi_hot_storage_bytes %d\n", st.HotBytes)
	fmt.Fprintf(w, "# HELP zombi_hot_failed_logs Partition logs that failed and take no writes until restart\n# TYPE zombi_hot_failed_logs gauge\nzombi_hot_failed_logs %d\n", st.FailedLogs)
}
