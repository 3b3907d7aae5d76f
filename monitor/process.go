package monitor

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/litefleet/litefleet/replication"
)

// The per-process metric names, as the README documents them.
const (
	MetricBuildInfo    = "litefleet_build_info"
	MetricSyncDuration = "litefleet_sync_duration_seconds"
	MetricCommitToS3   = "litefleet_commit_to_s3_latency_seconds"
	MetricVerifyPeriod = "litefleet_verify_period_seconds"
)

const (
	litestreamModule = "github.com/benbjohnson/litestream"
	unknownVersion   = "unknown"
	// devVersion is cmd/litefleet's version when the build set none;
	// develVersion, the build info's main module version of such a build.
	devVersion   = "dev"
	develVersion = "(devel)"
)

// secondsBuckets suit what a sync and a change's way to S3 take: tens of
// milliseconds on a near S3, seconds under load, a minute at worst before
// a tenant counts as failing.
var secondsBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Recorder holds the process's histograms, which the replication engine
// feeds as its Observer. They are per process, not per tenant: a
// histogram per tenant would add a dozen series per tenant, 120,000 at
// 10,000 tenants.
type Recorder struct {
	syncDuration  prometheus.Histogram
	commitLatency prometheus.Histogram
}

var _ replication.Observer = (*Recorder)(nil)

// NewRecorder returns empty histograms.
func NewRecorder() *Recorder {
	return &Recorder{
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricSyncDuration,
			Help:    "Time each sync took: one upload of a change (a level-0 LTX file) to S3, failed ones included (they are counted in litefleet_tenant_sync_errors_total).",
			Buckets: secondsBuckets,
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    MetricCommitToS3,
			Help:    "Time from a local TXID first existing (Litestream taking the commit from the WAL) to it being in S3, per change uploaded.",
			Buckets: secondsBuckets,
		}),
	}
}

// ObserveSync records one sync's duration.
func (r *Recorder) ObserveSync(d time.Duration) { r.syncDuration.Observe(d.Seconds()) }

// ObserveCommitToS3 records one change's latency to S3.
func (r *Recorder) ObserveCommitToS3(d time.Duration) { r.commitLatency.Observe(d.Seconds()) }

// BuildInfo returns what litefleet_build_info says: litefleet's version
// (version when set, else the main module's version in the binary's build
// info), the Go version it was built with, and the version of the
// Litestream module linked in.
func BuildInfo(version string) (litefleet, goVersion, litestream string) {
	litefleet, goVersion, litestream = version, runtime.Version(), unknownVersion
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if (litefleet == "" || litefleet == devVersion) && bi.Main.Version != "" && bi.Main.Version != develVersion {
			litefleet = bi.Main.Version
		}
		for _, m := range bi.Deps {
			if m.Path != litestreamModule {
				continue
			}
			litestream = m.Version
			if m.Replace != nil && m.Replace.Version != "" {
				litestream = m.Replace.Version
			}
		}
	}
	if litefleet == "" {
		litefleet = unknownVersion
	}
	return litefleet, goVersion, litestream
}

// buildInfo is litefleet_build_info: 1, labelled with the versions, for
// joins in queries (`* on(instance) group_left(version) ...`) and for
// seeing which hosts run what.
func buildInfo(version string) prometheus.Collector {
	v, gov, ls := BuildInfo(version)
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        MetricBuildInfo,
		Help:        "1, labelled with litefleet's version, the Go version it was built with and the Litestream module's version.",
		ConstLabels: prometheus.Labels{"version": v, "goversion": gov, "litestream": ls},
	})
	g.Set(1)
	return g
}

// verifyPeriod is litefleet_verify_period_seconds: the period within which
// -verify-every verifies each tenant once.
func verifyPeriod(d time.Duration) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricVerifyPeriod,
		Help: "replicate -verify-every: each tenant of this process is verified once per this many seconds."})
	g.Set(d.Seconds())
	return g
}
