package replication_test

import (
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

// failingUploads puts a proxy in front of the test's S3 server that answers
// 503 to every upload of a tenant's change (a level-0 PUT) while failing is
// set; heartbeats, claims and listings pass, so the host is never fenced.
func failingUploads(t *testing.T, srv *s3test.Server) (endpoint string, failing *atomic.Bool, refused *atomic.Int64) {
	t.Helper()
	failing, refused = &atomic.Bool{}, &atomic.Int64{}
	p, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Fault: func(r s3proxy.Request) s3proxy.Fault {
		if failing.Load() && r.Kind == s3proxy.Put && !r.Control && strings.Contains(r.Key, "/0000/") {
			refused.Add(1)
			return s3proxy.Fault{Status: http.StatusServiceUnavailable}
		}
		return s3proxy.Fault{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.URL(), failing, refused
}

// A tenant whose uploads fail while its host's heartbeat works is "sync
// failing", with the reason and since when, never replicating with a
// replicated TXID S3 does not hold; every failed sync is counted, those of
// Litestream's own replica loop included; it is replicating again once S3
// takes the change.
func TestSyncFailingWhileS3RefusesUploads(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	endpoint, failing, refused := failingUploads(t, srv)
	conn.Endpoint = endpoint
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 3)
	eng, logs := start(t, replication.Options{Host: "h", SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	synced := waitSynced(t, eng, path, 20*time.Second)
	if synced.SyncErrors != 0 {
		t.Fatalf("sync errors %d before any fault", synced.SyncErrors)
	}

	failing.Store(true)
	before := time.Now()
	db := testpeer.OpenDB(t, path) // kept open: the WAL stays for Litestream
	testpeer.InsertRows(t, db, 100, 5)
	st := waitState(t, eng, path, 30*time.Second, replication.StateSyncFailing)
	if !strings.Contains(st.Reason, "upload to S3 failed") || !strings.Contains(st.Reason, "503") && !strings.Contains(st.Reason, "ServiceUnavailable") {
		t.Errorf("reason %q, want the failed upload and S3's answer", st.Reason)
	}
	if st.Since.Before(before.Add(-time.Second)) || st.Since.After(time.Now()) {
		t.Errorf("since %s, want when the uploads began failing (after %s)", st.Since, before)
	}
	if st.ReplicatedTXID != synced.ReplicatedTXID || st.LocalTXID <= st.ReplicatedTXID {
		t.Errorf("positions local %d replicated %d, want local ahead of the %d S3 holds", st.LocalTXID, st.ReplicatedTXID, synced.ReplicatedTXID)
	}
	if st.State.Healthy() {
		t.Errorf("%q counts as healthy", st.State)
	}
	// Litestream's replica loop keeps retrying; each refused upload is one
	// failed sync.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st = status(t, eng, path)
		if n := refused.Load(); n >= 2 && st.SyncErrors >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync errors %d after %d refused uploads, want each counted", st.SyncErrors, refused.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.State != replication.StateSyncFailing {
		t.Fatalf("state %q while uploads still fail", st.State)
	}
	if !strings.Contains(logs.String(), "sync failing: db="+guid1) {
		t.Errorf("no log line for the state change:\n%s", logs)
	}

	failing.Store(false)
	st = waitState(t, eng, path, 60*time.Second, replication.StateReplicating)
	st = waitSynced(t, eng, path, 20*time.Second)
	waitRestorable(t, conn, guid1, rows(t, path), 20*time.Second)
	if st.Reason != "" {
		t.Errorf("replicating with reason %q", st.Reason)
	}
}

// A sleeping tenant woken by a write while S3 refuses uploads (its
// heartbeat fine) is sync failing, not "lease lost": this host may write,
// S3 has not taken the change. It catches up once S3 takes it.
func TestWakeWhileS3RefusesUploads(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	endpoint, failing, _ := failingUploads(t, srv)
	conn.Endpoint = endpoint
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	writeAndClose(t, path, 0, 3)
	eng, _ := start(t, replication.Options{Host: "h", SleepAfter: time.Second}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitState(t, eng, path, 30*time.Second, replication.StateSleeping)

	failing.Store(true)
	writeAndClose(t, path, 3, 2)
	st := waitState(t, eng, path, 30*time.Second, replication.StateSyncFailing, replication.StateLeaseLost)
	if st.State != replication.StateSyncFailing || !strings.Contains(st.Reason, "upload to S3 failed") || st.SyncErrors == 0 {
		t.Fatalf("woken while S3 refuses uploads: %q (%s), %d sync errors; want sync failing, counted", st.State, st.Reason, st.SyncErrors)
	}
	failing.Store(false)
	waitRestorable(t, conn, guid2, rows(t, path), 60*time.Second)
	waitState(t, eng, path, 30*time.Second, replication.StateReplicating, replication.StateSleeping)
}

// A heartbeat that fails once while a tenant is sync failing: the tenant's
// claim is read again (the gate refuses its uploads until then), and it
// replicates again once S3 takes its uploads; it never stays refused.
func TestSyncFailingThroughAHeartbeatBlip(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	var failUploads, failBeats atomic.Bool
	p, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Fault: func(r s3proxy.Request) s3proxy.Fault {
		switch {
		case failUploads.Load() && r.Kind == s3proxy.Put && !r.Control && strings.Contains(r.Key, "/0000/"):
			return s3proxy.Fault{Status: http.StatusServiceUnavailable}
		case failBeats.Load() && r.Kind == s3proxy.Put && r.Control && strings.HasSuffix(r.Key, "heartbeat.json"):
			failBeats.Store(false) // one beat fails, the next succeeds: no fence
			return s3proxy.Fault{Status: http.StatusBadRequest}
		}
		return s3proxy.Fault{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	conn.Endpoint = p.URL()
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	writeAndClose(t, path, 0, 3)
	eng, logs := start(t, replication.Options{Host: "h", SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)

	failUploads.Store(true)
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 100, 3)
	waitState(t, eng, path, 30*time.Second, replication.StateSyncFailing)
	failBeats.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "heartbeat failed") {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The next beat succeeds: a comeback, with no fence in between.
	time.Sleep(3 * fast.BeatEvery)
	if strings.Contains(logs.String(), "lease lost (retrying): db="+guid3+" reason=\"heartbeat to S3 failing") {
		t.Fatal("the host was fenced: the blip was too long to test the unfenced comeback")
	}
	failUploads.Store(false)
	waitRestorable(t, conn, guid3, rows(t, path), 60*time.Second)
	waitState(t, eng, path, 30*time.Second, replication.StateReplicating)
}
