// Package replication is litefleet's replication engine: a reconciler that
// drives every tenant database it is given toward being replicated into
// its tenant's prefix, with Litestream used as a library, for as long as
// the process runs.
//
// For every tenant it knows what should be (from -dsn, -config, the -dir
// folders or the terminal UI's selection) and what is (the file on disk,
// the tenant's claim, Litestream's positions, the replica's), and it runs
// one job at a time per tenant to close the gap: start, wake, sleep,
// reopen, stop. Idle tenants sleep: their Litestream DB is closed, so they
// hold no goroutine, descriptor or S3 request until a change wakes them.
// Liveness is proven per host (package hosts), not per tenant.
package replication

import (
	"container/heap"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"
	"golang.org/x/time/rate"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
	"github.com/litefleet/litefleet/verify"
)

// Options tune the engine. Zero values take the defaults.
type Options struct {
	// Logger gets litefleet's own lines: state changes and the seed's
	// "new transaction" line. LibLogger gets Litestream's, with db=TENANT.
	Logger, LibLogger *slog.Logger
	// Host names this replicator in claims and heartbeats (-host);
	// the machine's host name by default.
	Host    string
	Version string
	// SleepAfter is how long a tenant stays open without a change before it
	// sleeps (-sleep-after, default 1m); negative: never sleep.
	SleepAfter time.Duration
	// Sweep is how often every file is checked with stat, behind the
	// folder watcher (default 10s: a replaced file is noticed within it).
	Sweep time.Duration
	// SweepRate is how many sleeping tenants a second the sweep stats at
	// most (default 1,000): a sweep of 10,000 tenants takes the 10 s of
	// Sweep, one of 100,000 100 s, not a burst of 200,000 stat calls
	// every Sweep.
	SweepRate int
	// Rescan is how often the -dir folders are listed again, behind the
	// watcher (default 30s).
	Rescan time.Duration
	// MaxAwake is how many tenants may be open at once before the least
	// recently changed idle ones are put to sleep early (default 128).
	MaxAwake int
	// Parallel bounds the jobs in flight (default 16).
	Parallel int
	// Takeover names tenants whose diverged replica may be replaced by the
	// local file, after its history is kept under an archive prefix.
	Takeover []string
	// Timing is the host protocol's timing (tests shorten it), and Now its
	// clock (time.Now when nil): tests move it to fence the host. Now is
	// the engine's one clock: every read of the time in the engine and in
	// hosts goes through it (TestOneClock). Deadlines and the link's speed
	// are durations between two of its readings, so in production it must
	// be time.Now, whose readings carry the monotonic clock.
	Timing hosts.Timing
	Now    func() time.Time
	// SavePagesEvery is how often an awake tenant's page table is saved
	// beside Litestream's state (default 1m): after a crash, the restart
	// rolls the saved table forward through the local LTX files written
	// since, and uploads only the pages the WAL no longer holds instead of
	// a snapshot of the whole database. Saving writes 16 bytes per page.
	SavePagesEvery time.Duration
	// Retry is the first retry delay of a failed or refused tenant; it
	// doubles up to five minutes (default 5s).
	Retry time.Duration
	// Observer is told of every sync's duration and latency, for the
	// process's histograms (-addr's /metrics); nil: nobody is.
	Observer Observer
	// VerifyEvery, when positive, verifies every tenant this host
	// replicates once per period, one at a time, spread evenly over it
	// (-verify-every; see verifyloop.go).
	VerifyEvery time.Duration
	// VerifyBandwidth caps, in bytes a second, what those verifications
	// download (-verify-bandwidth); 0: no cap.
	VerifyBandwidth int64
}

// Observer is told of each upload of a change (a level-0 LTX file, one
// sync) as it ends. It is called from every tenant's upload path at once:
// it must be safe for concurrent use and quick.
type Observer interface {
	// ObserveSync: an upload of a change took d, whether it succeeded or
	// failed (the failures are counted apart, in sync errors).
	ObserveSync(d time.Duration)
	// ObserveCommitToS3: a change is in S3, latency after Litestream took
	// it from the WAL as a new local TXID (the LTX file's timestamp).
	ObserveCommitToS3(latency time.Duration)
}

// noObserver observes nothing.
type noObserver struct{}

func (noObserver) ObserveSync(time.Duration)       {}
func (noObserver) ObserveCommitToS3(time.Duration) {}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.LibLogger == nil {
		o.LibLogger = o.Logger
	}
	if o.Host == "" {
		o.Host = defaultHost()
	}
	if o.SleepAfter == 0 {
		o.SleepAfter = time.Minute
	}
	if o.SavePagesEvery <= 0 {
		o.SavePagesEvery = time.Minute
	}
	if o.Sweep <= 0 {
		o.Sweep = 10 * time.Second
	}
	if o.SweepRate <= 0 {
		o.SweepRate = 1000
	}
	if o.Rescan <= 0 {
		o.Rescan = 30 * time.Second
	}
	if o.MaxAwake <= 0 {
		o.MaxAwake = 128
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Timing == (hosts.Timing{}) {
		o.Timing = hosts.DefaultTiming
	}
	if o.Retry <= 0 {
		o.Retry = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now // the one default clock (TestOneClock)
	}
	return o
}

// maxCompacting is how many tenants' compactions run at once: a level-1
// compaction of 30 s of one-a-second commits holds about 30 files open.
const maxCompacting = 4

const (
	maxRetry       = 5 * time.Minute
	maxLeasedRetry = 30 * time.Second
)

// defaultHost is the machine's host name, made a valid host name.
func defaultHost() string {
	h, _ := os.Hostname()
	h = strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '-'
	}, h)
	h = strings.TrimLeft(h, ".")
	if len(h) > 50 {
		h = h[:50]
	}
	if h == "" {
		h = "host"
	}
	return h
}

// Source says which databases to replicate. It is the one way targets are
// built, for the replicate command and the terminal UI alike.
type Source struct {
	// Targets are databases named one by one (-dsn, a config's dbs).
	Targets []tenants.Target
	// Dirs are folders whose every database is a tenant, replicated into
	// DirConn's bucket with Retention.
	Dirs      []string
	Recursive bool
	DirConn   s3conn.Conn
	Retention time.Duration
	// HostKeys are the credentials of the host's own objects (heartbeats,
	// host records); a bucket's first tenant's when empty.
	HostKeys s3conn.Conn
	// OnRequest replicates only what Replicate names (the terminal UI);
	// otherwise every target and every database found in Dirs.
	OnRequest bool
}

// Engine replicates a fleet of tenants. Its methods are safe for
// concurrent use.
type Engine struct {
	opt Options
	src Source
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
	slots  chan struct{}
	// looped is when the scheduler last ran (unix ns): Alive.
	looped atomic.Int64
	// compacting bounds the maintenance jobs in flight: a compaction
	// opens every file it merges at once, and 100 tenants woken together
	// compact together.
	compacting chan struct{}

	mu      sync.Mutex
	tenants map[string]*tenant // by prefix key
	byPath  map[string]*tenant // by absolute path
	buckets map[string]*bucket
	clients s3conn.Clients
	stores  map[time.Duration]*litestream.Store
	// ready holds the tenants that need a job now, in order, and urgent
	// those among them with data to upload (a write seen, an open
	// tenant's job): urgent ones go first, and bulk ones (first starts of
	// idle tenants, retries) never take every job slot (see schedule).
	ready   []*tenant
	urgent  []*tenant
	bulkRun int // bulk jobs in flight
	timers  timerHeap
	// verifyCap is -verify-bandwidth's limiter, shared by every
	// verification; nil: none.
	verifyCap *rate.Limiter
	// Kept as tenants change, so that no hot path walks every tenant:
	// how many are in each state (awaitFirst), which have a job in
	// flight, which are leased elsewhere (watchHoldersLocked), and which
	// changed since the host record last looked at them (publishLocked).
	counts   map[State]int
	busySet  map[*tenant]bool
	leased   map[*tenant]bool
	recDirty map[*tenant]bool
	// all lists every tenant once, in the order added: the host record
	// re-reads a slice of it per beat as a safety net (recordSweepLocked).
	all       []*tenant
	recCursor int
	// seededAt is when the start listing (seed.go) was last made, and
	// reseeding says one is under way.
	seededAt  time.Time
	reseeding bool
	// began is when the engine was made: a tenant not started yet whose
	// files changed since has data to upload (hot).
	began    time.Time
	awake    map[*tenant]bool
	takeover map[string]bool
	fallback string // the host name when another process here uses Host
	started  bool
	isReady  bool // Start succeeded: tenants that never replicate fail the stop
	closing  bool
	watch    *watcher
}

// New returns an engine for src; Start starts it.
func New(opt Options, src Source) (*Engine, error) {
	named := opt.Host != ""
	opt = opt.withDefaults()
	if err := layout.ValidateHost(opt.Host); err != nil {
		return nil, err
	}
	for _, d := range src.Dirs {
		if err := src.DirConn.Validate(); err != nil {
			return nil, fmt.Errorf("-dir %s: %w", untrusted.Printable(d), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		opt: opt, src: src, log: opt.Logger,
		ctx: ctx, cancel: cancel,
		kick:       make(chan struct{}, 1),
		slots:      make(chan struct{}, opt.Parallel),
		compacting: make(chan struct{}, maxCompacting),
		tenants:    map[string]*tenant{},
		byPath:     map[string]*tenant{},
		buckets:    map[string]*bucket{},
		stores:     map[time.Duration]*litestream.Store{},
		awake:      map[*tenant]bool{},
		takeover:   map[string]bool{},
		counts:     map[State]int{},
		busySet:    map[*tenant]bool{},
		leased:     map[*tenant]bool{},
		recDirty:   map[*tenant]bool{},
		began:      opt.Now(),
	}
	for _, name := range opt.Takeover {
		e.takeover[layout.PrefixKey(name)] = true
	}
	if !named {
		e.fallback = fmt.Sprintf("%s-%d", opt.Host, os.Getpid())
	}
	return e, nil
}

// Start adds the source's databases, starts the heartbeat of every bucket
// they use and the folder watcher, and begins reconciling. With a source
// that replicates everything, it waits until every tenant has left
// "starting" (or ctx ends) and fails when none of them can replicate.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("replication engine already started")
	}
	e.started = true
	e.mu.Unlock()

	var want []tenants.Target
	want = append(want, e.src.Targets...)
	found, err := e.scanDirs()
	if err != nil {
		return err
	}
	want = append(want, found...)

	w, err := newWatcher(e)
	if err != nil {
		return err
	}
	e.watch = w

	e.mu.Lock()
	for _, t := range want {
		e.addLocked(t, !e.src.OnRequest)
	}
	e.markCollisionsLocked()
	tenants := e.sortedLocked()
	e.mu.Unlock()

	// Every bucket needs its heartbeat before any of its tenants is claimed.
	for _, t := range tenants {
		if t.wanted {
			if err := e.awaitBucket(ctx, t.target.Conn); err != nil {
				return err
			}
		}
	}
	e.seedFleet(ctx, tenants)
	e.mu.Lock()
	e.seededAt = e.opt.Now()
	e.mu.Unlock()
	for _, t := range tenants {
		e.watch.add(t.path)
	}
	for _, d := range e.src.Dirs {
		e.watch.addDir(d, e.src.Recursive)
	}

	e.wg.Add(3)
	go e.loop()
	go e.watch.run(e.ctx)
	go e.sweepLoop()
	if e.opt.VerifyEvery > 0 {
		if e.opt.VerifyBandwidth > 0 {
			e.verifyCap = verify.NewBandwidth(e.opt.VerifyBandwidth)
		}
		e.wg.Add(1)
		go e.verifyLoop()
	}

	if !e.src.OnRequest && len(tenants) == 0 {
		if len(e.src.Dirs) == 0 {
			return e.nothingFound()
		}
		e.log.Warn("no database yet: watching the folders", "dirs", strings.Join(e.src.Dirs, ","))
	}
	if !e.src.OnRequest && len(tenants) > 0 {
		if err := e.awaitFirst(ctx); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.isReady = true
	e.mu.Unlock()
	return nil
}

func (e *Engine) nothingFound() error {
	if len(e.src.Dirs) > 0 {
		return fmt.Errorf("no database found in %s: looked for *.db, *.sqlite, *.sqlite3", strings.Join(e.src.Dirs, ", "))
	}
	return errors.New("nothing to replicate")
}

// StartError says no tenant could start; it lists each one's reason.
type StartError struct{ Tenants []TenantStatus }

func (e *StartError) Error() string {
	by := map[State]int{}
	for _, t := range e.Tenants {
		by[t.State]++
	}
	var parts []string
	for _, s := range States {
		if n := by[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return fmt.Sprintf("no database can replicate (%s): see the lines above", strings.Join(parts, ", "))
}

// awaitFirst waits for every tenant's first verdict. It polls the count
// of starting tenants, kept as states change: the fleet's status is built
// once, when none is left.
func (e *Engine) awaitFirst(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		e.mu.Lock()
		starting := e.counts[StateStarting]
		e.mu.Unlock()
		if starting > 0 {
			select {
			case <-ctx.Done():
				return nil // stopping before every tenant started is no error
			case <-tick.C:
			}
			continue
		}
		st := e.Status()
		open := e.openWithClaim()
		starting, ok := 0, 0
		for _, s := range st {
			switch {
			case s.State == StateStarting:
				starting++
			case s.State == StateReplicating, s.State == StateSleeping, s.State == StateLeased:
				// Leased elsewhere is a standby's normal state: the tenant
				// is taken when its host dies.
				ok++
			case (s.State == StateLeaseLost || s.State == StateSyncFailing) && open[s.Path]:
				// Open, its claim held, its first upload failed (a big
				// snapshot cut halfway): it retries, as any open tenant.
				ok++
			}
		}
		if starting == 0 {
			if ok == 0 {
				return &StartError{Tenants: st}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // stopping before every tenant started is no error
		case <-tick.C:
		}
	}
}

// openWithClaim lists the paths of the tenants open in Litestream with
// their claim held.
func (e *Engine) openWithClaim() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]bool{}
	for _, t := range e.byPath {
		if t.run != nil && t.claim != nil {
			out[t.path] = true
		}
	}
	return out
}

// seenTXID is a local TXID and when the engine first saw it.
type seenTXID struct {
	txid uint64
	at   time.Time
}

// maxPending bounds a tenant's pending list: past it, the newest entries
// are merged, so lag stays right and memory bounded for any backlog.
const maxPending = 64

// notePending records the positions seen at now: a new local TXID joins
// the list, and those the replica holds leave it.
func (t *tenant) notePending(local, repl uint64, now time.Time) {
	if n := len(t.pending); n > 0 && local < t.pending[n-1].txid {
		t.pending = nil // another history: the file was replaced
	}
	if local > repl && (len(t.pending) == 0 || local > t.pending[len(t.pending)-1].txid) {
		if len(t.pending) == maxPending {
			t.pending[len(t.pending)-1].txid = local
		} else {
			t.pending = append(t.pending, seenTXID{txid: local, at: now})
		}
	}
	i := 0
	for i < len(t.pending) && t.pending[i].txid <= repl {
		i++
	}
	t.pending = t.pending[i:]
	if len(t.pending) == 0 {
		t.pending = nil
	}
}

// tenant is one database the engine knows, and everything it knows of it.
// Fields are guarded by Engine.mu; a job owns the tenant while busy.
type tenant struct {
	key  string // PrefixKey of endpoint, bucket and tenant path
	path string
	name string
	// replica is target.Conn.URL(name), and recPrefix the record's name of
	// its prefix: built once, not at every status.
	replica   string
	recPrefix string
	target    tenants.Target
	bucket    *bucket
	api       *s3.Client // with the tenant's credentials
	stats     *tenantStats

	wanted bool
	state  State
	reason string
	holder string
	since  time.Time
	// refused is set for a collision: it never starts until resolved.
	refused string

	busy   bool
	queued bool
	// urgent: queued in the urgent lane (see Engine.ready). hot: written
	// since the engine began while not started yet: its start has data to
	// upload and goes before the first snapshots of idle tenants.
	urgent  bool
	hot     bool
	retryAt time.Time
	backoff time.Duration

	claim *hosts.Claim
	// lineage is the tenant's segment of its lineage (lineage.go);
	// sleptWith is the fingerprint of its replica's files when it went to
	// sleep (sleptWithOK: taken), to see at the wake whether others wrote.
	lineage     lineageState
	sleptWith   uint64
	sleptWithOK bool
	// claimEpoch is the heartbeat epoch in which claim was last proven
	// (acquired or read back): see hosts.Beater.Epoch.
	claimEpoch uint64
	run        *awake // open in Litestream
	// seed is what the start listing said of the tenant, used once.
	seed   *seedTenant
	seedAt time.Time
	// starts counts the tenant's start jobs: a listing made across one is
	// not its seed.
	starts uint64
	// pages is the replicated state's page table while the tenant is open;
	// a sleeping tenant's is saved beside its database.
	pages *pageTable
	// digest is the database's LTX checksum at digestTXID, kept from the
	// page table when the tenant went to sleep (the table is let go): the
	// host record's checksum of an asleep tenant.
	digest     ltx.Checksum
	digestTXID ltx.TXID
	digestOK   bool
	// verifiedAt and verdict are the last continuous verification's;
	// verifyFailures counts the failed ones since the process started.
	verifiedAt     time.Time
	verdict        string
	verifyFailures int64
	// base is the files' identity when the tenant went to sleep or was
	// last checked; a change from it wakes or re-checks the tenant.
	base identity
	// dirty: a change was seen since base was taken; dirtyAt: when the
	// first one was.
	dirty   bool
	dirtyAt time.Time
	// changed: the file's identity changed under an open database.
	changed bool
	// denied: this process may no longer read or write the open database.
	denied     bool
	lastChange time.Time
	// walBytes is the size of the -wal file at the last stat the engine
	// made of it (sweep, a job's look); 0 without one.
	walBytes  int64
	localTXID uint64
	replTXID  uint64
	lastSync  time.Time
	// pending is when each local TXID not yet replicated was first seen,
	// oldest first: lag is the age of the oldest one, so a tenant written
	// without pause through a slow upload path lags by its real delay,
	// not by the time since it was last fully in sync.
	pending []seenTXID
	// walSeen is the -wal file's size when Litestream's position last
	// moved (or the file shrank), and unreadSince when a tick first saw
	// it grown past that with the position still: commits Litestream has
	// not read, because its next read waits for an upload in flight. The
	// status counts them (not in sync, lag from unreadSince), and they
	// become pending from unreadSince once read.
	// fencedAsleep says the tenant was asleep, its history checked, when
	// its bucket's host was fenced: at the heartbeat's return it sleeps
	// again; any other lease-lost tenant goes through start.
	fencedAsleep bool
	walSeen      int64
	walKnown     bool
	unreadSince  time.Time
}

// noteWAL follows the -wal file's size from tick to tick (see walSeen).
func (t *tenant) noteWAL(advanced bool, size int64, now time.Time) {
	switch {
	case !t.walKnown || advanced || size < t.walSeen:
		t.walSeen, t.walKnown, t.unreadSince = size, true, time.Time{}
	case size > t.walSeen && t.unreadSince.IsZero():
		t.unreadSince = now
	}
}

// checksum is the database's LTX checksum at a TXID, when known: the open
// tenant's page table's, or the one kept when it went to sleep. The
// caller holds the engine's lock.
func (t *tenant) checksum() (ltx.TXID, ltx.Checksum, bool) {
	if t.run != nil && t.run.pages != nil {
		return t.run.pages.checksum()
	}
	return t.digestTXID, t.digest, t.digestOK
}

// markDirty notes a change to a closed tenant's files, and when the first
// one since they were last read was seen.
func (t *tenant) markDirty(now time.Time) {
	if !t.dirty {
		t.dirtyAt = now
	}
	t.dirty = true
}

func (t *tenant) status(now time.Time) TenantStatus {
	st := TenantStatus{
		Tenant: t.name, Path: t.path, Replica: t.replica,
		State: t.state, Reason: t.reason, Since: t.since, Holder: t.holder,
		LocalTXID: t.localTXID, ReplicatedTXID: t.replTXID, LastSync: t.lastSync,
		VerifiedAt: t.verifiedAt, Verdict: t.verdict, VerifyFailures: t.verifyFailures,
		SyncErrors: t.stats.syncErrors.Load(), UploadedBytes: t.stats.uploadedBytes.Load(), WALBytes: t.walBytes,
		Bucket: t.target.Conn.Bucket, Endpoint: t.target.Conn.Endpoint,
	}
	if len(t.pending) > 0 && t.localTXID > t.replTXID {
		st.Lag = max(now.Sub(t.pending[0].at), 0)
	}
	if t.run != nil && !t.unreadSince.IsZero() {
		// Commits in the WAL that Litestream has not read yet: at least
		// one TXID more than it knows, waiting since they were seen.
		st.LocalTXID = max(t.localTXID, t.replTXID) + 1
		st.Lag = max(st.Lag, now.Sub(t.unreadSince))
	}
	if t.state == StateSleeping && t.dirty {
		// The file changed since it was last read and the wake that reads
		// it has not run yet (it waits while the heartbeat fails): it
		// holds at least one commit that may not be in S3, so this
		// status, and the host record made from it, must not say in sync.
		st.LocalTXID = max(t.localTXID, t.replTXID) + 1
		if !t.dirtyAt.IsZero() {
			st.Lag = max(now.Sub(t.dirtyAt), 0)
		}
		if st.Reason == "" {
			st.Reason = "changed since it went to sleep: not read yet"
		}
	}
	if done, total, phrase := t.stats.progress.read(); phrase != "" {
		// First: the host record (ls) keeps a reason's first 160 bytes.
		st.UploadDone, st.UploadTotal = done, total
		if st.Reason == "" {
			st.Reason = phrase
		} else {
			st.Reason = phrase + "; " + st.Reason
		}
	}
	return st
}

// setState records a state change with one log line naming the tenant.
func (e *Engine) setState(t *tenant, s State, reason string) {
	if t.state == s && t.reason == reason {
		return
	}
	e.moveStateLocked(t, s)
	t.reason, t.since = reason, e.opt.Now()
	if s != StateLeased {
		t.holder = ""
	}
	args := []any{"db", t.name}
	if reason != "" {
		args = append(args, "reason", reason)
	}
	switch s {
	case StateFailed, StateDiverged, StateLeaseLost, StateSyncFailing:
		e.log.Error(string(s), args...)
	case StateMissing, StateLeased:
		e.log.Warn(string(s), args...)
	default:
		e.log.Info(string(s), args...)
	}
}

// moveStateLocked sets t's state, keeping the counts and sets that
// stand in for walks over every tenant.
func (e *Engine) moveStateLocked(t *tenant, s State) {
	e.counts[t.state]--
	e.counts[s]++
	t.state = s
	if s == StateLeased {
		e.leased[t] = true
	} else {
		delete(e.leased, t)
	}
	e.recDirty[t] = true
}

func tenantKey(c s3conn.Conn, name string) string {
	return c.Endpoint + "\x00" + c.Bucket + "\x00" + layout.PrefixKey(c.TenantPath(name))
}

// addLocked adds a target, or updates the one at the same path.
func (e *Engine) addLocked(tg tenants.Target, wanted bool) *tenant {
	if abs, err := filepath.Abs(tg.Path); err == nil {
		tg.Path = filepath.Clean(abs)
	}
	if t, ok := e.byPath[tg.Path]; ok {
		t.wanted = t.wanted || wanted
		return t
	}
	t := &tenant{
		key: tenantKey(tg.Conn, tg.Tenant.Name), path: tg.Path, name: tg.Tenant.Name,
		replica: tg.Conn.URL(tg.Tenant.Name), recPrefix: hosts.RecordPrefix(tg.Conn.TenantsPrefix()),
		target: tg, wanted: wanted, state: StateStopped, since: e.opt.Now(), stats: &tenantStats{},
	}
	if wanted {
		t.state = StateStarting
	}
	e.counts[t.state]++
	e.recDirty[t] = true
	e.all = append(e.all, t)
	if !tg.Tenant.Verdict.Usable() {
		t.refused = tg.Tenant.Note
	} else if tg.Tenant.Verdict == tenants.VerdictFallback {
		e.log.Warn("fallback tenant name", "db", t.name, "path", t.path, "note", tg.Tenant.Note)
	}
	if other, ok := e.tenants[t.key]; ok && other.path != t.path {
		// Two databases would write one prefix. The one already known keeps
		// it if it runs; a new one is refused.
		t.refused = fmt.Sprintf("prefix %s is already %s's: give %s its own -db-name", tg.Conn.URL(t.name), untrusted.Printable(other.path), untrusted.Printable(t.path))
	} else {
		e.tenants[t.key] = t
	}
	e.byPath[t.path] = t
	if wanted {
		e.enqueueLocked(t)
	}
	return t
}

// awaitBucket is bucketFor at start, for a long-lived service: while S3
// cannot be reached (no connection, no answer in time, a 5xx or
// throttling: a server restarting with its host, a network not up yet) it
// says so and asks again with backoff, up to 30 s apart, until ctx ends. A
// definite answer (no such bucket, credentials refused, the host name in
// use) ends the start at once.
func (e *Engine) awaitBucket(ctx context.Context, c s3conn.Conn) error {
	delay := time.Second
	for {
		_, err := e.bucketFor(ctx, c)
		if err == nil || !transientAtStart(err) {
			return err
		}
		e.log.Warn("S3 not reachable at start: retrying", "bucket", c.Bucket, "endpoint", c.Endpoint, "in", delay, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-e.ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// transientAtStart reports an S3 failure that may pass by itself: no
// connection or answer, a server error or throttling.
func transientAtStart(err error) bool {
	if _, inUse := errors.AsType[*hosts.HostInUseError](err); inUse {
		return false
	}
	// A certificate S3's answer was refused for is the configuration's
	// (a CA bundle, a name), not the network's: asking again cannot help.
	if _, bad := errors.AsType[*tls.CertificateVerificationError](err); bad {
		return false
	}
	if _, bad := errors.AsType[x509.UnknownAuthorityError](err); bad {
		return false
	}
	if _, bad := errors.AsType[x509.HostnameError](err); bad {
		return false
	}
	if _, bad := errors.AsType[x509.CertificateInvalidError](err); bad {
		return false
	}
	if s3conn.Classify(err) == s3conn.FailureUnreachable {
		return true
	}
	if resp, ok := errors.AsType[*awshttp.ResponseError](err); ok {
		code := resp.HTTPStatusCode()
		return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
	}
	return false
}

// markCollisionsLocked refuses every database of a prefix that two or more
// databases found at start would share: none of them is more right.
func (e *Engine) markCollisionsLocked() {
	by := map[string][]*tenant{}
	for _, t := range e.byPath {
		by[t.key] = append(by[t.key], t)
	}
	for _, ts := range by {
		if len(ts) < 2 {
			continue
		}
		paths := make([]string, len(ts))
		for i, t := range ts {
			paths[i] = untrusted.Printable(t.path)
		}
		sort.Strings(paths)
		for _, t := range ts {
			t.refused = fmt.Sprintf("%s share prefix %s: give each its own -db-name", strings.Join(paths, " and "), t.target.Conn.URL(t.name))
		}
	}
}

func (e *Engine) sortedLocked() []*tenant {
	out := make([]*tenant, 0, len(e.byPath))
	for _, t := range e.byPath {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// Status lists every tenant the engine knows, by name then path.
func (e *Engine) Status() []TenantStatus {
	now := e.opt.Now()
	e.mu.Lock()
	out := make([]TenantStatus, 0, len(e.byPath))
	for _, t := range e.byPath {
		out = append(out, t.status(now))
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// Lookup returns the status of the tenant at path, if the engine knows it.
func (e *Engine) Lookup(path string) (TenantStatus, bool) {
	if abs, err := filepath.Abs(path); err == nil {
		path = filepath.Clean(abs)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.byPath[path]
	if !ok {
		return TenantStatus{}, false
	}
	return t.status(e.opt.Now()), true
}

// Replicating reports whether this process has the database at path open
// or holds it (replicating, sleeping or on its way), and as which tenant:
// such a file is never restored over nor opened by discovery.
func (e *Engine) Replicating(path string) (string, bool) {
	st, ok := e.Lookup(path)
	if !ok || !st.State.active() {
		return "", false
	}
	return st.Tenant, true
}

func (s State) active() bool {
	switch s {
	case StateStopped, StateMissing, StateFailed, StateDiverged, StateLeased:
		return false
	}
	return true
}

// Replicate asks for the database at path to be replicated (the terminal
// UI's r). It must be one of the source's targets or lie in one of its
// folders; the target is built as the replicate command would.
func (e *Engine) Replicate(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	abs = filepath.Clean(abs)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return errors.New("replication is shutting down")
	}
	t, ok := e.byPath[abs]
	if !ok {
		tg, err := e.dirTarget(abs)
		if err != nil {
			return err
		}
		t = e.addLocked(tg, false)
		if e.watch != nil {
			e.watch.add(t.path)
		}
	}
	if t.refused != "" {
		return fmt.Errorf("%s: %s", untrusted.Printable(t.path), t.refused)
	}
	if t.wanted && (t.state.active() || t.busy) {
		return fmt.Errorf("tenant %s is already %s", untrusted.Printable(t.name), t.state)
	}
	// Asked again for a tenant that failed, diverged or waits: try now.
	t.wanted, t.dirty = true, true
	e.recDirty[t] = true
	t.backoff, t.retryAt = 0, time.Time{}
	if t.state == StateStopped {
		e.setState(t, StateStarting, "")
	}
	e.enqueueLocked(t)
	return nil
}

// Stop stops replicating the database at path after a final sync, and
// releases its claim; it waits for that, up to ctx.
func (e *Engine) Stop(ctx context.Context, path string) error {
	abs, _ := filepath.Abs(path)
	e.mu.Lock()
	t, ok := e.byPath[filepath.Clean(abs)]
	if !ok || !t.wanted {
		e.mu.Unlock()
		return fmt.Errorf("%s is not replicated by this process", untrusted.Printable(path))
	}
	t.wanted = false
	e.recDirty[t] = true
	e.enqueueLocked(t)
	e.mu.Unlock()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		e.mu.Lock()
		done := !t.busy && t.state == StateStopped
		reason := t.reason
		e.mu.Unlock()
		if done {
			if reason != "" {
				return fmt.Errorf("tenant %s: %s", untrusted.Printable(t.name), reason)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			e.mu.Lock()
			state := t.state
			e.mu.Unlock()
			return fmt.Errorf("tenant %s: not stopped yet (%s): %w; it stops when its job ends", untrusted.Printable(t.name), state, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Sync uploads every change of the tenant at path now, and waits for it.
func (e *Engine) Sync(ctx context.Context, path string) error {
	abs, _ := filepath.Abs(path)
	e.mu.Lock()
	t, ok := e.byPath[filepath.Clean(abs)]
	var run *awake
	if ok {
		run = t.run
	}
	e.mu.Unlock()
	if run == nil {
		return fmt.Errorf("%s is not open for replication in this process", untrusted.Printable(path))
	}
	return run.db.SyncAndWait(ctx)
}

// enqueueLocked puts t on the ready queue once: in the urgent lane when it
// has data to upload, moving it there if it waits in the bulk lane.
func (e *Engine) enqueueLocked(t *tenant) {
	urgent := t.urgentLocked()
	switch {
	case t.queued && (t.urgent || !urgent):
		return
	case t.queued:
		// Its place in the bulk lane is skipped when reached.
		t.urgent = true
		e.urgent = append(e.urgent, t)
	default:
		t.queued, t.urgent = true, urgent
		if urgent {
			e.urgent = append(e.urgent, t)
		} else {
			e.ready = append(e.ready, t)
		}
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// urgentLocked reports that t's next job moves data the application
// wrote, or an open tenant: its job goes before the first snapshots of
// idle tenants and their retries.
func (t *tenant) urgentLocked() bool {
	return t.run != nil || !t.wanted || t.changed || t.denied || t.hot || (t.dirty && t.state != StateStarting)
}

// markHotLocked notes a write to a tenant not started yet (its files
// changed after the engine began): its start has data to upload.
func (e *Engine) markHotLocked(t *tenant, now identity) {
	if t.run == nil && t.state == StateStarting && !t.hot && now.changedAt().After(e.began) {
		t.hot = true
		if t.queued && !t.busy {
			e.enqueueLocked(t)
		}
	}
}

// retryLocked schedules another attempt with a doubling delay.
func (e *Engine) retryLocked(t *tenant) {
	limit := maxRetry
	if t.state == StateLeased {
		// A claim released by a live holder (its file moved away) is
		// seen within this; a dead holder's tenants are retried at once
		// by the tick (watchHolders).
		limit = maxLeasedRetry
	}
	if t.backoff == 0 {
		t.backoff = min(e.opt.Retry, limit)
	} else {
		t.backoff = min(t.backoff*2, limit)
	}
	e.atLocked(t, e.opt.Now().Add(t.backoff))
}

func (e *Engine) atLocked(t *tenant, when time.Time) {
	t.retryAt = when
	heap.Push(&e.timers, timer{when: when, t: t})
}

// loop is the scheduler: it starts jobs for ready tenants while job slots
// are free, fires retries, and once a second looks at the open tenants.
func (e *Engine) loop() {
	defer e.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
			e.tick()
		case <-e.kick:
		}
		e.schedule()
		e.looped.Store(e.opt.Now().UnixNano())
	}
}

// Alive reports whether the engine's scheduler runs: it loops at least
// once a second, and a stall of 30 s (a deadlock, a starved process) is an
// error that a liveness probe should restart it for.
func (e *Engine) Alive() error {
	if e.ctx.Err() != nil {
		return errors.New("the engine is stopping")
	}
	last := e.looped.Load()
	if last == 0 {
		return nil // starting
	}
	if d := e.opt.Now().Sub(time.Unix(0, last)); d > 30*time.Second {
		return fmt.Errorf("the scheduler last ran %s ago", d.Round(time.Second))
	}
	return nil
}

// schedule launches the jobs of ready tenants, as long as slots are free.
func (e *Engine) schedule() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opt.Now()
	for e.timers.Len() > 0 && !e.timers[0].when.After(now) {
		tm := heap.Pop(&e.timers).(timer)
		if tm.t.retryAt.Equal(tm.when) {
			tm.t.retryAt = time.Time{}
			e.enqueueLocked(tm.t)
		}
	}
	// The tenants that must wait to be opened go to the back of their
	// lane; while the cap holds (all of this call, under the lock) they
	// stay there, so the loop ends when only they are left. Bulk jobs
	// leave a quarter of the slots to urgent ones: a start of 100,000
	// idle tenants never makes a write wait for a slot.
	bulkMax := max(e.opt.Parallel-max(e.opt.Parallel/4, 1), 1)
	waitingUrgent, waiting := 0, 0
	for len(e.slots) < cap(e.slots) { // else the next job end kicks the loop
		var t *tenant
		urgent := len(e.urgent) > waitingUrgent
		switch {
		case urgent:
			t = e.urgent[0]
			e.urgent = e.urgent[1:]
			if !t.queued || !t.urgent {
				continue // stale: its job ran since
			}
		case len(e.ready) > waiting && e.bulkRun < bulkMax:
			t = e.ready[0]
			e.ready = e.ready[1:]
			if !t.queued || t.urgent {
				continue // stale, or moved to the urgent lane
			}
		default:
			return
		}
		requeue := func() {
			if urgent {
				e.urgent = append(e.urgent, t)
				waitingUrgent++
			} else {
				e.ready = append(e.ready, t)
				waiting++
			}
		}
		if t.busy {
			// It is queued again when its job ends.
			t.queued, t.urgent = false, false
			continue
		}
		job := e.nextJobLocked(t)
		if job == nil {
			t.queued, t.urgent = false, false
			continue
		}
		if t.run == nil && len(e.awake) >= 2*e.opt.MaxAwake && t.wanted {
			// Twice the cap open: opening more waits for sleeps to free
			// room; the sleeps are scheduled by the tick.
			requeue()
			continue
		}
		// A slot is free (checked above, under the lock that alone
		// takes them).
		e.slots <- struct{}{}
		t.queued, t.urgent = false, false
		t.busy = true
		e.busySet[t] = true
		if !urgent {
			e.bulkRun++
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			job(e.ctx)
			<-e.slots
			e.mu.Lock()
			t.busy = false
			delete(e.busySet, t)
			e.recDirty[t] = true
			if !urgent {
				e.bulkRun--
			}
			if t.dirty || t.changed || t.denied || (t.wanted == (t.state == StateStopped)) {
				e.enqueueLocked(t)
			}
			e.mu.Unlock()
			select {
			case e.kick <- struct{}{}:
			default:
			}
		}()
	}
}

// timer is a tenant's scheduled retry.
type timer struct {
	when time.Time
	t    *tenant
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Heartbeats lists the heartbeat of every bucket this process writes to.
func (e *Engine) Heartbeats() []HeartbeatStatus {
	e.mu.Lock()
	buckets := make([]*bucket, 0, len(e.buckets))
	for _, b := range e.buckets {
		buckets = append(buckets, b)
	}
	e.mu.Unlock()
	var out []HeartbeatStatus
	for _, b := range buckets {
		b.mu.Lock()
		beat := b.beat
		b.mu.Unlock()
		if beat == nil {
			continue
		}
		last, err := beat.LastBeat()
		hs := HeartbeatStatus{Bucket: b.conn.Bucket, Endpoint: b.conn.Endpoint, Host: beat.Host(), LastBeat: last, Fenced: beat.Fenced()}
		if err != nil {
			hs.Error = err.Error()
		}
		out = append(out, hs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket < out[j].Bucket })
	return out
}
