package replication

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"

	"github.com/litefleet/litefleet/s3conn"
)

// Litestream's local sync failing (its DB monitor, which the engine does
// not call) makes the tenant's last sync a failure: counted once per failed
// attempt however often it is looked at, cleared by the next good sync and
// untouched by a checkpoint's outcome.
func TestSyncHealthFromLitestreamDiagnostic(t *testing.T) {
	var h syncHealth
	t0 := time.Unix(1_000_000, 0)
	diag := func(op string, at time.Time, err string) litestream.SyncDiagnostic {
		return litestream.SyncDiagnostic{Operation: op, StartedAt: &at, UpdatedAt: &at, Error: err}
	}
	conn := s3conn.Conn{Bucket: "b"}
	if h.observeLocal(diag("sync", t0, "")) {
		t.Fatal("a good sync counted as a failure")
	}
	if _, _, ok := h.failing(conn); ok {
		t.Fatal("failing after a good sync")
	}
	bad := diag("sync", t0.Add(time.Second), "new wal reader: invalid wal header magic: 0")
	if !h.observeLocal(bad) {
		t.Fatal("a failed sync not counted")
	}
	if h.observeLocal(bad) {
		t.Fatal("the same failed sync counted twice")
	}
	reason, since, ok := h.failing(conn)
	if !ok || !strings.Contains(reason, "local sync failed: new wal reader") || !since.Equal(t0.Add(time.Second)) {
		t.Fatalf("failing %v %q since %s", ok, reason, since)
	}
	if !h.observeLocal(diag("sync", t0.Add(3*time.Second), "stat x-wal: no such file or directory")) {
		t.Fatal("a second failed sync not counted")
	}
	if _, since, _ := h.failing(conn); !since.Equal(t0.Add(time.Second)) {
		t.Fatalf("since %s, want the first failure of the run", since)
	}
	// A checkpoint, or a sync in flight, says nothing of the last sync.
	h.observeLocal(diag("checkpoint", t0.Add(4*time.Second), ""))
	inFlight := diag("sync", t0.Add(5*time.Second), "")
	inFlight.Active = true
	h.observeLocal(inFlight)
	if _, _, ok := h.failing(conn); !ok {
		t.Fatal("a checkpoint or a sync in flight cleared the failure")
	}
	h.observeLocal(diag("sync", t0.Add(6*time.Second), ""))
	if _, _, ok := h.failing(conn); ok {
		t.Fatal("still failing after a good sync")
	}

	// An upload failure is the reason until one succeeds or S3 holds every
	// local TXID.
	h.uploadFailed(errors.New("put k: 503"), t0)
	if reason, _, ok := h.failing(conn); !ok || !strings.Contains(reason, "upload to S3 failed") {
		t.Fatalf("after a failed upload: %v %q", ok, reason)
	}
	h.caughtUp()
	if _, _, ok := h.failing(conn); ok {
		t.Fatal("failing with every local TXID in S3")
	}
}
