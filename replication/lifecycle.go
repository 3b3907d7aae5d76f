package replication

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/untrusted"
)

// maxShutdownReleases is how many claims of closed (sleeping) tenants a
// stop releases one by one. Beyond it they are left to the heartbeat's
// deletion, which frees every claim of the host at once (other hosts take
// them DeadAfter later): 100,000 requests would hold the stop up for
// minutes.
const maxShutdownReleases = 1000

// tick runs once a second: it notices a bucket's host being fenced or
// coming back, and looks at every open tenant's positions and idleness.
func (e *Engine) tick() {
	now := e.opt.Now()
	wal := e.walSizes()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.buckets {
		if b.beat == nil {
			continue
		}
		fenced := b.beat.Fenced()
		last, beatErr := b.beat.LastBeat()
		switch {
		case fenced && !b.fenced:
			b.fenced = true
			reason := "heartbeat to S3 failing: uploads paused until it is back"
			if beatErr != nil {
				reason += " (" + beatErr.Error() + ")"
			}
			for _, t := range e.byPath {
				if t.bucket == b && t.claim != nil && t.wanted {
					// Only a tenant asleep when the fence came had its
					// history checked: it may sleep again at the heartbeat's
					// return. One whose start failed (the claim taken, the
					// replica not read) must be started again.
					t.fencedAsleep = t.state == StateSleeping && t.run == nil
					e.setState(t, StateLeaseLost, reason)
				}
			}
		case !fenced && b.fenced:
			b.fenced = false
			// Each claim is read again before its tenant's next upload
			// (the gate refuses it until then: see hosts.Beater.Epoch):
			// the open ones now, by resume; the sleeping ones when they
			// wake.
			e.log.Info("heartbeat back: checking claims before uploading", "bucket", b.conn.Bucket, "outage", last.Sub(b.okAt).Round(time.Second))
			for _, t := range e.byPath {
				if t.bucket != b || t.state != StateLeaseLost {
					continue
				}
				if t.run == nil && t.claim != nil && t.fencedAsleep {
					e.setState(t, StateSleeping, "")
				}
				t.fencedAsleep = false
				t.retryAt = time.Time{}
				e.enqueueLocked(t)
			}
		}
		if !fenced {
			b.okAt = last
		}
	}
	e.publishLocked(now)
	e.watchHoldersLocked(now)
	e.reseedLocked(now)
	for t := range e.awake {
		if t.run == nil {
			continue
		}
		if t.busy {
			// Its job (a compaction, a resume) may hold Litestream's next
			// read behind an upload for as long as that takes: the WAL
			// still says whether commits wait unread.
			if size, ok := wal[t]; ok {
				t.noteWAL(false, size, now)
			}
			continue
		}
		if b := t.bucket; b != nil && b.beat != nil && !b.fenced && (t.state == StateReplicating || t.state == StateSyncFailing) && t.run.verified.Load() != b.beat.Epoch() {
			// A beat failed and came back between two ticks: the gate
			// refuses uploads until resume has read the claim again.
			e.setState(t, StateLeaseLost, "a heartbeat failed: checking the claim before the next upload")
		}
		local, repl := t.run.positions()
		seenAt := now
		if local != t.localTXID {
			t.lastChange = now
			if !t.unreadSince.IsZero() {
				seenAt = t.unreadSince // read now, seen in the WAL then
			}
		}
		t.notePending(local, repl, seenAt)
		if size, ok := wal[t]; ok {
			t.noteWAL(local != t.localTXID, size, now)
		}
		if repl > t.replTXID {
			t.lastSync = now
		}
		t.localTXID, t.replTXID = local, repl
		e.judgeSyncLocked(t, local, repl)
		if e.nextJobLocked(t) != nil {
			e.enqueueLocked(t)
		}
	}
}

// walSizes stats the -wal file of every open tenant, outside the engine's
// lock: one stat each per tick (the open cap bounds them, 128 by default),
// never an open of the database's files.
func (e *Engine) walSizes() map[*tenant]int64 {
	e.mu.Lock()
	open := make([]*tenant, 0, len(e.awake))
	for t := range e.awake {
		if t.run != nil {
			open = append(open, t)
		}
	}
	e.mu.Unlock()
	sizes := make(map[*tenant]int64, len(open))
	for _, t := range open {
		fi, err := os.Stat(t.path + "-wal")
		switch {
		case err == nil:
			sizes[t] = fi.Size()
		case errors.Is(err, os.ErrNotExist):
			sizes[t] = 0
		}
	}
	return sizes
}

// watchHoldersLocked lists, once per heartbeat interval, the hosts of each
// bucket that has tenants leased elsewhere, and retries at once those whose
// holder is dead: another host takes a dead host's tenants within a minute
// of its last heartbeat, for one request per bucket, not per tenant.
func (e *Engine) watchHoldersLocked(now time.Time) {
	for _, b := range e.buckets {
		if b.beat == nil || b.fenced || b.listingHost || now.Sub(b.holdersAt) < e.opt.Timing.BeatEvery {
			continue
		}
		// Looked at once per beat, over the tenants leased elsewhere only.
		b.holdersAt = now
		var leased []*tenant
		for t := range e.leased {
			if t.bucket == b && t.state == StateLeased && t.holder != "" && !t.busy {
				leased = append(leased, t)
			}
		}
		if len(leased) == 0 {
			continue
		}
		b.listingHost = true
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			ctx, cancel := context.WithTimeout(e.ctx, e.opt.Timing.BeatEvery)
			_, err := b.beat.Hosts(ctx, e.opt.Timing.BeatEvery)
			cancel()
			e.mu.Lock()
			defer e.mu.Unlock()
			b.listingHost = false
			if err != nil {
				return
			}
			for _, t := range leased {
				// A hint only: the takeover reads the heartbeat again.
				if t.state == StateLeased && b.beat.Silent(t.holder) {
					t.retryAt = time.Time{}
					e.enqueueLocked(t)
				}
			}
		}()
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// ShutdownError names the tenants whose final sync did not succeed.
type ShutdownError struct{ Failed []string }

func (e *ShutdownError) Error() string {
	return fmt.Sprintf("%d tenant(s) not fully replicated at shutdown (see the lines above): %s", len(e.Failed), strings.Join(e.Failed, ", "))
}

// Close stops reconciling, makes a final sync of every tenant with changes
// not yet in S3 (waking sleeping ones that changed), closes them, releases
// every claim and deletes the heartbeats. It returns a *ShutdownError
// naming the tenants whose final sync failed. If ctx ends first, the
// remaining work is abandoned.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil
	}
	e.closing = true
	e.mu.Unlock()

	// Jobs in flight finish (each is bounded by its own timeouts) unless
	// ctx ends first.
	wait := time.NewTicker(20 * time.Millisecond)
	done := ctx.Done()
	for e.anyBusy() {
		select {
		case <-done:
			// Once: a done channel is always ready, and selecting on it
			// again would spin.
			e.cancel()
			done = nil
		case <-wait.C:
		}
	}
	wait.Stop()
	e.cancel()
	e.wg.Wait()
	if e.watch != nil {
		e.watch.close()
	}

	e.mu.Lock()
	all := e.sortedLocked()
	closedClaims := 0
	for _, t := range all {
		if t.claim != nil && t.run == nil {
			closedClaims++
		}
	}
	e.mu.Unlock()
	releaseClosed := closedClaims <= maxShutdownReleases
	if !releaseClosed {
		e.log.Info("the claims of sleeping tenants are freed by the heartbeat's deletion", "tenants", closedClaims)
	}

	var mu sync.Mutex
	var failed []string
	fail := func(t *tenant, why string) {
		mu.Lock()
		failed = append(failed, untrusted.Printable(t.name))
		mu.Unlock()
		e.log.Error("not replicated at shutdown", "db", t.name, "reason", why)
	}
	g := new(errgroup.Group)
	g.SetLimit(e.opt.Parallel)
	for _, t := range all {
		g.Go(func() error {
			e.finalSync(ctx, t, releaseClosed, fail)
			return nil
		})
	}
	_ = g.Wait()

	e.mu.Lock()
	buckets := make([]*bucket, 0, len(e.buckets))
	for _, b := range e.buckets {
		buckets = append(buckets, b)
	}
	e.mu.Unlock()
	for _, b := range buckets {
		if b.beat != nil {
			if err := b.beat.Stop(ctx); err != nil {
				e.log.Warn("stop heartbeat", "bucket", b.conn.Bucket, "error", err)
			}
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return &ShutdownError{Failed: failed}
	}
	return nil
}

func (e *Engine) anyBusy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.busySet) > 0
}

// finalSync closes one tenant at shutdown: an open one with a final sync, a
// sleeping one that changed after waking it for that sync; then its claim
// is released.
func (e *Engine) finalSync(ctx context.Context, t *tenant, releaseClosed bool, fail func(*tenant, string)) {
	e.mu.Lock()
	a, claim, b, state, base, reason := t.run, t.claim, t.bucket, t.state, t.base, t.reason
	t.run = nil
	delete(e.awake, t)
	e.mu.Unlock()
	fenced := b != nil && b.beat != nil && b.beat.Fenced()
	e.mu.Lock()
	ready := e.isReady
	e.mu.Unlock()
	if ready && t.wanted && (state == StateFailed || state == StateDiverged) {
		// Never replicated: the stop is not clean for it.
		fail(t, fmt.Sprintf("%s: %s", state, reason))
	}

	if a == nil && claim != nil && b != nil && !fenced && (state == StateSleeping || state == StateLeaseLost) {
		if now, err := statIdentity(t.path); err == nil && now.db.exists && base.written(now) && !base.replaced(now) {
			pages := loadPageTable(t.path)
			if !e.unchanged(ctx, t, pages) {
				// Changed while asleep: wake it for the last sync.
				if o, ok := e.checkClaim(ctx, t, b, claim); !ok {
					fail(t, o.reason)
				} else {
					w := newAwake(now, pages, e.opt.Now(), e.opt.SavePagesEvery)
					w.verified.Store(e.claimEpochOf(t))
					w.client = e.newClient(t, b, w, claim)
					if err := e.openAwake(ctx, t, w, true); err != nil {
						fail(t, err.Error())
					} else {
						a = w
					}
				}
			}
		}
	}
	lost := false
	if a != nil && !fenced {
		// The heartbeat may have failed and come back since the claim was
		// last read (the tick had no time to see it): read it first.
		if o, ok := e.checkClaim(ctx, t, b, claim); !ok {
			e.closeDB(a, false)
			a, lost = nil, o.state == StateLeased
			fail(t, o.reason)
		} else {
			a.verified.Store(e.claimEpochOf(t))
		}
	}
	if a != nil {
		switch {
		case fenced:
			e.closeDB(a, false)
			fail(t, "S3 unreachable: the heartbeat is failing, local changes are kept beside the database and uploaded at the next start")
		default:
			if err := e.closeDBWithin(ctx, a); err != nil {
				fail(t, err.Error())
			} else if local, repl := a.positions(); local > repl {
				fail(t, fmt.Sprintf("TXID %d of %d in S3", repl, local))
			} else {
				if fp, ok := a.client.fingerprint(); ok {
					if err := saveListing(t.path, fp); err != nil {
						e.log.Warn("save the replica's fingerprint", "db", t.name, "error", err)
					}
				}
				e.log.Info("stopped", "db", t.name, "txid", fmt.Sprintf("%016x", repl))
			}
		}
	}
	// A fenced host's claims are freed by its heartbeat's deletion (a
	// host without one is dead): S3 is failing, and a request per claim
	// would only hold the stop up.
	if claim != nil && !fenced && !lost && (a != nil || releaseClosed) {
		e.release(ctx, t, b, claim)
	}
	e.mu.Lock()
	t.claim = nil
	e.moveStateLocked(t, StateStopped)
	t.reason, t.since = "", e.opt.Now()
	e.mu.Unlock()
}
