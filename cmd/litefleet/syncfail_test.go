package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// statusTenant is a tenant of /status with the fields these tests read.
type statusTenant struct {
	Tenant         string    `json:"tenant"`
	State          string    `json:"state"`
	Reason         string    `json:"reason"`
	Since          time.Time `json:"since"`
	LocalTXID      uint64    `json:"local_txid"`
	ReplicatedTXID uint64    `json:"replicated_txid"`
	SyncErrors     int64     `json:"sync_errors"`
	LagTXIDs       uint64    `json:"lag_txids"`
}

func statusOf(t *testing.T, base, tenant string) statusTenant {
	t.Helper()
	_, body := httpGet(t, base+"/status")
	var doc struct{ Tenants []statusTenant }
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	for _, x := range doc.Tenants {
		if x.Tenant == tenant {
			return x
		}
	}
	t.Fatalf("/status has no %s:\n%s", tenant, body)
	return statusTenant{}
}

// S3 refuses a replicator's uploads of changes while its heartbeats and
// host records still get through: the tenant is "sync failing" (why, since
// when) in /status, /metrics, /healthz, its host record, ls (text and
// JSON, with the lag the row's own TXIDs give) and inspect, never
// replicating or in sync; every failed sync is counted. Once S3 takes the
// uploads again, every surface says so.
func TestSyncFailingEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	var failing atomic.Bool
	proxy, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Fault: func(r s3proxy.Request) s3proxy.Fault {
		if failing.Load() && r.Kind == s3proxy.Put && !r.Control && strings.Contains(r.Key, "/0000/") {
			return s3proxy.Fault{Status: http.StatusServiceUnavailable}
		}
		return s3proxy.Fault{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)
	p := startLitefleet(t, testpeer.CredEnv(srv), "replicate", "-bucket", conn.Bucket, "-endpoint", proxy.URL(),
		"-dir", dir, "-host", "stall-1", "-addr", "127.0.0.1:0", "-sleep-after", "0")
	base := "http://" + p.WaitFor(`monitor listening: addr=(\S+)`, 20*time.Second)[1]
	p.WaitFor(`replicating: db=`+guid1, 30*time.Second)
	synced := lastPost(t, p, guid1)

	failing.Store(true)
	before := time.Now()
	testpeer.InsertRows(t, db, 5, 11)
	var st statusTenant
	eventually(t, 30*time.Second, func() string {
		st = statusOf(t, base, guid1)
		if st.State != "sync failing" {
			return fmt.Sprintf("/status: %+v, want sync failing", st)
		}
		return ""
	})
	if st.ReplicatedTXID != synced || st.LocalTXID <= synced || st.LagTXIDs != st.LocalTXID-st.ReplicatedTXID {
		t.Errorf("/status: %+v, want replicated %d (what S3 acknowledged), local ahead, lag_txids their difference", st, synced)
	}
	if !strings.Contains(st.Reason, "upload to S3 failed") || st.Since.Before(before.Add(-time.Second)) {
		t.Errorf("/status: reason %q since %s, want the failed upload, since after %s", st.Reason, st.Since, before)
	}
	code, body := httpGet(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, guid1+": sync failing since ") || !strings.Contains(body, "upload to S3 failed") {
		t.Errorf("/healthz: %d %q, want 503 naming the tenant sync failing, since when and why", code, body)
	}
	_, text := httpGet(t, base+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if errs, _ := gauge(mf, "litefleet_tenant_sync_errors_total", guid1); errs < 1 {
		t.Errorf("litefleet_tenant_sync_errors_total = %v while uploads fail", errs)
	}
	foundState := false
	for _, m := range mf["litefleet_tenant_state"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		foundState = foundState || labels["tenant"] == guid1 && labels["state"] == "sync_failing"
	}
	if !foundState {
		t.Errorf("no litefleet_tenant_state{state=\"sync_failing\"} for %s", guid1)
	}

	// ls, from the file and the host's record (published each beat: the
	// record's PUT is not a tenant's upload): the host's state, and the
	// lag of the row's own numbers.
	eventually(t, 40*time.Second, func() string {
		_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
		r := rows[guid1]
		if r.Status != "sync failing" || r.State != "sync failing" || !strings.Contains(r.Note, "upload to S3 failed") {
			return fmt.Sprintf("ls -json: %+v, want sync failing from host stall-1", r)
		}
		return ""
	})
	lsCmd := exec.Command(binary, "ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-dir", dir, "-json", "-no-cache")
	lsCmd.Env = testpeer.CredEnv(srv)
	out, err := lsCmd.Output()
	if err != nil {
		t.Fatalf("ls -json: %v", err)
	}
	{
		var doc struct {
			Tenants []struct {
				Tenant   string  `json:"tenant"`
				LagTXIDs *uint64 `json:"lag_txids"`
				Local    struct {
					TXID uint64 `json:"txid"`
				} `json:"local"`
				Remote struct {
					LatestTXID uint64 `json:"latest_txid"`
				} `json:"remote"`
			} `json:"tenants"`
		}
		_ = json.Unmarshal(out, &doc)
		for _, r := range doc.Tenants {
			if r.Tenant == guid1 && (r.LagTXIDs == nil || *r.LagTXIDs != r.Local.TXID-r.Remote.LatestTXID || *r.LagTXIDs == 0) {
				t.Errorf("ls -json: lag_txids %v, local %d, remote %d: want their difference", r.LagTXIDs, r.Local.TXID, r.Remote.LatestTXID)
			}
		}
	}
	code, insp := runLitefleet(t, testpeer.CredEnv(srv), "inspect", guid1, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 0 || !strings.Contains(insp, "stall-1") || !strings.Contains(insp, "sync failing for ") {
		t.Errorf("inspect: exit %d\n%s\nwant host stall-1 sync failing for how long", code, insp)
	}

	// S3 takes the uploads again.
	failing.Store(false)
	eventually(t, 60*time.Second, func() string {
		if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
			return fmt.Sprintf("/healthz: %d %q after S3 came back", code, body)
		}
		return ""
	})
	if st := statusOf(t, base, guid1); st.State != "replicating" || st.ReplicatedTXID != st.LocalTXID {
		t.Errorf("/status after S3 came back: %+v, want replicating, in sync", st)
	}
	eventually(t, 40*time.Second, func() string {
		_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
		if r := rows[guid1]; r.Status != "in sync" || r.LagTXIDs != 0 {
			return fmt.Sprintf("ls -json after S3 came back: %+v, want in sync", r)
		}
		return ""
	})
	if !strings.Contains(p.Out.String(), "sync failing: db="+guid1) {
		t.Errorf("no log line for the state change")
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// The 12 s stall: S3 holds the uploads of changes (they neither
// finish nor fail) while the heartbeats get through. /status and ls agree
// on what S3 has acknowledged: the same TXIDs behind, never "in sync, lag
// 0" from a record written before the stall; then, once the uploads land,
// both say in sync.
func TestStalledUploadsLagAlike(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	release := make(chan struct{})
	var stalling atomic.Bool
	proxy, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Fault: func(r s3proxy.Request) s3proxy.Fault {
		if stalling.Load() && r.Kind == s3proxy.Put && !r.Control && strings.Contains(r.Key, "/0000/") {
			select { // held, as a stalled S3 holds a request
			case <-release:
			case <-time.After(15 * time.Second):
			}
		}
		return s3proxy.Fault{}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)
	p := startLitefleet(t, testpeer.CredEnv(srv), "replicate", "-bucket", conn.Bucket, "-endpoint", proxy.URL(),
		"-dir", dir, "-host", "stall-2", "-addr", "127.0.0.1:0", "-sleep-after", "0")
	base := "http://" + p.WaitFor(`monitor listening: addr=(\S+)`, 20*time.Second)[1]
	p.WaitFor(`replicating: db=`+guid1, 30*time.Second)
	synced := lastPost(t, p, guid1)
	// The record says in sync before the stall.
	eventually(t, 30*time.Second, func() string {
		_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
		if r := rows[guid1]; r.Status != "in sync" || r.Remote == nil || r.Remote.LatestTXID != synced {
			return fmt.Sprintf("ls before the stall: %+v", r)
		}
		return ""
	})

	stalling.Store(true)
	testpeer.InsertRows(t, db, 5, 11)
	var st statusTenant
	eventually(t, 10*time.Second, func() string {
		st = statusOf(t, base, guid1)
		if st.LagTXIDs == 0 {
			return fmt.Sprintf("/status: %+v, want TXIDs not in S3", st)
		}
		return ""
	})
	if st.ReplicatedTXID != synced {
		t.Fatalf("/status replicated %d during the stall, want the %d S3 acknowledged", st.ReplicatedTXID, synced)
	}
	_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
	r := rows[guid1]
	if r.LagTXIDs != st.LagTXIDs || r.Remote == nil || r.Remote.LatestTXID != synced {
		t.Errorf("ls -json during the stall: lag %d tx, S3 TXID %v; /status: lag %d tx at %d: they must agree", r.LagTXIDs, r.Remote, st.LagTXIDs, st.ReplicatedTXID)
	}
	if r.Status == "in sync" && r.LagTXIDs == 0 {
		t.Errorf("ls -json during the stall: in sync, lag 0")
	}

	stalling.Store(false)
	close(release)
	eventually(t, 60*time.Second, func() string {
		st := statusOf(t, base, guid1)
		_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
		if r := rows[guid1]; st.LagTXIDs != 0 || r.Status != "in sync" || r.LagTXIDs != 0 {
			return fmt.Sprintf("after the stall: /status %+v, ls %+v", st, r)
		}
		return ""
	})
}

// The clean stop: the last write came well before the stop (more
// than the 10 s a change may wait), the stop's own checkpoint moved the
// file's mtime, and local TXID = S3 TXID: ls says in sync, not "not
// replicating: changed since the last sync". A write after the stop is
// such a change, and ls says so.
func TestCleanStopIsInSync(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)
	if err := db.Close(); err != nil { // the application is gone: litefleet's close is the last
		t.Fatal(err)
	}
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-host", "stop-1")...)
	p.WaitFor(`replicating: db=`+guid1, 30*time.Second)
	time.Sleep(12 * time.Second) // past ls's 10 s: an mtime rule would call the stop's checkpoint a change
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	_, rows := lsHostsJSON(t, srv, conn, "-dir", dir)
	r := rows[guid1]
	if r.Status != "in sync" || r.Remote == nil || r.LagTXIDs != 0 {
		t.Fatalf("ls -json after a clean stop: %+v (remote %+v), want in sync", r, r.Remote)
	}

	// The application writes again, nobody replicates: changed since the
	// last sync.
	db = testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 5, 1)
	_, rows = lsHostsJSON(t, srv, conn, "-dir", dir)
	if r := rows[guid1]; r.Status != "not replicating" || !strings.Contains(r.Note, "changed since the last sync") {
		t.Fatalf("ls -json after a write nobody replicates: %+v, want not replicating: changed since the last sync", r)
	}
}

// S3 stopped, no earlier answer: a local tenant's row is unknown, its lag
// null, never "not replicating: nothing in S3".
func TestLsUnknownWhenS3Stopped(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.StartPrivate(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	testpeer.InsertRows(t, testpeer.OpenDB(t, filepath.Join(dir, guid1+".db")), 0, 3)
	srv.Kill()
	cmd := exec.Command(binary, "ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-dir", dir, "-json", "-no-cache")
	cmd.Env = testpeer.CredEnv(&srv.Server)
	out, err := cmd.Output()
	if err == nil {
		t.Fatal("ls exits 0 with S3 stopped")
	}
	var doc struct {
		Tenants []struct {
			Tenant   string  `json:"tenant"`
			Status   string  `json:"status"`
			Note     string  `json:"note"`
			LagTXIDs *uint64 `json:"lag_txids"`
		} `json:"tenants"`
		RemoteErr string `json:"remote_error"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("ls -json: %v\n%s", err, out)
	}
	if len(doc.Tenants) != 1 || doc.Tenants[0].Status != "unknown" || doc.Tenants[0].LagTXIDs != nil || doc.RemoteErr == "" {
		t.Fatalf("ls -json with S3 stopped: %s, want one row unknown, lag null, and S3's error", out)
	}
}
