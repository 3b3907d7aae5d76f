package replication_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// TestFailedStartIsNotSleptAfterFence: a standby took a dead host's claim,
// but could not read the replica to compare its copy with it (S3 failing),
// and was fenced; when its heartbeat came back, every lease-lost tenant
// holding a claim was put to sleep as if checked, and the next write woke
// it on a stale copy, whose pages went up as the latest state over the
// other host's history (bench/chaos seed 37: 151 rows lost). Only a
// tenant asleep when the fence came sleeps again; this one is started
// again, found diverged, and uploads nothing. Invariant: the replica's
// latest state is the first host's rows.
func TestFailedStartIsNotSleptAfterFence(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	direct := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pathA, pathB := filepath.Join(dirA, guid1+".db"), filepath.Join(dirB, guid1+".db")
	writeAndClose(t, pathA, 0, 6)
	a, _ := start(t, replication.Options{Host: "host-a", SleepAfter: -1}, replication.Source{Dirs: []string{dirA}, DirConn: direct})
	waitSynced(t, a, pathA, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := rows(t, pathA)

	// B's copy is another history; B cannot read the replica's LTX files.
	writeAndClose(t, pathB, 1000, 3)
	var refuse atomic.Bool
	refuse.Store(true)
	conn, _ := proxied(t, srv, direct, s3proxy.Options{Fault: func(r s3proxy.Request) s3proxy.Fault {
		if refuse.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.Key, ".ltx") {
			return s3proxy.Fault{Status: http.StatusServiceUnavailable}
		}
		return s3proxy.Fault{}
	}})
	clk := &skewClock{}
	timing := hosts.Timing{BeatEvery: 2 * time.Second, FenceAfter: 5 * time.Second, DeadAfter: 8 * time.Second, WriteMargin: time.Second}
	// Its one tenant cannot start: Start says so, and the engine goes on.
	b, logs := startFailing(t, replication.Options{Host: "host-b", SleepAfter: time.Second, Timing: timing, Now: clk.Now},
		replication.Source{Dirs: []string{dirB}, DirConn: conn})
	testpeer.Eventually(t, 30*time.Second, "B's start to fail reading the replica, its claim taken", func() bool {
		st := status(t, b, pathB)
		return st.State == replication.StateLeaseLost && strings.Contains(st.Reason, "cannot read the replica")
	})

	// Fenced (the clock moves past FenceAfter), then the beats come back.
	clk.Add(time.Hour)
	testpeer.Eventually(t, 30*time.Second, "the heartbeat to come back after the fence", func() bool {
		return strings.Contains(logs.String(), "heartbeat back")
	})
	// A write to B's copy: a tenant wrongly asleep wakes and uploads it.
	writeAndClose(t, pathB, 2000, 2)
	refuse.Store(false)
	st := waitState(t, b, pathB, 30*time.Second, replication.StateDiverged)
	if strings.Contains(logs.String(), "sleeping: db="+guid1) {
		t.Error("B's tenant slept without its history checked")
	}
	equalRows(t, "the replica's latest state after B's fence", restored(t, direct, guid1, 0), want)
	t.Logf("B: %s (%s)", st.State, st.Reason)
}
