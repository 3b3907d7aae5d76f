// Package fleet is the joined view of local databases and their S3
// replicas: statuses, lag, host records applied to rows, lease wording.
package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
)

// Fleet is the joined view of one host's tenant databases and one bucket's
// tenant prefixes, refreshed on demand. When S3 cannot be reached it keeps
// the last good answer, and says how old it is. Safe for concurrent use.
type Fleet struct {
	Conn      s3conn.Conn
	API       s3conn.API
	Discover  tenants.DiscoverOptions
	Options   ViewOptions
	CacheFile string // where the last good S3 answer is kept between runs; "" for none
	// FullScan lists every object of every tenant at each refresh (ls
	// -scan), instead of taking the positions of the tenants a live host
	// replicates from its host record.
	FullScan bool

	records hostview.Records // the host records read so far, by host

	mu       sync.Mutex
	remote   []s3browse.TenantSummary
	hosts    []hostview.HostSummary
	reports  map[string][]hostview.HostReport
	remoteAt time.Time
	cached   bool // remote came from CacheFile
}

// View is one refresh of the fleet.
type View struct {
	Rows   []Row          `json:"tenants"`
	Counts map[Status]int `json:"counts"`
	At     time.Time      `json:"at"`
	// RemoteAt is when S3 last answered; older than At when S3 failed
	// and the last good answer is shown.
	RemoteAt time.Time `json:"remote_at,omitzero"`
	// RemoteErr says why this refresh could not list S3. It and LocalErr
	// are always in the JSON, "" when all went well, as the README's
	// schema of ls -json lists them: a script tests the field, not its
	// presence.
	RemoteErr string `json:"remote_error"`
	// FromCache says the S3 side came from the cache file of an earlier run.
	FromCache bool `json:"remote_from_cache"`
	// LocalErr says why local discovery failed.
	LocalErr string `json:"local_error"`
	// Hosts are the replicating hosts of the bucket, by name, from their
	// heartbeats and host records.
	Hosts []hostview.HostSummary `json:"hosts"`
}

// RemoteAge is how old the S3 side of the view is.
func (v *View) RemoteAge() time.Duration {
	if v.RemoteAt.IsZero() {
		return 0
	}
	return v.At.Sub(v.RemoteAt)
}

// Stale reports that the S3 side is not from this refresh.
func (v *View) Stale() bool { return v.RemoteErr != "" || v.FromCache }

// Refresh discovers local databases and reads the bucket, concurrently,
// and joins them. The bucket is read as cheaply as it can be: the host
// records of the replicators (one listing, and a GET of each record that
// changed), the tenant prefixes (one delimited listing per 1,000 tenants),
// and the objects only of the tenants that no live host reports, or of
// every tenant with FullScan. Errors on either side are reported in the View, not returned:
// an operator still wants the half that works. The error returned is only
// ctx's.
func (f *Fleet) Refresh(ctx context.Context) (*View, error) {
	now := time.Now()
	var locals []tenants.Local
	var localErr error
	var wg sync.WaitGroup
	if len(f.Discover.Dirs) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			locals, localErr = tenants.Discover(ctx, f.Discover)
		}()
	}
	var remote []s3browse.TenantSummary
	var hostList []hostview.HostSummary
	var reports map[string][]hostview.HostReport
	var remoteErr error
	if f.API != nil {
		remote, hostList, reports, remoteErr = f.remoteSide(ctx, now)
		if remoteErr == nil {
			remoteErr = f.readLeases(ctx, remote, now)
		}
	} else {
		remoteErr = errors.New("no bucket: pass -bucket to see the S3 side")
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	v := &View{At: now}
	if localErr != nil {
		v.LocalErr = localErr.Error()
	}
	opt := f.Options
	f.mu.Lock()
	switch {
	case remoteErr == nil:
		f.remote, f.hosts, f.reports, f.remoteAt, f.cached = remote, hostList, reports, now, false
		f.saveCache()
		remote, v.RemoteAt, v.FromCache, reports = f.remote, f.remoteAt, f.cached, f.reports
		v.Hosts = append([]hostview.HostSummary{}, f.hosts...)
	case f.API != nil && s3conn.Classify(remoteErr) == s3conn.FailureUnreachable:
		// S3 is out of reach, not changed: the last good answer stands in,
		// marked with its age.
		v.RemoteErr = s3conn.Why(remoteErr, f.Conn).Error()
		if f.remote == nil {
			f.loadCache()
		}
		// A tenant the older answer does not list may be in S3 by now;
		// with no older answer, S3's side is unknown for every tenant.
		opt.remoteStale = fmt.Sprintf("%s; its last answer, %s old, does not list it", s3conn.Classify(remoteErr), now.Sub(f.remoteAt).Round(time.Second))
		if f.remoteAt.IsZero() {
			opt.remoteUnknown = s3conn.Classify(remoteErr).String()
		}
		remote, v.RemoteAt, v.FromCache = f.remote, f.remoteAt, f.cached
		reports = aged(f.reports, now.Sub(f.remoteAt))
		v.Hosts = append([]hostview.HostSummary{}, f.hosts...)
	default:
		// A missing bucket, refused or missing credentials, no bucket at
		// all: no earlier answer is known to hold, and nothing is shown
		// as if it were. Local rows say "unknown" and why.
		v.RemoteErr = remoteErr.Error()
		opt.remoteUnknown = "no bucket given"
		if f.API != nil {
			v.RemoteErr = s3conn.Why(remoteErr, f.Conn).Error()
			opt.remoteUnknown = s3conn.Classify(remoteErr).String()
		}
		remote, reports = nil, nil
	}
	f.mu.Unlock()

	// Join works on copies: rows point into them, and the cache is shared.
	v.Rows = Join(locals, append([]s3browse.TenantSummary(nil), remote...), now, opt)
	ApplyHostReports(v.Rows, reports, opt)
	v.Counts = Counts(v.Rows)
	return v, nil
}

// aged returns copies of reports as old as an answer read d ago is now:
// their records and states are d older than when read. (The heartbeat's
// age stays as read: with it, whether the host was silent then.)
func aged(reports map[string][]hostview.HostReport, d time.Duration) map[string][]hostview.HostReport {
	if d <= 0 || len(reports) == 0 {
		return reports
	}
	out := make(map[string][]hostview.HostReport, len(reports))
	for name, rs := range reports {
		cp := make([]hostview.HostReport, len(rs))
		for i, r := range rs {
			r.RecordAge += d
			if r.StateAge > 0 {
				r.StateAge += d
			}
			cp[i] = r
		}
		out[name] = cp
	}
	return out
}

// leaseReaders bounds the lock.json reads of one refresh.
const leaseReaders = 16

// readLeases reads the lock.json of every tenant whose listing shows it
// written within the lease's lifetime: whether a lease is live is what its
// content says (JudgeLease), not only that the file was written lately. A
// tenant whose lock.json is older cannot hold a live lease and costs no
// request.
func (f *Fleet) readLeases(ctx context.Context, remote []s3browse.TenantSummary, now time.Time) error {
	fresh := f.Options.withDefaults().LeaseFresh
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(leaseReaders)
	for i := range remote {
		s := &remote[i]
		if !s.Valid || !s.HasLease || now.Sub(s.LeaseModifiedAt) >= fresh {
			continue
		}
		g.Go(func() error {
			l, err := s3browse.ReadLease(ctx, f.API, f.Conn, s.Name)
			s.Lease = l
			return err
		})
	}
	return g.Wait()
}

// Inspect reports one tenant's restore points.
func (f *Fleet) Inspect(ctx context.Context, tenant string) (*s3browse.Tenant, error) {
	if f.API == nil {
		return nil, errors.New("no bucket: pass -bucket")
	}
	// Inspect explains its S3 errors itself; explaining again would dress
	// a refused name or a cancellation as an S3 failure.
	return s3browse.Inspect(ctx, f.API, f.Conn, tenant)
}

// cacheFile is what CacheFile holds.
type cacheFile struct {
	Conn    string                           `json:"conn"` // Conn.String(): no credentials
	At      time.Time                        `json:"at"`
	Tenants []s3browse.TenantSummary         `json:"tenants"`
	Hosts   []hostview.HostSummary           `json:"hosts,omitempty"`
	Reports map[string][]hostview.HostReport `json:"reports,omitempty"`
}

func (f *Fleet) saveCache() {
	if f.CacheFile == "" {
		return
	}
	b, err := json.Marshal(cacheFile{Conn: f.Conn.String(), At: f.remoteAt, Tenants: f.remote, Hosts: f.hosts, Reports: f.reports})
	if err != nil {
		return
	}
	// Best effort: a cache that cannot be written only loses the fallback.
	_ = os.MkdirAll(filepath.Dir(f.CacheFile), 0o700)
	tmp := f.CacheFile + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, f.CacheFile)
	}
}

func (f *Fleet) loadCache() {
	if f.CacheFile == "" {
		return
	}
	b, err := os.ReadFile(f.CacheFile)
	if err != nil {
		return
	}
	var c cacheFile
	if json.Unmarshal(b, &c) != nil || c.Conn != f.Conn.String() {
		return
	}
	// Names in the cache came from S3 once: re-check them as untrusted.
	for i := range c.Tenants {
		p := &c.Tenants[i].Prefix
		p.Valid, p.Problem = true, ""
		if err := s3browse.CheckName(p.Name); err != nil {
			p.Valid, p.Problem = false, err.Error()
		}
	}
	for name := range c.Reports {
		if s3browse.CheckName(name) != nil {
			delete(c.Reports, name)
		}
	}
	f.remote, f.hosts, f.reports, f.remoteAt, f.cached = c.Tenants, c.Hosts, c.Reports, c.At, true
}

// DefaultCacheFile is where the last good S3 answer for conn is kept:
// under the user's cache folder, one file per endpoint, bucket and prefix.
func DefaultCacheFile(conn s3conn.Conn) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(conn.String()))
	return filepath.Join(dir, "litefleet", fmt.Sprintf("%s.json", hex.EncodeToString(sum[:8])))
}
