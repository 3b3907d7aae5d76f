package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// bucket is one bucket's host side: the host's S3 client and heartbeat.
type bucket struct {
	key    string
	conn   s3conn.Conn // with the host's credentials
	mu     sync.Mutex  // held while starting the heartbeat
	beat   *hosts.Beater
	fenced bool
	// unconditional warns once that the server ignores conditional writes.
	unconditional sync.Once
	// orphans is the census of multipart uploads under the bucket's
	// tenants, swept tenant by tenant at their starts (orphans.go).
	orphans orphanCensus
	// okAt is the last successful beat seen by the engine's tick: the
	// length of an outage decides whether claims must be checked again.
	okAt time.Time
	// holdersAt is when the hosts holding this bucket's leased-elsewhere
	// tenants were last listed; listing is one request for all of them.
	holdersAt   time.Time
	listingHost bool
	// rec is the host record, as written and as it changed since.
	rec hostRecord
}

// checkTimeout bounds the first request to a bucket, so that a wrong
// endpoint or bucket is an error within seconds.
const checkTimeout = 8 * time.Second

// client returns the shared S3 client of a connection's credentials.
func (e *Engine) client(ctx context.Context, c s3conn.Conn) (*s3.Client, error) {
	return e.clients.For(ctx, c)
}

// bucketFor returns the bucket of a tenant's connection, with its heartbeat
// running: the first call checks the bucket and starts the heartbeat.
func (e *Engine) bucketFor(ctx context.Context, c s3conn.Conn) (*bucket, error) {
	key := c.Endpoint + "\x00" + c.Bucket
	e.mu.Lock()
	b, ok := e.buckets[key]
	if !ok {
		host := c
		if e.src.HostKeys.AccessKeyID != "" {
			host.AccessKeyID, host.SecretAccessKey = e.src.HostKeys.AccessKeyID, e.src.HostKeys.SecretAccessKey
		}
		b = &bucket{key: key, conn: host, rec: newHostRecord()}
		e.buckets[key] = b
	}
	e.mu.Unlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.beat != nil {
		return b, nil
	}
	api, err := e.client(ctx, b.conn)
	if err != nil {
		return nil, err
	}
	// The host's own keys may be confined to .litefleet/ (litefleet policy
	// -host-principal): check the bucket there.
	cctx, ccancel := context.WithTimeout(ctx, checkTimeout)
	_, err = hosts.List(cctx, api, b.conn.Bucket, e.opt.Now)
	ccancel()
	if err != nil {
		return nil, s3conn.ExplainKey(err, b.conn, layout.HostsPrefix)
	}
	beat, err := hosts.New(hosts.Options{API: api, Bucket: b.conn.Bucket, Host: e.opt.Host, Fallback: e.fallback, Version: e.opt.Version,
		Logger: e.log, Timing: e.opt.Timing, Now: e.opt.Now})
	if err != nil {
		return nil, err
	}
	if err := startBeat(ctx, beat); err != nil {
		var inUse *hosts.HostInUseError
		if errors.As(err, &inUse) {
			return nil, err
		}
		return nil, s3conn.Explain(err, b.conn)
	}
	e.mu.Lock() // tick reads beat under the engine's lock
	b.beat = beat
	b.okAt = e.opt.Now()
	e.mu.Unlock()
	e.log.Info("heartbeat started", "host", beat.Host(), "bucket", b.conn.Bucket, "key", layout.HeartbeatKey(beat.Host()))
	return b, nil
}

// startBeat starts a heartbeat, asking up to three times: a server busy
// with a fleet's first writes may refuse one (versitygw answers 409 to a
// PUT racing a sibling's), and a refused first beat would stop the process.
// A name in use or a refusal of access is final.
func startBeat(ctx context.Context, beat *hosts.Beater) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		// Start may watch the heartbeat of an earlier process under this
		// name for up to DeadAfter before taking the name.
		sctx, cancel := context.WithTimeout(ctx, checkTimeout+beat.Timing().DeadAfter+beat.Timing().BeatEvery)
		err = beat.Start(sctx)
		cancel()
		var inUse *hosts.HostInUseError
		if err == nil || errors.As(err, &inUse) || s3conn.IsAccessDenied(err) {
			return err
		}
	}
	return err
}

// outcome is what a job decided; it is applied under the engine's lock.
type outcome struct {
	state     State
	reason    string
	holder    string
	run       *awake // the tenant is open (nil: closed)
	retry     bool   // try again later, with backoff
	claim     *hosts.Claim
	keepClaim bool
	base      identity
	baseOK    bool
}

// nextJobLocked returns the job that brings t closer to what it should be,
// or nil when there is nothing to do now.
func (e *Engine) nextJobLocked(t *tenant) func(context.Context) {
	now := e.opt.Now()
	switch {
	case !t.wanted:
		if t.state == StateStopped && t.run == nil && t.claim == nil {
			return nil
		}
		return func(ctx context.Context) { e.stopTenant(ctx, t) }
	case e.closing:
		return nil
	case t.refused != "":
		if t.state != StateFailed || t.reason != t.refused {
			e.setState(t, StateFailed, t.refused)
		}
		return nil
	case t.run != nil:
		switch {
		case t.changed:
			return func(ctx context.Context) { e.reopen(ctx, t) }
		case t.denied:
			return func(ctx context.Context) { e.closeDenied(ctx, t) }
		case t.run.conflict.Load() != nil:
			return func(ctx context.Context) { e.stopConflicted(ctx, t) }
		case t.bucket != nil && t.bucket.fenced:
			return nil
		case t.state == StateLeaseLost:
			return func(ctx context.Context) { e.resume(ctx, t) }
		case e.shouldSleepLocked(t, now):
			return func(ctx context.Context) { e.sleep(ctx, t) }
		case t.run.maintainDue(now) && len(e.compacting) < cap(e.compacting):
			return func(ctx context.Context) { e.maintainJob(ctx, t) }
		}
		return nil
	case !t.retryAt.IsZero() && t.retryAt.After(now) && !(t.dirty && t.state.fileDriven()):
		return nil
	}
	switch t.state {
	case StateSleeping:
		if !t.dirty {
			return nil
		}
		if t.bucket != nil && t.bucket.fenced {
			return nil
		}
		return func(ctx context.Context) { e.wake(ctx, t) }
	case StateDiverged:
		if !t.dirty && !e.takeover[layout.PrefixKey(t.name)] {
			return nil
		}
	case StateMissing:
		if !t.dirty {
			return nil
		}
	case StateLeaseLost:
		if t.bucket != nil && t.bucket.fenced {
			return nil
		}
	}
	return func(ctx context.Context) { e.startTenant(ctx, t) }
}

func (e *Engine) shouldSleepLocked(t *tenant, now time.Time) bool {
	if e.opt.SleepAfter < 0 || t.run == nil || now.Before(t.run.sleepRetry) {
		return false
	}
	idle := now.Sub(t.lastChange)
	if idle >= e.opt.SleepAfter {
		return true
	}
	// Over the cap, the least recently changed idle tenants go early.
	return len(e.awake) > e.opt.MaxAwake && idle >= 5*time.Second
}

// fileDriven: a change to the file is a reason to try again at once. Not
// for a diverged tenant: its check takes the claim (see start).
func (s State) fileDriven() bool {
	switch s {
	case StateFailed, StateMissing, StateSleeping:
		return true
	}
	return false
}

// apply records a job's outcome.
func (e *Engine) apply(t *tenant, o outcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recDirty[t] = true
	if o.run != nil {
		t.run = o.run
		e.awake[t] = true
	} else {
		t.run = nil
		delete(e.awake, t)
	}
	if o.claim != nil {
		t.claim = o.claim
	} else if !o.keepClaim {
		t.claim = nil
	}
	if o.baseOK {
		t.base = o.base
		t.walBytes = o.base.wal.size
	}
	if o.state == StateLeased {
		t.holder = o.holder
	}
	e.setState(t, o.state, o.reason)
	if o.state == StateLeased {
		t.holder = o.holder
	}
	if o.retry {
		e.retryLocked(t)
	} else {
		t.backoff, t.retryAt = 0, time.Time{}
	}
}

// startTenant is the full check: the file, the bucket, the claim, the
// history, then Litestream. Every start and every recovery goes through it.
func (e *Engine) startTenant(ctx context.Context, t *tenant) {
	e.mu.Lock()
	e.setState(t, StateStarting, "")
	t.dirty, t.hot = false, false
	claim := t.claim
	e.mu.Unlock()
	e.apply(t, e.start(ctx, t, claim))
}

func (e *Engine) start(ctx context.Context, t *tenant, claim *hosts.Claim) outcome {
	b, err := e.bucketFor(ctx, t.target.Conn)
	if err != nil {
		var inUse *hosts.HostInUseError
		if errors.As(err, &inUse) {
			return outcome{state: StateFailed, reason: err.Error(), retry: true}
		}
		return outcome{state: StateLeaseLost, reason: err.Error(), retry: true, claim: claim, keepClaim: true}
	}
	e.mu.Lock()
	t.bucket = b
	t.starts++
	t.sleptWithOK = false // its files are judged from here on, not at a wake
	if t.api == nil {
		e.mu.Unlock()
		api, err := e.client(ctx, t.target.Conn)
		if err != nil {
			return outcome{state: StateFailed, reason: err.Error(), retry: true}
		}
		e.mu.Lock()
		t.api = api
	}
	e.mu.Unlock()

	base, err := statIdentity(t.path)
	if err != nil {
		return outcome{state: StateFailed, reason: err.Error(), retry: true, claim: claim, keepClaim: true}
	}
	if !base.db.exists {
		return e.gone(ctx, t, b, claim, base)
	}
	journal, err := checkDatabase(t.path)
	if err != nil {
		return outcome{state: StateFailed, reason: err.Error(), retry: true, claim: claim, keepClaim: true, base: base, baseOK: true}
	}
	if journal == tenants.JournalRollback {
		e.log.Warn("switching to WAL", "db", t.name, "path", t.path, "note", tenants.RollbackNote)
	}
	if b.beat.Fenced() {
		// Retried on its own too: the tick resumes lease-lost tenants when
		// it sees the fence lift, but a fence shorter than a tick is
		// seen here and never there.
		return outcome{state: StateLeaseLost, reason: "heartbeat to S3 failing: waiting for it before claiming", retry: true, claim: claim, keepClaim: true, base: base, baseOK: true}
	}

	tenantPath := t.target.Conn.TenantPath(t.name)
	seed := e.takeSeed(t)
	epoch := b.beat.Epoch()
	if claim != nil {
		if o, ok := e.checkClaim(ctx, t, b, claim); !ok {
			o.base, o.baseOK = base, true
			return o
		}
	}
	tookOver := false
	if claim == nil {
		acquire := b.beat.Acquire
		if seed != nil && !seed.claim {
			acquire = b.beat.AcquireAbsent
		}
		c, err := acquire(ctx, t.api, tenantPath)
		var held *hosts.HeldError
		var unreadable *hosts.UntrustedError
		switch {
		case errors.As(err, &held):
			return outcome{state: StateLeased, reason: held.Error(), holder: held.Host, retry: true, base: base, baseOK: true}
		case errors.As(err, &unreadable):
			return outcome{state: StateLeaseLost, reason: err.Error(), retry: true, base: base, baseOK: true}
		case err != nil:
			return outcome{state: StateLeaseLost, reason: "cannot take the claim: " + s3conn.ExplainKey(err, t.target.Conn, layout.ClaimKey(tenantPath)).Error(), retry: true, base: base, baseOK: true}
		}
		claim = c
		e.setClaimEpoch(t, epoch)
		t.lineage.forget()
		tookOver = c.TookFrom != ""
		if c.TookFrom != "" {
			e.log.Warn("took over tenant from a dead host", "db", t.name, "from", untrusted.Printable(c.TookFrom))
			// The start listing may predate the dead host's last uploads:
			// the replica is listed afresh.
			seed = nil
		}
	}

	a := newAwake(base, loadPageTable(t.path), e.opt.Now(), e.opt.SavePagesEvery)
	a.verified.Store(e.claimEpochOf(t))
	a.client = e.newClient(t, b, a, claim)
	if seed != nil {
		a.client.levels, a.client.loadedAt = seed.levels, e.opt.Now()
	}
	if _, localMax, _, err := localL0(t.path); err == nil {
		// A deposed host's late files would read as a replica ahead, or
		// a history that differs: moved out first, they are neither
		// (lineage.go).
		if err := a.client.sweepAtStart(ctx, t.path, localMax); err != nil {
			return outcome{state: StateLeaseLost, reason: "cannot move stray files out of the replica: " + s3conn.ExplainKey(err, t.target.Conn, tenantPath+"/").Error(), retry: true, claim: claim, keepClaim: true, base: base, baseOK: true}
		}
	}
	// Under its claim, before anything is uploaded: what an earlier
	// instance or a dead holder left half uploaded is aborted. A takeover
	// lists afresh (the dead host uploaded after the census).
	var listed []orphan
	if !tookOver {
		listed = b.orphans.take(ctx, a.client, t.target.Conn.TenantsPrefix())
	}
	if len(listed) > 0 || tookOver {
		n, err := a.client.abortOrphans(ctx, listed, tookOver)
		if err != nil {
			e.log.Warn("abandoned multipart uploads not aborted", "db", t.name, "error", s3conn.ExplainKey(err, t.target.Conn, tenantPath+"/"))
		}
		// Swept again before its next multipart upload, until a sweep
		// finds nothing: a late part may revive an aborted upload.
		if err != nil || n > 0 {
			a.client.noteOrphans()
		}
	}
	hist, err := e.checkHistory(ctx, t, a.client)
	var div *DivergedError
	switch {
	case errors.As(err, &div):
		if e.takingOver(t) {
			url, err := e.archiveHistory(ctx, t, a.client)
			if err != nil {
				return outcome{state: StateDiverged, reason: "takeover failed: " + err.Error(), claim: claim, keepClaim: true, base: base, baseOK: true}
			}
			// A new history: older lineages' files are strays from TXID 0.
			t.lineage.renew()
			e.log.Warn("took over a diverged tenant: the replica's history is kept, the local file starts a new one", "db", t.name, "archive", url)
			e.mu.Lock()
			delete(e.takeover, layout.PrefixKey(t.name))
			e.mu.Unlock()
			hist = historyRestored
			break
		}
		// Holding the claim would keep the host with the right copy out.
		e.release(ctx, t, b, claim)
		// The comparison opened the database: its files moved, not its data.
		if after, serr := statIdentity(t.path); serr == nil {
			base = after
		}
		// retry: a copy written while diverged is checked again only
		// after a backoff. Each check takes the claim and releases it: a
		// standby whose copy keeps changing would otherwise take it in a
		// tight loop and starve the host with the right copy.
		return outcome{state: StateDiverged, reason: err.Error(), base: base, baseOK: true, retry: true}
	case err != nil:
		return outcome{state: StateLeaseLost, reason: "cannot read the replica: " + s3conn.ExplainKey(err, t.target.Conn, tenantPath+"/").Error(), retry: true, claim: claim, keepClaim: true, base: base, baseOK: true}
	}
	if hist == historySame {
		if from, to, changed := pageSizeChanged(ctx, t.path); changed {
			// The old history's files cannot be compacted or restored
			// with the new ones: it is archived (restorable on its own)
			// and the file starts a new one with a full snapshot.
			url, err := e.archiveHistory(ctx, t, a.client)
			if err != nil {
				return outcome{state: StateFailed, reason: fmt.Sprintf("the page size changed (%d to %d bytes) and the old history could not be archived: %v", from, to, err), retry: true, claim: claim, keepClaim: true, base: base, baseOK: true}
			}
			t.lineage.renew()
			e.log.Warn("the page size changed: the replica's history is archived and a new one starts from the file", "db", t.name, "from", from, "to", to, "archive", url)
			hist = historyRestored
		}
	}
	prepare := false
	if hist == historyFresh || hist == historyRestored {
		// A new history starts with a full snapshot in L0: the daily one
		// waits for the next day.
		lvl := e.store(t.target.Retention).SnapshotLevel()
		a.nextCompact[lvl.Level] = lvl.NextCompactionAt(e.opt.Now())
	}
	switch hist {
	case historyRestored:
		if err := resetLocalState(t.path); err != nil {
			return outcome{state: StateFailed, reason: err.Error(), retry: true, claim: claim, keepClaim: true, base: base, baseOK: true}
		}
		a.pages.invalidate()
	case historySame:
		// Nothing changed since this host last synced it (a restart): the
		// tenant sleeps without Litestream opening it.
		if e.opt.SleepAfter >= 0 && e.inSync(ctx, t, a) {
			return outcome{state: StateSleeping, claim: claim, base: base, baseOK: true}
		}
		prepare = true
	}
	if err := e.openAwake(ctx, t, a, prepare); err != nil {
		return outcome{state: StateFailed, reason: err.Error(), retry: true, claim: claim, keepClaim: true, base: afterFailure(t.path, base), baseOK: true}
	}
	o := e.opened(ctx, t, a, claim, base)
	if o.state == StateReplicating && e.crowded() {
		// Starting a fleet: once its first snapshot is up, a tenant beyond
		// the open cap sleeps at once; a write wakes it.
		return e.sleepNow(ctx, t, a, claim)
	}
	return o
}

// checkClaim reads the tenant's claim again when the heartbeat failed since
// it was last proven (its epoch is not the heartbeat's): another host may
// have counted this one dead and taken it. ok is false with the outcome to
// apply when the claim is lost (leased elsewhere) or cannot be read.
func (e *Engine) checkClaim(ctx context.Context, t *tenant, b *bucket, claim *hosts.Claim) (outcome, bool) {
	if claim == nil || b == nil || b.beat == nil {
		return outcome{}, true
	}
	epoch := b.beat.Epoch()
	if e.claimEpochOf(t) == epoch {
		return outcome{}, true
	}
	err := b.beat.Verify(ctx, t.api, t.target.Conn.TenantPath(t.name), claim)
	switch {
	case errors.Is(err, hosts.ErrClaimLost):
		e.log.Warn("claim lost while the heartbeat failed: nothing more is uploaded", "db", t.name, "reason", err)
		return outcome{state: StateLeased, reason: err.Error(), retry: true}, false
	case err != nil:
		return outcome{state: StateLeaseLost, reason: "heartbeat back, but the claim cannot be checked: " + s3conn.Explain(err, t.target.Conn).Error(), claim: claim, keepClaim: true, retry: true}, false
	}
	e.setClaimEpoch(t, epoch)
	return outcome{}, true
}

func (e *Engine) claimEpochOf(t *tenant) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return t.claimEpoch
}

func (e *Engine) setClaimEpoch(t *tenant, epoch uint64) {
	e.mu.Lock()
	t.claimEpoch = epoch
	e.mu.Unlock()
}

// afterFailure is the baseline of a tenant whose open failed: the files as
// the failed attempt left them. Litestream's and the pin's own writes and
// closes move them; taken for the application's, they would retry the
// tenant at once, again and again, past its backoff.
func afterFailure(path string, before identity) identity {
	if after, err := statIdentity(path); err == nil {
		return after
	}
	return before
}

// crowded reports that the open tenants reached the cap.
func (e *Engine) crowded() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.awake) >= e.opt.MaxAwake
}

// opened uploads what the first sync produced, and decides whether the
// tenant stays open.
func (e *Engine) opened(ctx context.Context, t *tenant, a *awake, claim *hosts.Claim, base identity) outcome {
	e.mu.Lock()
	t.lastChange = e.opt.Now()
	e.mu.Unlock()
	if err := a.db.Replica.Sync(ctx); err != nil {
		if a.reshaped.Load() {
			// Closed and started again at once (see newClient).
			return outcome{state: StateStarting, reason: "the page size changed: starting a new history", run: a, claim: claim, base: base, baseOK: true}
		}
		if errors.Is(err, errFenced) {
			return outcome{state: StateLeaseLost, reason: err.Error(), run: a, claim: claim, base: base, baseOK: true}
		}
		// The host may write, S3 did not take the change: Litestream's
		// replica loop retries, and the tick says replicating once it is in.
		return outcome{state: StateSyncFailing, reason: syncFailed(t, err, e.opt.Now()), run: a, claim: claim, base: base, baseOK: true}
	}
	local, repl := a.positions()
	e.mu.Lock()
	t.localTXID, t.replTXID, t.lastSync = local, repl, e.opt.Now()
	// A database idle for longer than the sleep delay sleeps right away,
	// so that starting 10,000 tenants never holds 10,000 open.
	if e.opt.SleepAfter >= 0 && e.opt.Now().Sub(base.changedAt()) >= e.opt.SleepAfter {
		t.lastChange = base.changedAt()
	}
	e.mu.Unlock()
	return outcome{state: StateReplicating, run: a, claim: claim, base: base, baseOK: true}
}

func (e *Engine) takingOver(t *tenant) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.takeover[layout.PrefixKey(t.name)]
}

// gone handles a database whose file is missing: its claim is released so
// that the host it moved to may take it.
func (e *Engine) gone(ctx context.Context, t *tenant, b *bucket, claim *hosts.Claim, base identity) outcome {
	e.release(ctx, t, b, claim)
	reason := fmt.Sprintf("no database at %s: its claim is released; check -dsn, -dir or the config path: it replicates when it appears", untrusted.Printable(t.path))
	return outcome{state: StateMissing, reason: reason, base: base, baseOK: true}
}

func (e *Engine) release(ctx context.Context, t *tenant, b *bucket, claim *hosts.Claim) {
	if claim == nil || b == nil || b.beat == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
	defer cancel()
	if err := b.beat.Release(rctx, t.api, t.target.Conn.TenantPath(t.name), claim); err != nil {
		e.log.Warn("release claim", "db", t.name, "error", err)
	}
}

// wake reopens a sleeping tenant after a change. A file replaced while it
// slept is checked in full, like a start.
func (e *Engine) wake(ctx context.Context, t *tenant) {
	e.mu.Lock()
	t.dirty = false
	claim, base, b := t.claim, t.base, t.bucket
	e.mu.Unlock()
	now, err := statIdentity(t.path)
	if err != nil || !now.db.exists || base.replaced(now) || claim == nil || b == nil {
		e.startTenant(ctx, t)
		return
	}
	pages := t.pages
	if pages == nil {
		pages = loadPageTable(t.path)
	}
	if _, _, changed := pageSizeChanged(ctx, t.path); changed {
		e.startTenant(ctx, t) // a new history: see start
		return
	}
	if e.unchanged(ctx, t, pages) {
		// A checkpoint or a close moved the files, not the data: stay asleep.
		e.apply(t, outcome{state: StateSleeping, claim: claim, base: now, baseOK: true})
		return
	}
	if o, ok := e.checkClaim(ctx, t, b, claim); !ok {
		o.base, o.baseOK = now, true
		e.apply(t, o)
		return
	}
	a := newAwake(now, pages, e.opt.Now(), e.opt.SavePagesEvery)
	a.verified.Store(e.claimEpochOf(t))
	a.client = e.newClient(t, b, a, claim)
	if err := e.sweepAtWake(ctx, t, a); err != nil {
		e.apply(t, outcome{state: StateFailed, reason: "cannot move stray files out of the replica: " + s3conn.Explain(err, t.target.Conn).Error(), retry: true, claim: claim, base: now, baseOK: true})
		return
	}
	if err := e.openAwake(ctx, t, a, true); err != nil {
		e.apply(t, outcome{state: StateFailed, reason: err.Error(), retry: true, claim: claim, base: afterFailure(t.path, now), baseOK: true})
		return
	}
	e.apply(t, e.opened(ctx, t, a, claim, now))
}

// sweepAtWake moves out the stray files that landed while the tenant
// slept, before Litestream reads the replica's position or compacts them.
// The wake's listing (which Litestream would make anyway) is compared with
// the files the tenant left: equal, nobody else wrote, and nothing more is
// requested; different, every file the lineage could make stray is looked
// at. A tenant put to sleep without its files listed (a restart) looks at
// the files beyond its last upload.
func (e *Engine) sweepAtWake(ctx context.Context, t *tenant, a *awake) error {
	e.mu.Lock()
	repl, slept, sleptOK := t.replTXID, t.sleptWith, t.sleptWithOK
	e.mu.Unlock()
	if err := a.client.load(ctx); err != nil {
		return err
	}
	if fp, ok := a.client.fingerprint(); ok && sleptOK {
		if fp == slept {
			return nil
		}
		return a.client.sweepAll(ctx)
	}
	if repl == 0 {
		return nil
	}
	return a.client.sweepBeyond(ctx, ltx.TXID(repl))
}

// inSync reports that the replica holds the local history's last TXID and
// the files still hold exactly that state, by the saved page table.
func (e *Engine) inSync(ctx context.Context, t *tenant, a *awake) bool {
	_, localMax, _, err := localL0(t.path)
	if err != nil || localMax == 0 {
		return false
	}
	remote, ok, err := a.client.latest(ctx, 0)
	if err != nil || !ok || remote.MaxTXID != localMax || !e.unchanged(ctx, t, a.pages) {
		return false
	}
	e.mu.Lock()
	t.localTXID, t.replTXID = uint64(localMax), uint64(localMax)
	e.mu.Unlock()
	return true
}

// unchanged reports whether the database's pages are still the replicated
// state, by the page table. The files' identity is taken before they are
// read, so a write racing the read is seen by the next check.
func (e *Engine) unchanged(ctx context.Context, t *tenant, pages *pageTable) bool {
	last, ok, err := lastLocalHeader(t.path)
	if err != nil || !ok {
		return false
	}
	same, known := pages.matches(ctx, t.path, last.MaxTXID)
	return known && same
}

// sleep makes a final sync and closes an idle tenant. The files' identity
// is taken before that sync, so that a write racing it is seen as a change
// and wakes the tenant again, never missed.
func (e *Engine) sleep(ctx context.Context, t *tenant) {
	e.mu.Lock()
	a, claim := t.run, t.claim
	t.dirty = false
	e.mu.Unlock()
	if now, err := statIdentity(t.path); err != nil || now.replaced(a.opened) {
		e.reopen(ctx, t)
		return
	}
	o := e.sleepNow(ctx, t, a, claim)
	if o.state == StateReplicating {
		return // stays open; uploads retry
	}
	e.apply(t, o)
}

// sleepNow makes the final sync and closes the tenant. When the sync
// fails the tenant stays open (state replicating, uploads retrying).
func (e *Engine) sleepNow(ctx context.Context, t *tenant, a *awake, claim *hosts.Claim) outcome {
	base, err := statIdentity(t.path)
	if err != nil {
		return outcome{state: StateReplicating, run: a, claim: claim}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = a.db.SyncAndWait(sctx)
	cancel()
	if err != nil {
		e.mu.Lock()
		a.sleepRetry = e.opt.Now().Add(10 * time.Second)
		e.mu.Unlock()
		return outcome{state: StateReplicating, run: a, claim: claim}
	}
	local, repl := a.positions()
	a.db.ShutdownSyncTimeout = 0
	if err := e.closeDB(a, true); err != nil {
		e.log.Warn("close before sleep", "db", t.name, "error", err)
	}
	// Closing may have checkpointed the WAL (SQLite does when the last
	// connection closes). With the page table, the files as they are now
	// are compared with the replicated state: equal, they are the
	// baseline; different, a write raced the close and the tenant wakes.
	// Without it, the baseline taken before the final sync stands, and the
	// close itself may wake the tenant once.
	dirty := false
	if local == repl {
		after, err := statIdentity(t.path)
		if same, known := a.pages.matches(ctx, t.path, ltx.TXID(repl)); err == nil && known {
			base, dirty = after, !same
		}
	}
	if err := a.pages.save(t.path); err != nil {
		e.log.Warn("save page table", "db", t.name, "error", err)
	}
	fp, fpOK := a.client.fingerprint()
	if fpOK {
		if err := saveListing(t.path, fp); err != nil {
			e.log.Warn("save the replica's fingerprint", "db", t.name, "error", err)
		}
	}
	e.mu.Lock()
	t.localTXID, t.replTXID, t.lastSync = local, repl, e.opt.Now()
	t.sleptWith, t.sleptWithOK = fp, fpOK
	t.digestTXID, t.digest, t.digestOK = a.pages.checksum()
	t.pages = nil
	t.walKnown, t.unreadSince = false, time.Time{} // asleep: Litestream reads nothing; a wake starts afresh
	if dirty {
		t.markDirty(e.opt.Now())
	}
	e.mu.Unlock()
	return outcome{state: StateSleeping, claim: claim, base: base, baseOK: true}
}

// closeDenied closes a database whose permissions were taken away while it
// was open, and checks it again: the check fails, naming the permission,
// until they are given back (a mode change marks the file written, and it
// is tried again at once). Nothing local is dropped: what the application
// wrote before is uploaded then.
func (e *Engine) closeDenied(ctx context.Context, t *tenant) {
	e.closeAndCheck(ctx, t, func(*awake, uint64) {
		e.log.Warn("permissions of an open database taken away: closed", "db", t.name, "path", t.path)
	})
}

// reopen handles a file replaced under an open database: Litestream's DB is
// closed without another write, the local changes it may have made from a
// mix of both files are dropped, and the tenant is checked from scratch.
func (e *Engine) reopen(ctx context.Context, t *tenant) {
	e.closeAndCheck(ctx, t, func(a *awake, repl uint64) {
		if n, err := dropUnreplicated(t.path, ltx.TXID(repl)); err != nil {
			e.log.Warn("drop local changes of the replaced file", "db", t.name, "error", err)
		} else if n > 0 {
			e.log.Warn("the file was replaced: dropped local changes not yet in S3", "db", t.name, "files", n)
		}
		if a.reshaped.Load() {
			e.log.Warn("the page size changed under replication: closed, checking again", "db", t.name, "path", t.path)
			return
		}
		e.log.Warn("file replaced under replication: closed, checking again", "db", t.name, "path", t.path)
	})
}

// closeAndCheck closes an open tenant without another upload, tells
// closed the replicated TXID it had reached, and runs the full start check
// again, keeping its claim.
func (e *Engine) closeAndCheck(ctx context.Context, t *tenant, closed func(a *awake, replicated uint64)) {
	e.mu.Lock()
	a, claim := t.run, t.claim
	t.changed, t.denied = false, false
	e.mu.Unlock()
	_, repl := a.positions()
	e.closeDB(a, false)
	closed(a, repl)
	e.mu.Lock()
	t.run = nil
	delete(e.awake, t)
	e.setState(t, StateStarting, "")
	e.mu.Unlock()
	e.apply(t, e.start(ctx, t, claim))
}

// resume continues a tenant whose host was fenced: after an outage long
// enough for other hosts to count this one dead, the claim is checked
// first; then Litestream's upload loop is restarted without its backoff.
func (e *Engine) resume(ctx context.Context, t *tenant) {
	e.mu.Lock()
	a, claim, b := t.run, t.claim, t.bucket
	e.mu.Unlock()
	if o, ok := e.checkClaim(ctx, t, b, claim); !ok {
		if o.state == StateLeased {
			e.closeDB(a, false)
		} else {
			o.run = a
		}
		e.apply(t, o)
		return
	}
	a.verified.Store(e.claimEpochOf(t))
	a.db.Replica.Start(e.ctx)
	if err := a.db.Replica.Sync(ctx); err != nil {
		if !errors.Is(err, errFenced) {
			// The host may write again; S3 did not take the change:
			// Litestream's replica loop, just started, retries it.
			e.apply(t, outcome{state: StateSyncFailing, reason: syncFailed(t, err, e.opt.Now()), run: a, claim: claim})
			return
		}
		e.apply(t, outcome{state: StateLeaseLost, reason: "upload failed, retrying: " + s3conn.Explain(err, t.target.Conn).Error(), run: a, claim: claim, retry: true})
		return
	}
	e.log.Info("replication resumed", "db", t.name)
	e.apply(t, outcome{state: StateReplicating, run: a, claim: claim})
}

func (e *Engine) maintainJob(ctx context.Context, t *tenant) {
	select {
	case e.compacting <- struct{}{}:
		defer func() { <-e.compacting }()
	case <-ctx.Done():
		return
	}
	e.mu.Lock()
	a := t.run
	e.mu.Unlock()
	e.maintain(ctx, t, a)
}

// stopTenant closes a tenant no longer wanted, with a final sync, and
// releases its claim.
func (e *Engine) stopTenant(ctx context.Context, t *tenant) {
	e.mu.Lock()
	a, claim, b := t.run, t.claim, t.bucket
	e.mu.Unlock()
	reason := ""
	if a != nil {
		if err := e.closeDB(a, b != nil && !b.beat.Fenced()); err != nil {
			reason = "final sync failed: " + err.Error()
		}
	}
	e.release(ctx, t, b, claim)
	// apply's state change logs "stopped" (with the reason when the final
	// sync failed): a line here too would log every stop twice.
	e.apply(t, outcome{state: StateStopped, reason: reason})
}
