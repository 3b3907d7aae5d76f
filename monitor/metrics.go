// Package monitor serves a replicator's state to machines: Prometheus
// metrics per tenant (/metrics), a health check for probes and alerting
// (/healthz), and every tenant's status as JSON (/status). Everything is
// computed at request time from the replication engine's own status, so a
// tenant that is gone has no series left; nothing served holds a
// credential.
package monitor

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/s3conn"
)

// Source is what the monitor reads: the replication engine.
type Source interface {
	Status() []replication.TenantStatus
	Heartbeats() []replication.HeartbeatStatus
}

// The metric names, as the README documents them.
const (
	MetricTenantState          = "litefleet_tenant_state"
	MetricTenantLocalTXID      = "litefleet_tenant_local_txid"
	MetricTenantReplicatedTXID = "litefleet_tenant_replicated_txid"
	MetricTenantLag            = "litefleet_tenant_lag_seconds"
	MetricTenantLastSync       = "litefleet_tenant_last_sync_timestamp_seconds"
	MetricTenantSyncErrors     = "litefleet_tenant_sync_errors_total"
	MetricTenantUploadedBytes  = "litefleet_tenant_uploaded_bytes_total"
	MetricTenantWALBytes       = "litefleet_tenant_wal_bytes"
	MetricTenantLastVerified   = "litefleet_tenant_last_verified_timestamp_seconds"
	MetricTenantVerifyFailures = "litefleet_tenant_verify_failures_total"
	MetricTenants              = "litefleet_tenants"
	MetricHeartbeatAge         = "litefleet_heartbeat_age_seconds"
	MetricHeartbeatFenced      = "litefleet_heartbeat_fenced"
	MetricS3Requests           = "litefleet_s3_requests_total"
	MetricS3RequestErrors      = "litefleet_s3_request_errors_total"
	MetricS3ExpectedAnswers    = "litefleet_s3_expected_answers_total"
)

// family is one metric family's name, type and help.
type family struct{ name, typ, help string }

var (
	famState = family{MetricTenantState, "gauge",
		"1 for the tenant's current state (starting, replicating, sleeping, leased_elsewhere, lease_lost, sync_failing, diverged, missing, failed, stopped); one series per tenant, of its current state."}
	famLocal      = family{MetricTenantLocalTXID, "gauge", "The local database's TXID, as Litestream last saw it."}
	famReplicated = family{MetricTenantReplicatedTXID, "gauge", "The TXID the replica in S3 holds."}
	famLag        = family{MetricTenantLag, "gauge", "Now minus the time of the oldest local change not yet in S3; 0 when in sync."}
	famLastSync   = family{MetricTenantLastSync, "gauge", "Unix time of the last upload to S3 (no series before the first)."}
	famSyncErrors = family{MetricTenantSyncErrors, "counter", "Failed syncs since the process started: uploads of a change to S3 that failed or were refused, and Litestream's local syncs seen failing, its background loops' included."}
	famUploaded   = family{MetricTenantUploadedBytes, "counter", "Bytes uploaded to S3 since the process started."}
	famWAL        = family{MetricTenantWALBytes, "gauge", "Size of the database's -wal file at the engine's last stat of it (every sweep, 10 s by default); 0 without one."}
	famVerified   = family{MetricTenantLastVerified, "gauge", "Unix time of the tenant's last verification (replicate -verify-every), whatever its verdict (no series before the first)."}
	famVerifyFail = family{MetricTenantVerifyFailures, "counter", "Verifications (replicate -verify-every) since the process started whose verdict was a failure: mismatch, broken chain, unrestorable or outside window."}
	famTenants    = family{MetricTenants, "gauge", "Tenants of this process by state."}
	famBeatAge    = family{MetricHeartbeatAge, "gauge", "Seconds since this host's last successful heartbeat to the bucket; other hosts count it dead at 40."}
	famFenced     = family{MetricHeartbeatFenced, "gauge", "1 while uploads to the bucket are paused because the heartbeat is failing."}
	famRequests   = family{MetricS3Requests, "counter", "S3 request attempts this process made (retries included), by operation."}
	famReqErrors  = family{MetricS3RequestErrors, "counter", "Failed S3 request attempts, by operation and error code (the S3 code, else the HTTP status, else network, timeout or canceled); the protocol's expected answers are counted apart."}
	famExpected   = family{MetricS3ExpectedAnswers, "counter", "S3 request attempts answered with an error the protocol expects in normal work, not a failure: 404 to a GET or HEAD of an object that may not exist, 412 or 304 to a conditional request; by operation and code."}
)

// runtimeRegistry holds the Go runtime's and the process's own metrics
// (memory, descriptors, CPU), which a host of thousands of tenants needs
// watched. Nothing else: Litestream's metrics, labelled by file path, and
// the default registry are not served.
func runtimeRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// textFormat is the Prometheus text exposition format, version 0.0.4,
// which every Prometheus-compatible scraper reads.
const textFormat = "text/plain; version=0.0.4; charset=utf-8"

// metricsHandler serves /metrics. The litefleet families are written
// straight from one Engine.Status snapshot, taken at the scrape: a client
// library Collector builds, hashes and sorts an object per series, which
// at 10,000 tenants (70,000 series) cost 90-170 ms and 40-50 MB a scrape
// here, against 100 ms and 20 MB allowed. The runtime's families go
// through client_golang's registry and encoder.
func metricsHandler(src Source, reg prometheus.Gatherer, now func() time.Time, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", textFormat)
		h.Set("Cache-Control", "no-store")
		var out io.Writer = w
		// klauspost's gzip, not the standard library's: at 100,000 tenants
		// (78 MB of text) it adds 36 ms to a scrape instead of 90.
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			h.Add("Vary", "Accept-Encoding")
			zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			defer zw.Close()
			out = zw
		}
		bw := bufio.NewWriterSize(out, 64<<10)
		WriteMetrics(bw, src, now())
		mfs, err := reg.Gather()
		if err != nil {
			log.Warn("runtime metrics", "error", err)
		}
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(bw, mf); err != nil {
				return
			}
		}
		_ = bw.Flush()
	}
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// WriteMetrics writes the litefleet families in the text format, from one
// snapshot of src taken now.
func WriteMetrics(w *bufio.Writer, src Source, now time.Time) {
	st := Unique(src.Status())
	mw := metricWriter{w: w, buf: make([]byte, 0, 128)}

	mw.head(famState)
	for i := range st {
		mw.sample(famState.name, "state", StateLabel(st[i].State), "tenant", st[i].Tenant, integer(1))
	}
	perTenant := func(f family, value func(*replication.TenantStatus) (val, bool)) {
		mw.head(f)
		for i := range st {
			if v, ok := value(&st[i]); ok {
				mw.sample(f.name, "", "", "tenant", st[i].Tenant, v)
			}
		}
	}
	perTenant(famLocal, func(s *replication.TenantStatus) (val, bool) { return integer(s.LocalTXID), true })
	perTenant(famReplicated, func(s *replication.TenantStatus) (val, bool) { return integer(s.ReplicatedTXID), true })
	perTenant(famLag, func(s *replication.TenantStatus) (val, bool) { return float(s.Lag.Seconds()), true })
	perTenant(famLastSync, func(s *replication.TenantStatus) (val, bool) {
		return float(float64(s.LastSync.UnixMilli()) / 1e3), !s.LastSync.IsZero()
	})
	perTenant(famSyncErrors, func(s *replication.TenantStatus) (val, bool) { return integer(s.SyncErrors), true })
	perTenant(famUploaded, func(s *replication.TenantStatus) (val, bool) { return integer(s.UploadedBytes), true })
	perTenant(famWAL, func(s *replication.TenantStatus) (val, bool) { return integer(s.WALBytes), true })
	perTenant(famVerified, func(s *replication.TenantStatus) (val, bool) {
		return float(float64(s.VerifiedAt.UnixMilli()) / 1e3), !s.VerifiedAt.IsZero()
	})
	perTenant(famVerifyFail, func(s *replication.TenantStatus) (val, bool) { return integer(s.VerifyFailures), true })

	by := map[replication.State]int{}
	for i := range st {
		by[st[i].State]++
	}
	mw.head(famTenants)
	for _, s := range replication.States {
		mw.sample(famTenants.name, "", "", "state", StateLabel(s), integer(by[s]))
	}

	beats := src.Heartbeats()
	seen := map[string]bool{}
	mw.head(famBeatAge)
	for _, hb := range beats {
		if !seen[hb.Bucket] && !hb.LastBeat.IsZero() {
			mw.sample(famBeatAge.name, "", "", "bucket", hb.Bucket, float(max(now.Sub(hb.LastBeat), 0).Seconds()))
		}
		seen[hb.Bucket] = true // the same bucket name at two endpoints: the first
	}
	clear(seen)
	mw.head(famFenced)
	for _, hb := range beats {
		if !seen[hb.Bucket] {
			fenced := 0
			if hb.Fenced {
				fenced = 1
			}
			mw.sample(famFenced.name, "", "", "bucket", hb.Bucket, integer(fenced))
		}
		seen[hb.Bucket] = true
	}

	attempts, failures := s3conn.RequestCounts()
	mw.head(famRequests)
	for _, r := range attempts {
		mw.sample(famRequests.name, "", "", "op", r.Op, integer(r.N))
	}
	mw.head(famReqErrors)
	for _, r := range failures {
		if !r.Expected {
			mw.sample(famReqErrors.name, "code", r.Code, "op", r.Op, integer(r.N))
		}
	}
	mw.head(famExpected)
	for _, r := range failures {
		if r.Expected {
			mw.sample(famExpected.name, "code", r.Code, "op", r.Op, integer(r.N))
		}
	}
}

// stateLabels are the states' label values in metrics: snake_case, as
// Prometheus label values are by custom, so that a selector needs no
// quoting of spaces or parentheses (state="lease_lost", not
// state=~"lease lost.*"). People read the words (StateLabel's input) in
// the UI, the logs and /status.
var stateLabels = map[replication.State]string{
	replication.StateStarting:    "starting",
	replication.StateReplicating: "replicating",
	replication.StateSleeping:    "sleeping",
	replication.StateLeased:      "leased_elsewhere",
	replication.StateLeaseLost:   "lease_lost",
	replication.StateSyncFailing: "sync_failing",
	replication.StateDiverged:    "diverged",
	replication.StateMissing:     "missing",
	replication.StateFailed:      "failed",
	replication.StateStopped:     "stopped",
}

// StateLabel is a state's label value in metrics: snake_case. A state
// without an entry in the table (one added later) is made snake_case
// word by word, its parenthesised words left out.
func StateLabel(s replication.State) string {
	if l, ok := stateLabels[s]; ok {
		return l
	}
	words, _, _ := strings.Cut(string(s), "(")
	return strings.Join(strings.Fields(strings.ToLower(words)), "_")
}

// val is a sample's value: an integer, written exactly, or a float.
type val struct {
	f     float64
	n     uint64
	isInt bool
}

func integer[T int | int64 | uint64](n T) val { return val{n: uint64(max(n, 0)), isInt: true} }
func float(f float64) val                     { return val{f: f} }

// metricWriter writes the text format, one line at a time.
type metricWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (m *metricWriter) head(f family) {
	m.w.WriteString("# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.typ + "\n")
}

// sample writes name{k1="v1",k2="v2"} value: labels in name order, k1
// omitted when empty; the value is n when it is an integer, else v.
func (m *metricWriter) sample(name, k1, v1, k2, v2 string, v val) {
	b := append(m.buf[:0], name...)
	b = append(b, '{')
	if k1 != "" {
		b = appendLabel(b, k1, v1)
		b = append(b, ',')
	}
	b = appendLabel(b, k2, v2)
	b = append(b, '}', ' ')
	if v.isInt {
		b = strconv.AppendUint(b, v.n, 10)
	} else {
		b = strconv.AppendFloat(b, v.f, 'g', -1, 64)
	}
	b = append(b, '\n')
	m.w.Write(b)
	m.buf = b
}

// appendLabel appends k="v", escaping v as the text format requires.
func appendLabel(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=', '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Unique keeps one status per tenant name, the most alarming: a metric
// has one series per tenant label, and two databases of one name (in two
// buckets, or a collision the engine refused) would otherwise make two.
// It sorts st by name when it is not (Engine.Status returns it sorted) and
// reuses its array.
func Unique(st []replication.TenantStatus) []replication.TenantStatus {
	byName := func(a, b replication.TenantStatus) int { return strings.Compare(a.Tenant, b.Tenant) }
	if !slices.IsSortedFunc(st, byName) {
		slices.SortStableFunc(st, byName)
	}
	out := st[:0]
	for _, s := range st {
		if n := len(out); n > 0 && out[n-1].Tenant == s.Tenant {
			if rank(s.State) < rank(out[n-1].State) {
				out[n-1] = s
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

func rank(s replication.State) int {
	for i, x := range replication.States {
		if x == s {
			return i
		}
	}
	return len(replication.States)
}
