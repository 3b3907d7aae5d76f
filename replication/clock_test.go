package replication_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/clockcheck"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// TestOneClock: the engine reads the time only through Options.Now, whose
// default (time.Now) is set in withDefaults alone; a test that moves the
// clock then moves every status, lag, deadline and backoff the engine
// computes (TestClockMovesTheEngine, TestClockFencesTheEngine).
func TestOneClock(t *testing.T) {
	bad, err := clockcheck.Violations(".", []string{"withDefaults"}, map[string]string{
		// The page diff writes the LTX file Litestream would have, with
		// Litestream's stamp: the library stamps its own files with the
		// real clock, which the engine cannot inject.
		"encodeDiff": "an LTX header's timestamp, as Litestream stamps its own",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("the engine reads the time outside Options.Now:\n%s", strings.Join(bad, "\n"))
	}
}

// TestClockMovesTheEngine: moved by less than the fence, the engine's
// clock alone makes an idle tenant sleep: it was idle for seconds of real
// time, SleepAfter of the engine's. It would not if the sleep decision
// read time.Now.
func TestClockMovesTheEngine(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 3)
	clk := &skewClock{}
	// The move stays below FenceAfter even a beat late.
	const sleepAfter, idle = 20 * time.Second, 21 * time.Second
	timing := hosts.Timing{BeatEvery: 3 * time.Second, FenceAfter: 30 * time.Second, DeadAfter: 45 * time.Second, WriteMargin: time.Second}
	eng, _ := start(t, replication.Options{Host: "moved", SleepAfter: sleepAfter, Timing: timing, Now: clk.Now},
		replication.Source{Dirs: []string{dir}, DirConn: conn})
	st := waitSynced(t, eng, path, 20*time.Second)
	if st.State != replication.StateReplicating {
		t.Fatalf("in sync, but %s before any idle time", st.State)
	}
	opened := time.Now()
	clk.Add(idle)
	waitState(t, eng, path, 8*time.Second, replication.StateSleeping)
	if real := time.Since(opened); real >= sleepAfter {
		t.Fatalf("slept after %s of real time: the move of the clock proved nothing", real)
	}
	// The sleep's final sync came after the move: real time would be
	// before it.
	min := opened.Add(idle)
	if st := status(t, eng, path); st.LastSync.Before(min) {
		t.Fatalf("last sync at %s, want on the moved clock (after %s)", st.LastSync.Format(time.RFC3339), min.Format(time.RFC3339))
	}
}

// TestClockFencesTheEngine: moved by an hour, the engine's clock fences
// the host, and the state's Since, the lag and LastSync of a change made
// meanwhile, and the scheduler's liveness are read on it. Each would
// differ if any of them read time.Now.
func TestClockFencesTheEngine(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 3)
	clk := &skewClock{}
	timing := hosts.Timing{BeatEvery: 3 * time.Second, FenceAfter: 7500 * time.Millisecond, DeadAfter: 12 * time.Second, WriteMargin: time.Second}
	eng, _ := start(t, replication.Options{Host: "moved", SleepAfter: -1, Timing: timing, Now: clk.Now},
		replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)

	const jump = time.Hour
	clk.Add(jump)
	st := waitState(t, eng, path, 5*time.Second, replication.StateLeaseLost)
	if min := time.Now().Add(jump - time.Minute); st.Since.Before(min) {
		t.Fatalf("lease lost since %s, want on the moved clock (after %s)", st.Since.Format(time.RFC3339), min.Format(time.RFC3339))
	}
	testpeer.Eventually(t, 5*time.Second, "the scheduler alive on the moved clock", func() bool { return eng.Alive() == nil })

	// A change made while fenced replicates once the beats are back; the
	// tick notes it pending and synced on the moved clock, and the
	// status measures its lag on the same one.
	before := st.ReplicatedTXID
	writeAndClose(t, path, 3, 4)
	var maxLag time.Duration
	testpeer.Eventually(t, 30*time.Second, "the change made on the moved clock in S3", func() bool {
		st = status(t, eng, path)
		maxLag = max(maxLag, st.Lag)
		return st.ReplicatedTXID > before && st.ReplicatedTXID >= st.LocalTXID && st.State == replication.StateReplicating
	})
	if maxLag >= time.Minute {
		t.Fatalf("lag %s for a change replicated within 30 s: the pending change and the status read different clocks", maxLag)
	}
	if min := time.Now().Add(jump - time.Minute); st.LastSync.Before(min) {
		t.Fatalf("last sync at %s, want on the moved clock (after %s)", st.LastSync.Format(time.RFC3339), min.Format(time.RFC3339))
	}
	if err := eng.Alive(); err != nil {
		t.Fatalf("the scheduler runs, and Alive says %v", err)
	}
}
