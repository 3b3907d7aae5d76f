package replication

import (
	"testing"
	"time"
)

// A tenant written without pause lags by how far behind its uploads are,
// not by how long ago it was last fully in sync.
func TestLagOfContinuousWriter(t *testing.T) {
	tn := tenant{stats: &tenantStats{}}
	t0 := time.Unix(1_000_000, 0)
	// One commit a second; the replica stays 15 TXIDs (15 s) behind.
	for s := 0; s <= 120; s++ {
		local := uint64(100 + s)
		repl := uint64(100)
		if s > 15 {
			repl = local - 15
		}
		now := t0.Add(time.Duration(s) * time.Second)
		tn.notePending(local, repl, now)
		tn.localTXID, tn.replTXID = local, repl
	}
	now := t0.Add(120 * time.Second)
	st := tn.status(now)
	if st.Lag < 14*time.Second || st.Lag > 16*time.Second {
		t.Fatalf("lag %s, want about 15s", st.Lag)
	}
	// Caught up: no lag, nothing pending.
	tn.notePending(220, 220, now.Add(time.Second))
	tn.localTXID, tn.replTXID = 220, 220
	if st := tn.status(now.Add(time.Second)); st.Lag != 0 || tn.pending != nil {
		t.Fatalf("in sync: lag %s, pending %v", st.Lag, tn.pending)
	}
}

// The pending list stays bounded, and lag stays at least the real one,
// however long the backlog.
func TestPendingBounded(t *testing.T) {
	tn := tenant{stats: &tenantStats{}}
	t0 := time.Unix(1_000_000, 0)
	for s := range 1000 {
		tn.notePending(uint64(2+s), 1, t0.Add(time.Duration(s)*time.Second))
	}
	if len(tn.pending) > maxPending {
		t.Fatalf("%d pending entries, want at most %d", len(tn.pending), maxPending)
	}
	tn.localTXID, tn.replTXID = 1001, 1
	if st := tn.status(t0.Add(999 * time.Second)); st.Lag != 999*time.Second {
		t.Fatalf("lag %s, want 16m39s", st.Lag)
	}
	// A replaced file starts another history: old entries go.
	tn.notePending(5, 1, t0.Add(1000*time.Second))
	if len(tn.pending) != 1 || tn.pending[0].txid != 5 {
		t.Fatalf("after a new history: pending %v", tn.pending)
	}
}
