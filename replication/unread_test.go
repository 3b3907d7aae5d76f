package replication_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// TestLagCountsFromTheCommit: while an upload hangs, Litestream reads no
// new commit, so a commit made meanwhile became a pending TXID only when
// the upload ended, and the lag counted from then: a row committed 6 s
// before was reported 0 s behind (bench/chaos seed 35: a host's status said
// 23 s behind for rows 53 s old). The engine now sees the WAL grow on its
// own clock: the status is not in sync, and its lag counts from the first
// tick that saw the unread commit.
func TestLagCountsFromTheCommit(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	var hold atomic.Int64 // how long the next level-0 PUT is held
	conn, _ := proxied(t, srv, direct, s3proxy.Options{Fault: func(r s3proxy.Request) s3proxy.Fault {
		if r.Method == http.MethodPut && strings.Contains(r.Key, "/0000/") {
			if d := hold.Swap(0); d > 0 {
				return s3proxy.Fault{Delay: time.Duration(d)}
			}
		}
		return s3proxy.Fault{}
	}})
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	app := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, app, 0, 5)
	eng, err := replication.New(replication.Options{Host: "lag", SleepAfter: -1, Timing: slowTiming, Sweep: 300 * time.Millisecond, Retry: 200 * time.Millisecond,
		Logger: newLogger(&testpeer.Buffer{})}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = eng.Close(ctx)
	})
	waitSynced(t, eng, path, 30*time.Second)
	base := status(t, eng, path).ReplicatedTXID

	// Row A's upload hangs 6 s; row B is committed 1 s into it.
	hold.Store(int64(6 * time.Second))
	testpeer.InsertRows(t, app, 100, 1)
	testpeer.Eventually(t, 10*time.Second, "row A's upload to be held", func() bool { return hold.Load() == 0 })
	time.Sleep(time.Second)            // the scenario: B comes while A hangs
	hold.Store(int64(3 * time.Second)) // and B's own upload hangs 3 s
	testpeer.InsertRows(t, app, 200, 1)
	committedB := time.Now()
	// From A's upload's end until B's, B is pending: its lag must count
	// from its commit (about 5 s ago then), not from A's end.
	testpeer.Eventually(t, 20*time.Second, "row A uploaded", func() bool { return status(t, eng, path).ReplicatedTXID > base })
	st := status(t, eng, path)
	since := time.Since(committedB)
	if st.ReplicatedTXID >= st.LocalTXID && st.Lag == 0 {
		t.Fatalf("row B was committed %s ago and its upload is held, but the status says in sync: local %d, replicated %d", since.Round(time.Millisecond), st.LocalTXID, st.ReplicatedTXID)
	}
	if st.Lag < since-1500*time.Millisecond {
		t.Fatalf("row B was committed %s ago, the status says %s behind: the lag counts from when the upload before it ended", since.Round(time.Millisecond), st.Lag.Round(time.Millisecond))
	}
	t.Logf("row B committed %s ago: status local %d, replicated %d, lag %s", since.Round(time.Millisecond), st.LocalTXID, st.ReplicatedTXID, st.Lag.Round(time.Millisecond))
	waitSynced(t, eng, path, 30*time.Second)
}
