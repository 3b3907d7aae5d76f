package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
	"github.com/litefleet/litefleet/verify"
)

// Backend is what the UI asks of the fleet; see common.Backend.
type Backend = common.Backend

// Finding is one naming problem; see common.Finding.
type Finding = common.Finding

// FleetBackend is the Backend of the real program: a *fleet.Fleet for the
// view, a *replication.Engine for replication in this process, and
// restore.NewPlan/Restore. Safe for concurrent use: the UI calls it from
// tea.Cmds, which run on their own goroutines.
type FleetBackend struct {
	eng     *replication.Engine
	noCache bool
	profile string
	config  string
	dirs    []string

	mu sync.Mutex
	fl *fleet.Fleet // replaced whole by SetBucket/SetPrefix

	closeOnce sync.Once
	closeErr  error
}

// FleetOptions are the parts of the command line the backend needs beyond
// the fleet itself.
type FleetOptions struct {
	NoCache bool     // -no-cache: keep no S3 answer on disk
	Config  string   // -config, for the equivalent command lines
	Dirs    []string // -dir, for the equivalent command lines
}

// NewFleetBackend wraps fl and eng. fl.Options.Replicating is set to ask
// eng, so the table shows replications started here, and so is
// fl.Discover.InUse: discovery must not open and close a file this process
// replicates, which would drop SQLite's POSIX locks on it.
func NewFleetBackend(fl *fleet.Fleet, eng *replication.Engine, opt FleetOptions) *FleetBackend {
	replicating := func(path string) bool {
		_, ok := eng.Replicating(path)
		return ok
	}
	fl.Options.Replicating = replicating
	fl.Discover.InUse = replicating
	return &FleetBackend{fl: fl, eng: eng, noCache: opt.NoCache, profile: os.Getenv("AWS_PROFILE"), config: opt.Config, dirs: opt.Dirs}
}

func (b *FleetBackend) fleet() *fleet.Fleet {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fl
}

// Context describes the fleet's connection, without credentials.
func (b *FleetBackend) Context() common.Context {
	fl := b.fleet()
	c := fl.Conn
	prefix := c.Prefix
	if prefix == "" {
		prefix = s3conn.DefaultPrefix
	}
	return common.Context{
		Bucket: c.Bucket, Endpoint: c.Endpoint, Prefix: prefix, Region: c.Region,
		Profile: b.profile, Dirs: b.dirs, Config: b.config, Roots: fl.Discover.Dirs,
	}
}

// Refresh refreshes the fleet view.
func (b *FleetBackend) Refresh(ctx context.Context) (*fleet.View, error) {
	return b.fleet().Refresh(ctx)
}

// Inspect lists a tenant's restore points.
func (b *FleetBackend) Inspect(ctx context.Context, tenant string) (*s3browse.Tenant, error) {
	return b.fleet().Inspect(ctx, tenant)
}

// StartReplication replicates l in this process. The target (bucket,
// prefix, retention, credentials) is the one the replicate command would
// build from the same flags, collisions included.
func (b *FleetBackend) StartReplication(ctx context.Context, l tenants.Local) error {
	return b.eng.Replicate(l.Path)
}

// StopReplication stops replicating l after a final sync.
func (b *FleetBackend) StopReplication(ctx context.Context, l tenants.Local) error {
	return b.eng.Stop(ctx, l.Path)
}

// Validate refreshes the fleet and lists its naming problems.
func (b *FleetBackend) Validate(ctx context.Context) ([]common.Finding, error) {
	fl := b.fleet()
	v, err := fl.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	if v.LocalErr != "" {
		return nil, errors.New(v.LocalErr)
	}
	return fleet.Findings(v, fl.Conn.URL), nil
}

func (b *FleetBackend) restoreOptions(opt restore.Options) (restore.Options, s3conn.API, error) {
	fl := b.fleet()
	if fl.API == nil {
		return opt, nil, errors.New("no bucket: restore needs -bucket or -config")
	}
	opt.Conn = fl.Conn
	opt.IsReplicating = b.eng.Replicating
	return opt, fl.API, nil
}

// PlanRestore plans a restore from the fleet's bucket.
func (b *FleetBackend) PlanRestore(ctx context.Context, opt restore.Options) (*restore.Plan, error) {
	opt, api, err := b.restoreOptions(opt)
	if err != nil {
		return nil, err
	}
	return restore.NewPlan(ctx, api, opt)
}

// Restore restores from the fleet's bucket; it never writes over a
// database this process replicates.
func (b *FleetBackend) Restore(ctx context.Context, opt restore.Options) (*restore.Result, error) {
	opt, api, err := b.restoreOptions(opt)
	if err != nil {
		return nil, err
	}
	return restore.Run(ctx, api, opt)
}

// Verify verifies one tenant from the fleet's bucket, with the host
// records' word on what its primary held, as `litefleet verify` does.
func (b *FleetBackend) Verify(ctx context.Context, tenant string) (*verify.Report, error) {
	fl := b.fleet()
	if fl.API == nil {
		return nil, errors.New("no bucket: verify needs -bucket or -config")
	}
	api, ok := fl.API.(verify.API)
	if !ok {
		return nil, errors.New("verify: this S3 client cannot list multipart uploads")
	}
	var rep *verify.Report
	_, err := verify.Run(ctx, api, verify.RunOptions{Options: verify.Options{Conn: fl.Conn}, Tenants: []string{tenant}, Parallel: 1},
		func(r *verify.Report) { rep = r })
	switch {
	case err != nil:
		return nil, err
	case rep == nil:
		return nil, fmt.Errorf("verify %s: no verdict", untrusted.Printable(tenant))
	}
	return rep, nil
}

// SetBucket points the S3 side at another bucket.
func (b *FleetBackend) SetBucket(ctx context.Context, bucket string) error {
	return b.switchConn(ctx, func(c *s3conn.Conn) { c.Bucket = bucket })
}

// SetPrefix points the S3 side at another folder of tenant prefixes.
func (b *FleetBackend) SetPrefix(ctx context.Context, prefix string) error {
	return b.switchConn(ctx, func(c *s3conn.Conn) {
		c.Prefix = prefix
		if prefix == "" {
			c.Prefix = "/" // tenants at the bucket root, as in a config file
		}
	})
}

// switchConn builds a new Fleet for the changed connection: a new S3
// client, and no memory of the old bucket's answer, so that nothing of it
// is ever shown as the new one's. Replications keep running.
func (b *FleetBackend) switchConn(ctx context.Context, change func(*s3conn.Conn)) error {
	old := b.fleet()
	conn := old.Conn
	change(&conn)
	if err := conn.Validate(); err != nil {
		return err
	}
	client, err := s3conn.NewClient(ctx, conn)
	if err != nil {
		return err
	}
	nf := &fleet.Fleet{Conn: conn, API: client, Discover: old.Discover, Options: old.Options, FullScan: old.FullScan}
	if !b.noCache {
		nf.CacheFile = fleet.DefaultCacheFile(conn)
	}
	b.mu.Lock()
	b.fl = nf
	b.mu.Unlock()
	return nil
}

// Close stops every replication started here, each with a final sync.
// Later calls return the first one's error: the program closes the
// backend when the UI quits, and again on its way out after a signal.
func (b *FleetBackend) Close(ctx context.Context) error {
	b.closeOnce.Do(func() { b.closeErr = b.eng.Close(ctx) })
	return b.closeErr
}
