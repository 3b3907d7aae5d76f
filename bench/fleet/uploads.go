package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/litefleet/litefleet/internal/s3proxy"
)

// span is one successful L0 upload as the proxy saw it.
type span struct{ start, end time.Time }

// uploads follows every tenant's LTX uploads (PREFIX/TENANT/LLLL/MIN-MAX.ltx,
// the layout of Litestream v0.5 and litefleet alike) through the proxy's
// hook: a tenant's first successful one, of any level, puts its data in S3
// (its first snapshot), and each level-0 one ends the wait of the commits
// made before it started.
type uploads struct {
	prefix string // "databases/"

	mu      sync.Mutex
	puts    map[string][]span // tenant -> its L0 uploads, in the order they ended
	first   map[string]time.Time
	failed  int           // LTX uploads answered with an error (or none)
	changed chan struct{} // closed and replaced on every upload
	// control counts the requests on the control prefix by kind and file
	// name ("PUT heartbeat.json"): which of the host's objects cost what.
	control map[string]int64
	// byTenant counts the requests on each tenant's prefix (keys under it,
	// listings of it), so that a phase's cost is its tenants' alone.
	byTenant map[string]*s3proxy.Counts
	// reqLog, if set, gets one line per request, for reading afterwards.
	reqLog *bufio.Writer
	began  time.Time
}

func newUploads(prefix string) *uploads {
	return &uploads{prefix: strings.Trim(prefix, "/") + "/", puts: map[string][]span{}, first: map[string]time.Time{},
		changed: make(chan struct{}), control: map[string]int64{},
		byTenant: map[string]*s3proxy.Counts{}, began: time.Now()}
}

// logTo writes every request to w from now on: start (seconds since the
// tracker began), duration, status, kind, bucket and key, tab-separated.
func (u *uploads) logTo(w io.Writer) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reqLog = bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintln(u.reqLog, "start_s\tduration_ms\tstatus\tkind\tbucket\tkey")
}

// flush writes out the request log.
func (u *uploads) flush() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.reqLog == nil {
		return nil
	}
	return u.reqLog.Flush()
}

// hook is the proxy's per-request hook.
func (u *uploads) hook(r s3proxy.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.reqLog != nil {
		fmt.Fprintf(u.reqLog, "%.3f\t%.1f\t%d\t%s\t%s\t%s\n", r.Start.Sub(u.began).Seconds(),
			float64(r.End.Sub(r.Start).Microseconds())/1000, r.Status, r.Kind, r.Bucket, r.Key)
	}
	if r.Control {
		u.control[r.Kind.String()+" "+path.Base(r.Key)]++
		return
	}
	if t, ok := tenantOf(u.prefix, r.Key); ok {
		c := u.byTenant[t]
		if c == nil {
			c = new(s3proxy.Counts)
			u.byTenant[t] = c
		}
		c[r.Kind]++
	}
	tenant, level, ok := ltxKey(u.prefix, r.Key)
	if r.Kind != s3proxy.Put || !ok {
		return
	}
	if r.Status/100 != 2 {
		u.failed++
		return
	}
	if level == 0 {
		u.puts[tenant] = append(u.puts[tenant], span{r.Start, r.End})
	}
	if _, seen := u.first[tenant]; !seen {
		u.first[tenant] = r.End
	}
	close(u.changed)
	u.changed = make(chan struct{})
}

// failedUploads is how many LTX uploads were answered with an error.
func (u *uploads) failedUploads() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failed
}

// wait returns a channel closed at the next upload.
func (u *uploads) wait() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.changed
}

// controlCounts returns the requests on the control prefix so far, by
// kind and file name.
func (u *uploads) controlCounts() map[string]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.control)
}

// tenantCounts sums the requests on the prefixes of tenants.
func (u *uploads) tenantCounts(tenants []string) s3proxy.Counts {
	u.mu.Lock()
	defer u.mu.Unlock()
	var sum s3proxy.Counts
	for _, t := range tenants {
		if c := u.byTenant[t]; c != nil {
			for k := range sum {
				sum[k] += c[k]
			}
		}
	}
	return sum
}

// tenantOf returns the tenant whose prefix a key (or listed prefix) is in:
// PREFIX/TENANT/...
func tenantOf(prefix, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", false
	}
	t, _, ok := strings.Cut(rest, "/")
	return t, ok && t != ""
}

// ltxKey returns the tenant and level of an LTX file's key,
// PREFIX/TENANT/LLLL/MIN-MAX.ltx (the level in four hex digits).
func ltxKey(prefix, key string) (string, int, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || len(parts[1]) != 4 || !strings.HasSuffix(parts[2], ".ltx") {
		return "", 0, false
	}
	level, err := strconv.ParseUint(parts[1], 16, 16)
	if err != nil {
		return "", 0, false
	}
	return parts[0], int(level), true
}

// firstCount is how many tenants have had a first upload.
func (u *uploads) firstCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.first)
}

// firstTimes returns the first upload's end of each tenant that has one.
func (u *uploads) firstTimes() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := make(map[string]time.Time, len(u.first))
	for k, v := range u.first {
		m[k] = v
	}
	return m
}

// notUploaded is the latency of a commit no upload followed in time.
const notUploaded = time.Duration(math.MaxInt64)

// latency is the time from a commit to the end of the tenant's first L0
// upload that started after it, or notUploaded.
func (u *uploads) latency(c commit) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return latencyOf(u.puts[c.tenant], c.at)
}

func latencyOf(puts []span, at time.Time) time.Duration {
	best := -1
	for i, p := range puts {
		if p.start.After(at) && (best < 0 || p.start.Before(puts[best].start)) {
			best = i
		}
	}
	if best < 0 {
		return notUploaded
	}
	return puts[best].end.Sub(at)
}

// latencies returns each commit's latency, in the commits' order.
func (u *uploads) latencies(cs []commit) []time.Duration {
	out := make([]time.Duration, len(cs))
	for i, c := range cs {
		out[i] = u.latency(c)
	}
	return out
}

// pending returns the commits no upload has followed yet.
func (u *uploads) pending(cs []commit) []commit {
	var rest []commit
	for _, c := range cs {
		if u.latency(c) == notUploaded {
			rest = append(rest, c)
		}
	}
	return rest
}

// dist summarises latencies: the count, how many were never uploaded (in
// time), and nearest-rank percentiles in which those count as longest.
type dist struct {
	n, missing    int
	p50, p99, max time.Duration
}

func distOf(lat []time.Duration) dist {
	d := dist{n: len(lat)}
	if len(lat) == 0 {
		return d
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	for _, v := range s {
		if v == notUploaded {
			d.missing++
		}
	}
	d.p50, d.p99, d.max = rank(s, 50), rank(s, 99), s[len(s)-1]
	return d
}

// rank is the nearest-rank percentile p of sorted values.
func rank(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)]
}
