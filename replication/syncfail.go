package replication

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"

	"github.com/litefleet/litefleet/s3conn"
)

// syncHealth is what a tenant's last syncs said, kept beside its counters
// across sleeps. A sync has two stages, and either may fail while the
// host's heartbeat is fine: Litestream's local sync (WAL to LTX file, in
// its DB monitor) and the upload of the LTX file (in its replica monitor,
// or the engine's own syncs), which goes through the tenant's client. The
// engine learns of the first from Litestream's SyncDiagnostic, of the
// second from the client itself, and the tenant is "sync failing" while
// the last attempt of either stage failed: its status never says more than
// S3 acknowledged.
type syncHealth struct {
	mu sync.Mutex
	// upload is the last failed upload of a change (level 0), and
	// uploadSince when the uploads began failing; cleared by a successful
	// one, or once S3 holds every local TXID.
	upload      error
	uploadSince time.Time
	// local is Litestream's last failed local sync, and localSince when
	// they began failing; localSeen is the start of the last failed one
	// counted, so each is counted once however often it is looked at.
	local      string
	localSince time.Time
	localSeen  time.Time
}

// uploadFailed records a failed upload of a change at now.
func (h *syncHealth) uploadFailed(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.upload == nil {
		h.uploadSince = now
	}
	h.upload = err
}

// uploadOK records a change uploaded: the uploads work again.
func (h *syncHealth) uploadOK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.upload, h.uploadSince = nil, time.Time{}
}

// caughtUp says S3 holds every local TXID: whatever upload failed before,
// nothing is waiting for it now.
func (h *syncHealth) caughtUp() { h.uploadOK() }

// observeLocal looks at Litestream's last local sync, and reports whether
// it is a failure not seen before (to be counted). A checkpoint's outcome,
// or a sync still running, leaves the judgement as it was.
func (h *syncHealth) observeLocal(d litestream.SyncDiagnostic) (newFailure bool) {
	if d.Active || d.Operation != "sync" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if d.Error == "" || strings.Contains(d.Error, "context canceled") {
		// Succeeded, or cut short by a close: not a failure of the sync.
		if d.Error == "" {
			h.local, h.localSince = "", time.Time{}
		}
		return false
	}
	var started time.Time
	if d.StartedAt != nil {
		started = *d.StartedAt
	}
	if h.local == "" {
		h.localSince = started
		if d.UpdatedAt != nil {
			h.localSince = *d.UpdatedAt
		}
	}
	h.local = d.Error
	if started.Equal(h.localSeen) && !started.IsZero() {
		return false
	}
	h.localSeen = started
	return true
}

// failing returns why the last sync failed and since when, if it did. A
// failed local sync comes first: nothing reaches the upload stage then.
func (h *syncHealth) failing(conn s3conn.Conn) (reason string, since time.Time, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.local != "":
		return "local sync failed: " + h.local, h.localSince, true
	case h.upload != nil:
		if errors.Is(h.upload, errFenced) {
			return h.upload.Error(), h.uploadSince, true
		}
		return "upload to S3 failed: " + s3conn.Why(h.upload, conn).Error(), h.uploadSince, true
	}
	return "", time.Time{}, false
}

// judgeSyncLocked runs at each tick for an open tenant, with the positions
// just read: a tenant that replicates is "sync failing" while its last sync
// failed, and replicating again once one succeeds. Other states (fenced,
// lease lost, a job's outcome) are left to their own transitions.
func (e *Engine) judgeSyncLocked(t *tenant, local, repl uint64) {
	h := &t.stats.health
	if t.run.db != nil && h.observeLocal(t.run.db.SyncDiagnostic()) {
		t.stats.syncErrors.Add(1)
	}
	if local > 0 && repl >= local {
		h.caughtUp()
	}
	reason, since, failing := h.failing(t.target.Conn)
	switch {
	case failing && t.state == StateReplicating:
		e.setState(t, StateSyncFailing, reason)
		if !since.IsZero() {
			t.since = since
		}
	case failing && t.state == StateSyncFailing && t.reason != reason:
		// The same state with a newer reason: shown, not logged again (a
		// failing upload's error names each new key).
		t.reason = reason
		e.recDirty[t] = true
	case !failing && t.state == StateSyncFailing:
		e.setState(t, StateReplicating, "")
	}
}

// syncFailed records a sync of an open tenant that failed in the engine's
// own call (the first after opening, or the one resuming it), unless its
// client already did (a failed upload), and returns the reason to show:
// the tick then keeps the tenant sync failing until a sync succeeds.
func syncFailed(t *tenant, err error, now time.Time) string {
	if reason, _, ok := t.stats.health.failing(t.target.Conn); ok {
		return reason
	}
	t.stats.syncErrors.Add(1)
	t.stats.health.uploadFailed(err, now)
	reason, _, _ := t.stats.health.failing(t.target.Conn)
	return reason
}
