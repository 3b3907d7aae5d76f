package monitor_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/litefleet/litefleet/monitor"
	"github.com/litefleet/litefleet/replication"
)

// fakeSource is an engine's status, set by the test.
type fakeSource struct {
	mu    sync.Mutex
	st    []replication.TenantStatus
	beats []replication.HeartbeatStatus
}

func (f *fakeSource) Status() []replication.TenantStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.st)
}

func (f *fakeSource) Heartbeats() []replication.HeartbeatStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.beats)
}

func (f *fakeSource) set(st []replication.TenantStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

const (
	tA = "12345678-1234-5678-9abc-123456789012"
	tB = "98765432-4321-8765-cba9-876543210987"
	tC = "legacy-client-001"
)

func fleetOf3() *fakeSource {
	return &fakeSource{
		st: []replication.TenantStatus{
			{Tenant: tA, State: replication.StateReplicating, LocalTXID: 12, ReplicatedTXID: 10, Lag: 1500 * time.Millisecond,
				LastSync: now.Add(-2 * time.Second), SyncErrors: 1, UploadedBytes: 4096, WALBytes: 32992, Bucket: "b", Endpoint: "http://key:s3cr3t@127.0.0.1:9000"},
			{Tenant: tB, State: replication.StateFailed, Reason: "open: permission denied", LocalTXID: 3, ReplicatedTXID: 3, Bucket: "b"},
			{Tenant: tC, State: replication.StateSleeping, LocalTXID: 7, ReplicatedTXID: 7, LastSync: now.Add(-time.Hour), Bucket: "b"},
		},
		beats: []replication.HeartbeatStatus{{Bucket: "b", Host: "web-1", LastBeat: now.Add(-4 * time.Second), Endpoint: "http://key:s3cr3t@127.0.0.1:9000"}},
	}
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	return mf
}

// value returns the value of the series of family name whose labels
// include want, and whether there is one.
func value(mf map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := mf[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsPerTenant(t *testing.T) {
	src := fleetOf3()
	h := monitor.NewHandler(src, monitor.Options{Now: func() time.Time { return now }})
	code, text := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, text)
	}
	if strings.Contains(text, "s3cr3t") {
		t.Fatal("/metrics holds the endpoint's secret")
	}
	mf := parse(t, text)
	for _, name := range []string{monitor.MetricTenantState, monitor.MetricTenantLocalTXID, monitor.MetricTenantReplicatedTXID,
		monitor.MetricTenantLag, monitor.MetricTenantLastSync, monitor.MetricTenantSyncErrors, monitor.MetricTenantUploadedBytes,
		monitor.MetricTenantWALBytes, monitor.MetricTenants, monitor.MetricHeartbeatAge, monitor.MetricBuildInfo,
		monitor.MetricSyncDuration, monitor.MetricCommitToS3, "process_resident_memory_bytes", "go_goroutines"} {
		if _, ok := mf[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	for name := range mf {
		if strings.HasPrefix(name, "litestream_") {
			t.Errorf("/metrics exposes Litestream's %s", name)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{monitor.MetricTenantState, map[string]string{"tenant": tA, "state": "replicating"}, 1},
		{monitor.MetricTenantState, map[string]string{"tenant": tB, "state": "failed"}, 1},
		{monitor.MetricTenantState, map[string]string{"tenant": tC, "state": "sleeping"}, 1},
		{monitor.MetricTenantLocalTXID, map[string]string{"tenant": tA}, 12},
		{monitor.MetricTenantReplicatedTXID, map[string]string{"tenant": tA}, 10},
		{monitor.MetricTenantLag, map[string]string{"tenant": tA}, 1.5},
		{monitor.MetricTenantLag, map[string]string{"tenant": tC}, 0},
		{monitor.MetricTenantLastSync, map[string]string{"tenant": tA}, float64(now.Add(-2 * time.Second).Unix())},
		{monitor.MetricTenantSyncErrors, map[string]string{"tenant": tA}, 1},
		{monitor.MetricTenantUploadedBytes, map[string]string{"tenant": tA}, 4096},
		{monitor.MetricTenantWALBytes, map[string]string{"tenant": tA}, 32992},
		{monitor.MetricTenantWALBytes, map[string]string{"tenant": tB}, 0},
		{monitor.MetricTenants, map[string]string{"state": "replicating"}, 1},
		{monitor.MetricTenants, map[string]string{"state": "failed"}, 1},
		{monitor.MetricTenants, map[string]string{"state": "diverged"}, 0},
		{monitor.MetricHeartbeatAge, map[string]string{"bucket": "b"}, 4},
	}
	for _, c := range checks {
		got, ok := value(mf, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// One state series per tenant: the current one.
	if n := len(mf[monitor.MetricTenantState].Metric); n != 3 {
		t.Errorf("%d %s series, want 3 (one per tenant)", n, monitor.MetricTenantState)
	}
	if _, ok := value(mf, monitor.MetricTenantLastSync, map[string]string{"tenant": tB}); ok {
		t.Errorf("a tenant that never synced has a last-sync time")
	}

	// A tenant that is gone leaves no series behind.
	src.set(src.Status()[:1])
	_, text = get(t, h, "/metrics")
	mf = parse(t, text)
	for _, name := range []string{monitor.MetricTenantState, monitor.MetricTenantLocalTXID, monitor.MetricTenantLag, monitor.MetricTenantUploadedBytes} {
		if _, ok := value(mf, name, map[string]string{"tenant": tB}); ok {
			t.Errorf("%s still has a series for a tenant that is gone", name)
		}
	}
	if got, _ := value(mf, monitor.MetricTenants, map[string]string{"state": "failed"}); got != 0 {
		t.Errorf("tenants failed = %v after the failed tenant went, want 0", got)
	}
}

// Two databases of one tenant name make one series, of the most alarming
// state: a duplicate series would fail the whole scrape.
func TestMetricsOneSeriesPerTenantName(t *testing.T) {
	src := &fakeSource{st: []replication.TenantStatus{
		{Tenant: tA, Path: "/a/" + tA + ".db", State: replication.StateReplicating},
		{Tenant: tA, Path: "/b/" + tA + ".db", State: replication.StateFailed, Reason: "prefix shared"},
	}}
	_, text := get(t, monitor.NewHandler(src, monitor.Options{}), "/metrics")
	mf := parse(t, text)
	if n := len(mf[monitor.MetricTenantState].Metric); n != 1 {
		t.Fatalf("%d state series for one tenant name, want 1", n)
	}
	if _, ok := value(mf, monitor.MetricTenantState, map[string]string{"tenant": tA, "state": "failed"}); !ok {
		t.Fatalf("the kept series is not the failed one:\n%s", text)
	}
}

// TestReadyz: /readyz and /healthz?tenants answer for every tenant.
func TestReadyz(t *testing.T) {
	src := fleetOf3()
	h := monitor.NewHandler(src, monitor.Options{})
	for _, path := range []string{"/readyz", "/healthz?tenants"} {
		src.set(fleetOf3().Status())
		readyz(t, src, h, path)
	}
}

func readyz(t *testing.T, src *fakeSource, h http.Handler, path string) {
	t.Helper()
	code, body := get(t, h, path)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("%s with a failed tenant: %d, want 503\n%s", path, code, body)
	}
	want := tB + ": failed: open: permission denied\n"
	if body != want {
		t.Fatalf("%s body %q, want %q (one line per failing tenant, the healthy ones left out)", path, body, want)
	}

	st := src.Status()
	st[1].State, st[1].Reason = replication.StateLeased, "held by web-2"
	src.set(st)
	code, body = get(t, h, path)
	if code != http.StatusOK || !strings.HasPrefix(body, "ok: 3 tenant(s)") {
		t.Fatalf("%s with every tenant replicating, sleeping or leased elsewhere: %d %q, want 200 ok", path, code, body)
	}

	for _, s := range []replication.State{replication.StateDiverged, replication.StateLeaseLost, replication.StateMissing, replication.StateStarting, replication.StateStopped} {
		st[1].State = s
		src.set(st)
		if code, body := get(t, h, path); code != http.StatusServiceUnavailable || !strings.Contains(body, string(s)) {
			t.Errorf("%s with a tenant %s: %d %q, want 503 naming it", path, s, code, body)
		}
	}
}

// TestHealthzIsLiveness: /healthz answers whether the process works, not
// whether every tenant does: a liveness probe must not restart a fleet for
// one failing tenant; a stalled engine is 503.
func TestHealthzIsLiveness(t *testing.T) {
	src := fleetOf3() // one tenant failed
	h := monitor.NewHandler(src, monitor.Options{})
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || !strings.Contains(body, "1 unhealthy") {
		t.Fatalf("/healthz with a failed tenant: %d %q, want 200 saying one is unhealthy", code, body)
	}
	stalled := &stalledSource{fakeSource: src, err: errors.New("the scheduler last ran 41s ago")}
	h = monitor.NewHandler(stalled, monitor.Options{})
	if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "41s") {
		t.Fatalf("/healthz of a stalled engine: %d %q, want 503 saying why", code, body)
	}
}

type stalledSource struct {
	*fakeSource
	err error
}

func (s *stalledSource) Alive() error { return s.err }

func TestStatusJSON(t *testing.T) {
	h := monitor.NewHandler(fleetOf3(), monitor.Options{Now: func() time.Time { return now }})
	code, body := get(t, h, "/status")
	if code != http.StatusOK {
		t.Fatalf("/status: %d", code)
	}
	if strings.Contains(body, "s3cr3t") || strings.Contains(body, "key:") {
		t.Fatalf("/status holds the endpoint's credentials:\n%s", body)
	}
	var doc struct {
		Tenants []map[string]any `json:"tenants"`
		Counts  map[string]int   `json:"counts"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Tenants) != 3 {
		t.Fatalf("%d tenants in /status, want 3", len(doc.Tenants))
	}
	a := doc.Tenants[0]
	for k, want := range map[string]any{
		"tenant": tA, "state": "replicating", "host": "web-1", "local_txid": 12.0, "replicated_txid": 10.0,
		"lag_txids": 2.0, "lag_ns": 1.5e9, "endpoint": "http://127.0.0.1:9000",
	} {
		if fmt.Sprint(a[k]) != fmt.Sprint(want) {
			t.Errorf("/status tenants[0].%s = %v, want %v", k, a[k], want)
		}
	}
	if doc.Counts["failed"] != 1 {
		t.Errorf("counts %v, want failed: 1", doc.Counts)
	}
}

// TestStatusStreamedAsEncoded: /status, written a tenant at a time, is
// byte for byte what json.Encoder with a two-space indent makes of the
// whole StatusDoc, with tenants and with none.
func TestStatusStreamedAsEncoded(t *testing.T) {
	for _, src := range []*fakeSource{fleetOf3(), {}} {
		h := monitor.NewHandler(src, monitor.Options{Now: func() time.Time { return now }})
		_, body := get(t, h, "/status")
		var doc monitor.StatusDoc
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%v:\n%s", err, body)
		}
		if len(doc.Tenants) != len(src.st) {
			t.Fatalf("%d tenants, want %d", len(doc.Tenants), len(src.st))
		}
		if doc.Tenants == nil {
			doc.Tenants = []monitor.Tenant{}
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			t.Fatal(err)
		}
		if body != want.String() {
			t.Errorf("/status differs from json.Encoder's:\n%s\nwant:\n%s", body, want.String())
		}
	}
}

// fleetOf builds n tenants in a mix of states, as a large host has them.
func fleetOf(n int) *fakeSource {
	st := make([]replication.TenantStatus, n)
	for i := range st {
		st[i] = replication.TenantStatus{
			Tenant: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), State: replication.StateSleeping,
			LocalTXID: uint64(1000 + i), ReplicatedTXID: uint64(1000 + i), LastSync: now.Add(-time.Duration(i) * time.Second),
			UploadedBytes: int64(i) * 4096, Bucket: "b",
		}
		if i%10 == 0 {
			st[i].State, st[i].Lag = replication.StateReplicating, time.Duration(i)*time.Millisecond
		}
	}
	return &fakeSource{st: st, beats: []replication.HeartbeatStatus{{Bucket: "b", Host: "h", LastBeat: now}}}
}

// discard is a ResponseWriter that counts and drops the body: a scrape's
// cost is the server's, not that of a buffer holding the answer.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// scrape times one GET of path from h, gzipped when asked as Prometheus
// asks, and reports the body's size.
func scrape(b *testing.B, h http.Handler, path string, gz bool) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		w := &discard{h: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("%s: %d", path, w.code)
		}
		size = w.n
	}
	b.ReportMetric(float64(size), "body-bytes")
}

// BenchmarkScrape10000 is one /metrics scrape of a host with 10,000
// tenants (target: under 100 ms and 20 MB).
func BenchmarkScrape10000(b *testing.B) {
	scrape(b, monitor.NewHandler(fleetOf(10000), monitor.Options{}), "/metrics", false)
}

// BenchmarkScrape10000Gzip is the same scrape as Prometheus asks for it,
// compressed.
func BenchmarkScrape10000Gzip(b *testing.B) {
	scrape(b, monitor.NewHandler(fleetOf(10000), monitor.Options{}), "/metrics", true)
}

// BenchmarkScrape100000 is issue 21's scale (target: a scrape under 1 s).
func BenchmarkScrape100000(b *testing.B) {
	h := monitor.NewHandler(fleetOf(100000), monitor.Options{})
	b.Run("metrics", func(b *testing.B) { scrape(b, h, "/metrics", false) })
	b.Run("metrics-gzip", func(b *testing.B) { scrape(b, h, "/metrics", true) })
	b.Run("status", func(b *testing.B) { scrape(b, h, "/status", false) })
}

// A scraper that asks for gzip gets the same metrics, compressed.
func TestMetricsGzip(t *testing.T) {
	h := monitor.NewHandler(fleetOf3(), monitor.Options{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", rec.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	mf := parse(t, string(text))
	if v, ok := value(mf, monitor.MetricTenantLocalTXID, map[string]string{"tenant": tA}); !ok || v != 12 {
		t.Fatalf("local TXID of %s = %v (present %v), want 12", tA, v, ok)
	}
}

// A tenant whose last sync failed is unhealthy, and every endpoint says
// so in the same words: /healthz names it with since when and why,
// /metrics has its state series and counts its failed syncs, /status gives
// the state, reason, since and the TXIDs S3 lacks.
func TestSyncFailingOnEveryEndpoint(t *testing.T) {
	src := fleetOf3()
	st := src.Status()
	since := now.Add(-12 * time.Second)
	st[1] = replication.TenantStatus{Tenant: tB, State: replication.StateSyncFailing, Reason: "upload to S3 failed: 503 ServiceUnavailable",
		Since: since, LocalTXID: 21, ReplicatedTXID: 10, SyncErrors: 4, Bucket: "b"}
	src.set(st)
	h := monitor.NewHandler(src, monitor.Options{Now: func() time.Time { return now }})

	code, body := get(t, h, "/readyz")
	want := tB + ": sync failing since 2026-11-30T11:59:48Z (12s): upload to S3 failed: 503 ServiceUnavailable\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/healthz: %d %q, want 503 %q", code, body, want)
	}

	_, text := get(t, h, "/metrics")
	mf := parse(t, text)
	if v, ok := value(mf, monitor.MetricTenantState, map[string]string{"tenant": tB, "state": "sync_failing"}); !ok || v != 1 {
		t.Errorf("%s{state=sync_failing} = %v %v, want 1", monitor.MetricTenantState, v, ok)
	}
	if v, _ := value(mf, monitor.MetricTenantSyncErrors, map[string]string{"tenant": tB}); v != 4 {
		t.Errorf("%s = %v, want 4", monitor.MetricTenantSyncErrors, v)
	}
	if v, _ := value(mf, monitor.MetricTenants, map[string]string{"state": "sync_failing"}); v != 1 {
		t.Errorf("%s{state=sync_failing} = %v, want 1", monitor.MetricTenants, v)
	}

	_, body = get(t, h, "/status")
	var doc struct {
		Tenants []struct {
			Tenant, State, Reason string
			Since                 time.Time
			LagTXIDs              uint64 `json:"lag_txids"`
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	for _, x := range doc.Tenants {
		if x.Tenant == tB && (x.State != "sync failing" || !x.Since.Equal(since) || x.LagTXIDs != 11 || !strings.Contains(x.Reason, "503")) {
			t.Errorf("/status: %+v, want sync failing since %s, 11 TXIDs not in S3, with the reason", x, since)
		}
	}
}
