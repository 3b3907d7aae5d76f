package replication

import (
	"testing"
	"time"
)

// TestSleepingChangedIsNotInSync: a sleeping tenant whose file changed
// since it was last read says so until its wake reads it. Its status, and
// the host record made from it, said in sync before (chaos seed 21: the
// record written when the heartbeat came back after a 90 s outage said
// "sleeping, local 137 = replicated 137" while the file held a row written
// 44 s before, which the wake, held back by the outage, had not read).
func TestSleepingChangedIsNotInSync(t *testing.T) {
	now := time.Now()
	tn := &tenant{name: "a", state: StateSleeping, localTXID: 137, replTXID: 137, stats: &tenantStats{}}
	if st := tn.status(now); st.LocalTXID != st.ReplicatedTXID || st.Lag != 0 {
		t.Fatalf("unchanged: local %d, replicated %d, lag %s: want in sync", st.LocalTXID, st.ReplicatedTXID, st.Lag)
	}
	tn.markDirty(now.Add(-44 * time.Second))
	tn.markDirty(now.Add(-time.Second)) // a later change: the wait is the first one's
	st := tn.status(now)
	if st.LocalTXID <= st.ReplicatedTXID || st.Lag != 44*time.Second || st.Reason == "" {
		t.Errorf("changed 44s ago, not read: local %d, replicated %d, lag %s, reason %q: want local ahead, lag 44s, a reason",
			st.LocalTXID, st.ReplicatedTXID, st.Lag, st.Reason)
	}
	if st.State != StateSleeping {
		t.Errorf("state %q, want still sleeping", st.State)
	}
}
