package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"time"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// DefaultParallel is how many tenants are verified at once.
const DefaultParallel = 8

// RunOptions say which tenants to verify and how.
type RunOptions struct {
	Options
	// Tenants are verified, in order; with All, every tenant of the bucket
	// (matching Match) instead.
	Tenants []string
	All     bool
	Match   string
	// Parallel tenants at a time (DefaultParallel when below 1).
	Parallel int
	// NoRecords skips the host records: every tenant's identity is then
	// unverifiable.
	NoRecords bool
	// Progress is told of each tenant finished, with the total.
	Progress func(done, total int)
}

// Summary counts the verdicts of a run.
type Summary struct {
	Tenants    int            `json:"tenants"`
	Verdicts   map[string]int `json:"verdicts"`
	Failed     int            `json:"failed"`
	Bytes      int64          `json:"bytes"`
	DurationMS int64          `json:"duration_ms"`
}

// Run verifies the tenants opt names, calling onReport (never at the same
// time twice) with each tenant's report as it is made. Restored copies go
// into a new folder under opt.TempDir (the system's temporary folder when
// empty), never beside a database, and the folder is removed at the end.
// An error is returned when the run could not be made at all or was
// cancelled; a tenant that could not be verified (S3 failed for it) is a
// report "unverifiable: …".
func Run(ctx context.Context, api API, opt RunOptions, onReport func(*Report)) (Summary, error) {
	start := time.Now()
	sum := Summary{Verdicts: map[string]int{}}
	if opt.Match != "" {
		if _, err := path.Match(opt.Match, ""); err != nil {
			return sum, fmt.Errorf("-match %q: %w", opt.Match, err)
		}
	}
	names := opt.Tenants
	if opt.All {
		prefixes, err := s3browse.ListTenants(ctx, api, opt.Conn)
		if err != nil {
			return sum, s3conn.Explain(err, opt.Conn)
		}
		names = nil
		for _, p := range prefixes {
			if ok, _ := path.Match(opt.Match, p.Name); opt.Match != "" && !ok {
				continue
			}
			names = append(names, p.Name)
		}
	}
	sum.Tenants = len(names)

	var reports map[string][]hostview.HostReport
	var err error
	if !opt.NoRecords && len(names) > 0 {
		// Keys confined to tenants' prefixes may not read .litefleet/: the
		// rest is still verified, the identity said unverifiable and why.
		if reports, err = hostview.AllHostReports(ctx, api, opt.Conn); err != nil {
			if ctx.Err() != nil {
				return sum, ctx.Err()
			}
			opt.NoRecord = "the host records could not be read: " + s3conn.Explain(err, opt.Conn).Error()
		}
	}

	if len(names) > 1 && opt.Uploads == nil {
		if opt.Uploads, err = ListUploads(ctx, api, opt.Conn); err != nil {
			return sum, s3conn.Explain(err, opt.Conn)
		}
	}

	dir, err := os.MkdirTemp(opt.TempDir, "litefleet-verify-")
	if err != nil {
		return sum, fmt.Errorf("make a folder for restored copies: %w", err)
	}
	defer os.RemoveAll(dir)

	var mu sync.Mutex
	done := 0
	emit := func(r *Report) {
		mu.Lock()
		defer mu.Unlock()
		done++
		v := r.Verdict
		sum.Verdicts[v]++
		if Failed(v) {
			sum.Failed++
		}
		sum.Bytes += r.Bytes
		if onReport != nil {
			onReport(r)
		}
		if opt.Progress != nil {
			opt.Progress(done, len(names))
		}
	}
	parallel := opt.Parallel
	if parallel < 1 {
		parallel = DefaultParallel
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, name := range names {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			o := opt.Options
			o.TempDir = dir
			o.Expected = expected(reports[name])
			r, err := Tenant(gctx, api, o, name)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				r = &Report{Tenant: name, Expected: o.Expected}
				r.fail(Unverifiable, err.Error())
			}
			emit(r)
			return nil
		})
	}
	err = g.Wait()
	sum.DurationMS = time.Since(start).Milliseconds()
	if err == nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.Canceled) {
		return sum, fmt.Errorf("verify cancelled after %d of %d tenants: %w", done, len(names), err)
	}
	return sum, err
}

// expected is what the best report says, when a live host that
// replicates the tenant makes it; a checksum that is not one is dropped
// (records are untrusted).
func expected(rs []hostview.HostReport) *Expected {
	if len(rs) == 0 || rs[0].Silent || !rs[0].Replicates() || rs[0].Replicated == 0 {
		return nil
	}
	e := &Expected{Host: rs[0].Host, TXID: rs[0].Replicated, Live: true}
	if c, err := ltx.ParseChecksum(rs[0].Checksum); err == nil {
		e.Checksum = c.String()
	}
	return e
}
