package monitor_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	dto "github.com/prometheus/client_model/go"

	"github.com/litefleet/litefleet/monitor"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/s3conn"
)

// labelsOf returns the labels of a family's only series.
func labelsOf(t *testing.T, mf map[string]*dto.MetricFamily, name string) map[string]string {
	t.Helper()
	f := mf[name]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("%s: %v, want one series", name, f)
	}
	out := map[string]string{}
	for _, l := range f.Metric[0].Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// litefleet_build_info is 1 with litefleet's, Go's and Litestream's
// versions as labels.
func TestBuildInfo(t *testing.T) {
	h := monitor.NewHandler(fleetOf3(), monitor.Options{Version: "v1.2.3"})
	_, text := get(t, h, "/metrics")
	mf := parse(t, text)
	l := labelsOf(t, mf, monitor.MetricBuildInfo)
	if l["version"] != "v1.2.3" || l["goversion"] != runtime.Version() {
		t.Errorf("build info labels %v, want version v1.2.3 and goversion %s", l, runtime.Version())
	}
	// A test binary's build info lists no modules ("unknown" then): the
	// real version is checked on the built binary (TestMonitorEndpoints).
	if l["litestream"] == "" {
		t.Errorf("empty litestream label")
	}
	if v := mf[monitor.MetricBuildInfo].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("build info = %v, want 1", v)
	}
	// No version set ("dev", as a plain go build): never an empty label.
	if v, _, _ := monitor.BuildInfo("dev"); v == "" {
		t.Error("BuildInfo(dev) gives an empty version")
	}
}

// The histograms the engine feeds are served, per process, with second
// buckets: each observation lands in the right bucket, and no tenant
// label multiplies them.
func TestHistograms(t *testing.T) {
	rec := monitor.NewRecorder()
	var _ replication.Observer = rec
	h := monitor.NewHandler(fleetOf(50), monitor.Options{Recorder: rec})
	rec.ObserveSync(30 * time.Millisecond)
	rec.ObserveSync(700 * time.Millisecond)
	rec.ObserveCommitToS3(1200 * time.Millisecond)
	rec.ObserveCommitToS3(90 * time.Second) // beyond the last bucket: +Inf
	_, text := get(t, h, "/metrics")
	mf := parse(t, text)
	for _, c := range []struct {
		name    string
		count   uint64
		sum     float64
		buckets map[float64]uint64 // upper bound: cumulative count
	}{
		{monitor.MetricSyncDuration, 2, 0.73, map[float64]uint64{0.05: 1, 0.5: 1, 1: 2, 60: 2}},
		{monitor.MetricCommitToS3, 2, 91.2, map[float64]uint64{1: 0, 2.5: 1, 60: 1}},
	} {
		f := mf[c.name]
		if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.Metric) != 1 {
			t.Fatalf("%s: %v, want one histogram series (per process, not per tenant)", c.name, f)
		}
		hg := f.Metric[0].GetHistogram()
		if hg.GetSampleCount() != c.count || hg.GetSampleSum() < c.sum-1e-9 || hg.GetSampleSum() > c.sum+1e-9 {
			t.Errorf("%s: count %d sum %v, want %d and %v", c.name, hg.GetSampleCount(), hg.GetSampleSum(), c.count, c.sum)
		}
		got := map[float64]uint64{}
		var bounds []float64
		for _, b := range hg.Bucket {
			got[b.GetUpperBound()] = b.GetCumulativeCount()
			bounds = append(bounds, b.GetUpperBound())
		}
		if len(bounds) == 0 || bounds[0] != 0.05 || !slices.Contains(bounds, 60) || slices.ContainsFunc(bounds, func(b float64) bool { return b > 60 && !math.IsInf(b, 1) }) {
			t.Errorf("%s: buckets %v, want 0.05 … 60 s", c.name, bounds)
		}
		for le, want := range c.buckets {
			if got[le] != want {
				t.Errorf("%s{le=%v} = %d, want %d", c.name, le, got[le], want)
			}
		}
	}
}

// Metrics' state label values are snake_case (a selector needs no
// regular expression for "lease lost (retrying)"); /status and /readyz
// keep the words people read.
func TestStateLabelsSnakeCase(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[string]replication.State{}
	for _, s := range replication.States {
		l := monitor.StateLabel(s)
		if !snake.MatchString(l) {
			t.Errorf("state %q: label %q is not snake_case", s, l)
		}
		if o, dup := seen[l]; dup {
			t.Errorf("states %q and %q share the label %q", o, s, l)
		}
		seen[l] = s
	}
	for s, want := range map[replication.State]string{
		replication.StateLeaseLost: "lease_lost", replication.StateLeased: "leased_elsewhere", replication.StateSyncFailing: "sync_failing",
		"some new state (waiting)": "some_new_state",
	} {
		if got := monitor.StateLabel(s); got != want {
			t.Errorf("StateLabel(%q) = %q, want %q", s, got, want)
		}
	}

	src := fleetOf3()
	st := src.Status()
	st[1].State, st[1].Reason = replication.StateLeaseLost, "heartbeat to S3 failing"
	st[2].State, st[2].Holder = replication.StateLeased, "web-2"
	src.set(st)
	h := monitor.NewHandler(src, monitor.Options{})
	_, text := get(t, h, "/metrics")
	if strings.Contains(text, `state="lease lost`) || strings.Contains(text, `state="leased elsewhere"`) || strings.Contains(text, `state="sync failing"`) {
		t.Fatalf("/metrics has a state label in words:\n%s", text)
	}
	mf := parse(t, text)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{monitor.MetricTenantState, map[string]string{"tenant": tB, "state": "lease_lost"}},
		{monitor.MetricTenantState, map[string]string{"tenant": tC, "state": "leased_elsewhere"}},
		{monitor.MetricTenants, map[string]string{"state": "lease_lost"}},
	} {
		if v, ok := value(mf, c.name, c.labels); !ok || v != 1 {
			t.Errorf("%s%v = %v (present %v), want 1", c.name, c.labels, v, ok)
		}
	}
	for _, m := range mf[monitor.MetricTenants].Metric {
		for _, l := range m.Label {
			if l.GetName() == "state" && !snake.MatchString(l.GetValue()) {
				t.Errorf("%s{state=%q}: not snake_case", monitor.MetricTenants, l.GetValue())
			}
		}
	}
	if _, body := get(t, h, "/status"); !strings.Contains(body, `"state": "lease lost (retrying)"`) {
		t.Errorf("/status does not keep the words for people:\n%s", body)
	}
	if _, body := get(t, h, "/readyz"); !strings.Contains(body, tB+": lease lost (retrying): ") {
		t.Errorf("/readyz does not keep the words for people: %q", body)
	}
}

// A GET of a missing key (404 NoSuchKey) is an expected answer, counted
// apart from the failures; an AccessDenied is a failure.
func TestExpectedAnswersApartFromErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		code, status := "NoSuchKey", http.StatusNotFound
		if strings.HasSuffix(r.URL.Path, "/denied") {
			code, status = "AccessDenied", http.StatusForbidden
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>m</Message></Error>`))
	}))
	defer srv.Close()
	client, err := s3conn.NewClient(context.Background(), s3conn.Conn{Bucket: "bkt", Endpoint: srv.URL, AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	h := monitor.NewHandler(fleetOf3(), monitor.Options{})
	scrape := func() map[string]*dto.MetricFamily { _, text := get(t, h, "/metrics"); return parse(t, text) }
	before := scrape()
	for _, key := range []string{"missing", "denied"} {
		if _, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key)}); err == nil {
			t.Fatalf("GET %s succeeded", key)
		}
	}
	after := scrape()
	delta := func(name, code string) float64 {
		a, _ := value(after, name, map[string]string{"op": "GetObject", "code": code})
		b, _ := value(before, name, map[string]string{"op": "GetObject", "code": code})
		return a - b
	}
	if _, ok := value(after, monitor.MetricS3RequestErrors, map[string]string{"op": "GetObject", "code": "NoSuchKey"}); ok {
		t.Errorf("%s counts a GET's NoSuchKey as an error", monitor.MetricS3RequestErrors)
	}
	if d := delta(monitor.MetricS3ExpectedAnswers, "NoSuchKey"); d != 1 {
		t.Errorf("%s{GetObject,NoSuchKey} grew by %v, want 1", monitor.MetricS3ExpectedAnswers, d)
	}
	if d := delta(monitor.MetricS3RequestErrors, "AccessDenied"); d != 1 {
		t.Errorf("%s{GetObject,AccessDenied} grew by %v, want 1", monitor.MetricS3RequestErrors, d)
	}
	if _, ok := value(after, monitor.MetricS3ExpectedAnswers, map[string]string{"code": "AccessDenied"}); ok {
		t.Errorf("an AccessDenied is counted as an expected answer")
	}
}
