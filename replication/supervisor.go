package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/restore"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/s3browse"
)

// CheckTimeout bounds the first request to a bucket, so a wrong endpoint or
// bucket is an error within seconds rather than a hang.
const CheckTimeout = 8 * time.Second

// LeaseRenewEvery is how often a held lease is renewed; Litestream's lease
// lives 30 s, so two renewals can fail before it expires.
const LeaseRenewEvery = lss3.DefaultLeaseTTL / 3

// ErrLeased is returned (wrapped in a *LeaseError) when another replicator
// holds a tenant's lease.
var ErrLeased = errors.New("tenant is leased by another replicator")

// LeaseError says who holds a tenant's lease.
type LeaseError struct {
	Tenant    string
	Owner     string
	ExpiresAt time.Time
}

func (e *LeaseError) Error() string {
	return fmt.Sprintf("tenant %s is already replicated by %s (lease until %s): stop that replicator first, or wait for its lease to expire",
		fleet.Printable(e.Tenant), fleet.Printable(fleet.LeaseHolder(e.Owner)), e.ExpiresAt.Format(time.RFC3339))
}

func (e *LeaseError) Is(target error) bool { return target == ErrLeased }

// Supervisor replicates many tenant databases in one process with
// Litestream's Store, holding each tenant's lease in S3 while it runs.
// Its methods are safe for concurrent use.
type Supervisor struct {
	logger *slog.Logger // litefleet's own messages
	lib    *tenantLogs  // rewrites Litestream's db=FILE into db=TENANT

	mu      sync.Mutex
	stores  []*storeGroup
	running map[string]*replication // by PrefixKey of the tenant's URL
	clients map[string]*s3.Client   // by connection, for leases and checks
	closed  bool
}

// storeGroup is one Litestream Store. Databases share a store when they
// share a retention; a second store is opened when two databases have the
// same file name, because Litestream names a database in its logs by its
// file name alone.
type storeGroup struct {
	store     *litestream.Store
	retention time.Duration
	bases     map[string]bool
}

// replication is one running tenant.
type replication struct {
	target  fleet.Target
	db      *litestream.DB
	group   *storeGroup
	leaser  *lss3.Leaser
	lease   *litestream.Lease
	started time.Time
	stop    context.CancelFunc
	done    chan struct{} // closed when the lease keeper has returned
}

// NewSupervisor returns a Supervisor logging to logger. Litestream's own
// messages go to libLogger's handler with db= set to the tenant name.
func NewSupervisor(logger, libLogger *slog.Logger) *Supervisor {
	return &Supervisor{
		logger:  logger,
		lib:     newTenantLogs(libLogger.Handler()),
		running: map[string]*replication{},
		clients: map[string]*s3.Client{},
	}
}

func (s *Supervisor) client(ctx context.Context, c s3browse.Conn) (*s3.Client, error) {
	key := c.Endpoint + "\x00" + c.Bucket + "\x00" + c.Region + "\x00" + c.AccessKeyID + "\x00" + c.SecretAccessKey
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl, ok := s.clients[key]; ok {
		return cl, nil
	}
	cl, err := s3browse.NewClient(ctx, c)
	if err != nil {
		return nil, err
	}
	s.clients[key] = cl
	return cl, nil
}

func runKey(t fleet.Target) string {
	return t.Conn.Endpoint + "\x00" + t.Conn.Bucket + "\x00" + fleet.PrefixKey(t.Conn.TenantPath(t.Tenant.Name))
}

// Start begins replicating t: it checks the database and the bucket, takes
// the tenant's lease, and registers the database with Litestream. It
// refuses a tenant whose prefix is already replicated, here or elsewhere.
func (s *Supervisor) Start(ctx context.Context, t fleet.Target) error {
	if !t.Tenant.Verdict.Usable() {
		return fmt.Errorf("%s: %s", fleet.Printable(t.Path), t.Tenant.Note)
	}
	key := runKey(t)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("supervisor is shutting down")
	}
	if r, ok := s.running[key]; ok {
		s.mu.Unlock()
		if r.target.Path == t.Path {
			return fmt.Errorf("tenant %s is already replicating from %s", fleet.Printable(t.Tenant.Name), fleet.Printable(t.Path))
		}
		return fmt.Errorf("tenant %s: prefix %s is already replicated from %s: give %s its own -db-name",
			fleet.Printable(t.Tenant.Name), t.Conn.URL(t.Tenant.Name), fleet.Printable(r.target.Path), fleet.Printable(t.Path))
	}
	for _, r := range s.running {
		if r.target.Path == t.Path {
			s.mu.Unlock()
			return fmt.Errorf("%s is already replicating as tenant %s", fleet.Printable(t.Path), fleet.Printable(r.target.Tenant.Name))
		}
	}
	// Reserve the key so a concurrent Start of the same tenant is refused.
	r := &replication{target: t, done: make(chan struct{})}
	s.running[key] = r
	s.mu.Unlock()

	// Only now, once the path is known not to be open here: closing any
	// descriptor of a file drops the process's POSIX locks on it, SQLite's
	// included.
	if err := checkDatabaseFile(t.Path); err != nil {
		s.mu.Lock()
		delete(s.running, key)
		s.mu.Unlock()
		return err
	}

	if err := s.start(ctx, r); err != nil {
		s.mu.Lock()
		delete(s.running, key)
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Supervisor) start(ctx context.Context, r *replication) error {
	t := r.target
	name := t.Tenant.Name
	client, err := s.client(ctx, t.Conn)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", fleet.Printable(name), err)
	}
	if err := s3browse.Check(ctx, client, t.Conn, CheckTimeout); err != nil {
		return fmt.Errorf("tenant %s: %w", fleet.Printable(name), err)
	}

	leaser := lss3.NewLeaser()
	leaser.SetLogger(s.logger)
	leaser.SetClient(client)
	leaser.Bucket = t.Conn.Bucket
	leaser.Path = t.Conn.TenantPath(name)
	lctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	lease, err := leaser.AcquireLease(lctx)
	cancel()
	if err != nil {
		var held *litestream.LeaseExistsError
		if errors.As(err, &held) {
			return &LeaseError{Tenant: name, Owner: held.Owner, ExpiresAt: held.ExpiresAt}
		}
		return fmt.Errorf("tenant %s: take lease: %w", fleet.Printable(name), s3browse.Explain(err, t.Conn))
	}
	r.leaser, r.lease = leaser, lease

	rc, err := restore.NewReplicaClient(ctx, t.Conn, name, nil)
	if err != nil {
		s.releaseLease(r)
		return fmt.Errorf("tenant %s: %w", fleet.Printable(name), err)
	}

	db := litestream.NewDB(t.Path)
	db.Replica = litestream.NewReplicaWithClient(db, &txLogClient{ReplicaClient: rc, tenant: name, logger: s.logger})
	r.db = db

	group := s.group(t.Retention, filepath.Base(t.Path), name)
	r.group = group
	if err := group.store.RegisterDB(db); err != nil {
		s.mu.Lock()
		delete(group.bases, filepath.Base(t.Path))
		s.lib.forget(group, filepath.Base(t.Path))
		s.mu.Unlock()
		s.releaseLease(r)
		return fmt.Errorf("tenant %s: open %s: %w", fleet.Printable(name), fleet.Printable(t.Path), err)
	}
	r.started = time.Now()

	keepCtx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go s.keepLease(keepCtx, r)

	s.logger.Info("replicating", "db", name, "path", t.Path, "replica", t.Conn.URL(name), "lease_owner", lease.Owner)
	return nil
}

// group finds or opens the store for a database.
func (s *Supervisor) group(retention time.Duration, base, tenant string) *storeGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.stores {
		if g.retention == retention && !g.bases[base] {
			g.bases[base] = true
			s.lib.name(g, base, tenant)
			return g
		}
	}
	store := litestream.NewStore(nil, litestream.DefaultCompactionLevels)
	if retention > 0 {
		store.SnapshotRetention = retention
	}
	g := &storeGroup{store: store, retention: retention, bases: map[string]bool{base: true}}
	store.Logger = slog.New(s.lib.handlerFor(g))
	s.lib.name(g, base, tenant)
	// Open with no databases starts the compaction, snapshot and retention
	// monitors; databases join with RegisterDB.
	if err := store.Open(context.Background()); err != nil {
		// Open fails only on invalid compaction levels, which are Litestream's defaults.
		panic(fmt.Sprintf("open litestream store: %v", err))
	}
	s.stores = append(s.stores, g)
	return g
}

// keepLease renews r's lease until stopped. When the lease is lost (taken
// by someone else, or expired because S3 could not be reached), replication
// of the tenant stops: writing on without the lease risks two writers.
func (s *Supervisor) keepLease(ctx context.Context, r *replication) {
	defer close(r.done)
	ticker := time.NewTicker(LeaseRenewEvery)
	defer ticker.Stop()
	name := r.target.Tenant.Name
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		rctx, cancel := context.WithTimeout(ctx, LeaseRenewEvery)
		lease, err := r.leaser.RenewLease(rctx, r.lease)
		cancel()
		if err == nil {
			r.lease = lease
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, litestream.ErrLeaseNotHeld) || time.Now().After(r.lease.ExpiresAt) {
			s.logger.Error("lease lost, replication stopped", "db", name, "error", err)
			go func() {
				// Stop needs keepLease to have returned; run it apart.
				if err := s.stopTenant(context.Background(), r, false); err != nil {
					s.logger.Error("stop after lost lease", "db", name, "error", err)
				}
			}()
			return
		}
		s.logger.Warn("lease renewal failed, will retry", "db", name, "error", s3browse.Explain(err, r.target.Conn), "expires_at", r.lease.ExpiresAt.Format(time.RFC3339))
	}
}

// Stop stops replicating the tenant of t after a final sync, and releases
// its lease.
func (s *Supervisor) Stop(ctx context.Context, t fleet.Target) error {
	s.mu.Lock()
	r, ok := s.running[runKey(t)]
	s.mu.Unlock()
	if !ok || r.db == nil {
		return fmt.Errorf("tenant %s is not replicating in this process", fleet.Printable(t.Tenant.Name))
	}
	return s.stopTenant(ctx, r, true)
}

func (s *Supervisor) stopTenant(ctx context.Context, r *replication, release bool) error {
	s.mu.Lock()
	key := runKey(r.target)
	if s.running[key] != r {
		s.mu.Unlock()
		return nil // already stopped
	}
	delete(s.running, key)
	s.mu.Unlock()

	r.stop()
	<-r.done
	name := r.target.Tenant.Name
	// UnregisterDB closes the database, which makes a final sync to S3.
	err := r.group.store.UnregisterDB(ctx, r.db.Path())
	s.mu.Lock()
	delete(r.group.bases, filepath.Base(r.target.Path))
	s.lib.forget(r.group, filepath.Base(r.target.Path))
	s.mu.Unlock()
	if release {
		s.releaseLease(r)
	}
	if err != nil {
		s.logger.Error("final sync failed", "db", name, "error", err)
		return fmt.Errorf("tenant %s: final sync: %w", fleet.Printable(name), err)
	}
	pos := r.db.Replica.Pos()
	s.logger.Info("stopped", "db", name, "txid", pos.TXID.String())
	return nil
}

func (s *Supervisor) releaseLease(r *replication) {
	if r.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
	defer cancel()
	if err := r.leaser.ReleaseLease(ctx, r.lease); err != nil && !errors.Is(err, lss3.ErrLeaseAlreadyReleased) {
		s.logger.Warn("release lease", "db", r.target.Tenant.Name, "error", err)
	}
}

// Close stops every tenant (final sync, lease released) and the stores.
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	var all []*replication
	for key, r := range s.running {
		if r.db != nil {
			all = append(all, r)
			delete(s.running, key)
		}
	}
	stores := slices.Clone(s.stores)
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].target.Tenant.Name < all[j].target.Tenant.Name })

	// Lease keepers first, so no lost-lease stop runs during the final syncs.
	for _, r := range all {
		r.stop()
		<-r.done
	}
	// Closing a store stops its compaction and snapshot monitors before it
	// closes its databases with a final sync. Unregistering databases one
	// by one while those monitors run races inside Litestream v0.5.18 (a
	// snapshot reading a file that DB.Close is closing).
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, g := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.store.Close(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("final sync: %w", err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sem := make(chan struct{}, 16)
	for _, r := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.releaseLease(r)
			s.logger.Info("stopped", "db", r.target.Tenant.Name, "txid", r.db.Replica.Pos().TXID.String())
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RunStatus is what the supervisor knows of one running tenant.
type RunStatus struct {
	Tenant         string    `json:"tenant"`
	Path           string    `json:"path"`
	Replica        string    `json:"replica"`
	LocalTXID      uint64    `json:"local_txid"`
	ReplicatedTXID uint64    `json:"replicated_txid"`
	LastSync       time.Time `json:"last_sync,omitzero"`
	Started        time.Time `json:"started"`
	LeaseExpires   time.Time `json:"lease_expires,omitzero"`
}

// Running lists the tenants replicating in this process, by name.
func (s *Supervisor) Running() []RunStatus {
	s.mu.Lock()
	var out []RunStatus
	for _, r := range s.running {
		if r.db == nil {
			continue
		}
		st := RunStatus{
			Tenant:   r.target.Tenant.Name,
			Path:     r.target.Path,
			Replica:  r.target.Conn.URL(r.target.Tenant.Name),
			Started:  r.started,
			LastSync: r.db.LastSuccessfulSyncAt(),
		}
		if pos, err := r.db.Pos(); err == nil {
			st.LocalTXID = uint64(pos.TXID)
		}
		st.ReplicatedTXID = uint64(r.db.Replica.Pos().TXID)
		out = append(out, st)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}

// Sync forces an immediate sync of a running tenant to S3 and waits for it.
func (s *Supervisor) Sync(ctx context.Context, t fleet.Target) error {
	s.mu.Lock()
	r, ok := s.running[runKey(t)]
	s.mu.Unlock()
	if !ok || r.db == nil {
		return fmt.Errorf("tenant %s is not replicating in this process", fleet.Printable(t.Tenant.Name))
	}
	_, err := r.group.store.SyncDB(ctx, r.db.Path(), true)
	return err
}

// checkDatabaseFile refuses a path that is missing or not an SQLite file,
// before Litestream would create or convert anything.
func checkDatabaseFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no database at %s: check -dsn or the config path", fleet.Printable(path))
		}
		return fmt.Errorf("open %s: %w", fleet.Printable(path), err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", fleet.Printable(path), err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a folder, not a database: give the .db file", fleet.Printable(path))
	}
	if st.Size() == 0 {
		return nil // a new, empty database: SQLite writes the header on first use
	}
	head := make([]byte, 16)
	if _, err := io.ReadFull(f, head); err != nil || string(head) != "SQLite format 3\x00" {
		return fmt.Errorf("%s is not an SQLite database: check -dsn", fleet.Printable(path))
	}
	return nil
}

// txLogClient logs every level-0 upload, one per synced change, in the
// seed's shape: new transaction: db=TENANT pre=TXID post=TXID elapsed=D.
type txLogClient struct {
	*lss3.ReplicaClient
	tenant string
	logger *slog.Logger
}

func (c *txLogClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	start := time.Now()
	info, err := c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	if err == nil && level == 0 {
		pre := ltx.TXID(0)
		if minTXID > 0 {
			pre = minTXID - 1
		}
		c.logger.Info("new transaction", "db", c.tenant, "pre", pre.String(), "post", maxTXID.String(), "elapsed", roundElapsed(time.Since(start)))
	}
	return info, err
}

func roundElapsed(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// Replicating reports whether this process replicates the database at path,
// and as which tenant.
// Paths are compared cleaned and absolute; fleet.Target paths are absolute.
func (s *Supervisor) Replicating(path string) (tenant string, ok bool) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		if r.db != nil && filepath.Clean(r.target.Path) == path {
			return r.target.Tenant.Name, true
		}
	}
	return "", false
}
