package fleet

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file"

	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
)

// A row whose S3 side comes from a host record shows the lag of its own
// numbers, local TXID − S3 TXID, not the one the record computed from the
// host's: the "16 10 0 tx". It says how old the record is.
func TestLagIsTheRowsOwnTXIDs(t *testing.T) {
	rep := hostview.HostReport{Tenant: vg1, Host: "web-1", State: "replicating", LocalTXID: 10, Replicated: 10, RecordAge: 12 * time.Second}
	rem := recordSummary(vg1, &rep)
	l := local(vg1, 16, 3*time.Second, tenants.LTXRef{MinTXID: 11, MaxTXID: 16, ModTime: now.Add(-3 * time.Second)})
	rows := Join([]tenants.Local{l}, []s3browse.TenantSummary{rem}, now, ViewOptions{})
	ApplyHostReports(rows, map[string][]hostview.HostReport{vg1: {rep}}, ViewOptions{})
	r := rows[0]
	if r.LagTXIDs != r.Local.TXID-r.Remote.LatestTXID || r.LagTXIDs != 6 || r.Lag != 3*time.Second {
		t.Errorf("lag %d tx / %s for local %d and S3 %d, want 6 tx / 3s", r.LagTXIDs, r.Lag, r.Local.TXID, r.Remote.LatestTXID)
	}
	if r.RecordAge != 12*time.Second || r.Status != StatusInSync {
		t.Errorf("record age %s, status %q (%s): want 12s, in sync (3s is under the threshold)", r.RecordAge, r.Status, r.Note)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		LagTXIDs  *uint64 `json:"lag_txids"`
		RecordAge int64   `json:"record_age_ns"`
		Local     struct{ TXID uint64 }
		Remote    struct {
			LatestTXID uint64 `json:"latest_txid"`
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.LagTXIDs == nil || *doc.LagTXIDs != doc.Local.TXID-doc.Remote.LatestTXID || doc.RecordAge != int64(12*time.Second) {
		t.Errorf("ls -json row %s: lag_txids is not local.txid - remote.latest_txid, or no record age", b)
	}
	// The sizes a host record does not know are null, never 0.
	for _, k := range []string{`"objects":null`, `"bytes":null`, `"snapshots":null`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("ls -json row %s: no %s", b, k)
		}
	}

	// Nothing local (ls over the bucket alone): the host's local TXID is
	// the row's, and the lag is its own arithmetic too.
	rep = hostview.HostReport{Tenant: vg1, Host: "web-1", State: "replicating", LocalTXID: 15, Replicated: 10, Lag: 30 * time.Second, RecordAge: 4 * time.Second}
	rows = Join(nil, []s3browse.TenantSummary{recordSummary(vg1, &rep)}, now, ViewOptions{})
	ApplyHostReports(rows, map[string][]hostview.HostReport{vg1: {rep}}, ViewOptions{})
	if r := rows[0]; r.LocalTXID() != 15 || r.LagTXIDs != r.LocalTXID()-r.Remote.LatestTXID || r.Status != StatusLagging {
		t.Errorf("bucket-only row: local %d, S3 %d, lag %d, status %q: want 15 - 10 = 5, lagging", r.LocalTXID(), r.Remote.LatestTXID, r.LagTXIDs, r.Status)
	}
}

// What is unknown is shown as unknown: a lag without a local TXID, or
// without an S3 TXID, is null in JSON, never 0.
func TestUnknownLagIsNull(t *testing.T) {
	v03 := remote(vg1, 0, time.Minute, -1)
	v03.Format = s3browse.FormatGenerations
	for name, tc := range map[string]struct {
		l   tenants.Local
		rem []s3browse.TenantSummary
	}{
		"no local Litestream state": {local(vg1, 0, time.Second), []s3browse.TenantSummary{remote(vg1, 42, time.Second, -1)}},
		"nothing in S3":             {local(vg1, 7, time.Second), nil},
		"v0.3 replica, no TXID":     {local(vg1, 7, time.Second), []s3browse.TenantSummary{v03}},
	} {
		rows := Join([]tenants.Local{tc.l}, tc.rem, now, ViewOptions{})
		r := rows[0]
		if r.LagUnknown == "" {
			t.Errorf("%s: lag %d tx known", name, r.LagTXIDs)
			continue
		}
		b, _ := json.Marshal(r)
		if !strings.Contains(string(b), `"lag_txids":null`) || !strings.Contains(string(b), `"lag_ns":null`) {
			t.Errorf("%s: %s, want lag_txids and lag_ns null", name, b)
		}
		if r.Status == StatusInSync {
			t.Errorf("%s: in sync with an unknown lag", name)
		}
	}
}

// A host that reports a tenant sync failing makes its row "sync failing",
// saying for how long (the record's own times, plus its age by S3's clock)
// and why.
func TestHostSyncFailingRow(t *testing.T) {
	rep := hostview.HostReport{Tenant: vg1, Host: "web-1", State: "sync failing", Reason: "upload to S3 failed: 503",
		LocalTXID: 21, Replicated: 10, RecordAge: 2 * time.Second, StateAge: 14 * time.Second}
	rows := Join([]tenants.Local{local(vg1, 21, time.Second)}, []s3browse.TenantSummary{recordSummary(vg1, &rep)}, now, ViewOptions{})
	ApplyHostReports(rows, map[string][]hostview.HostReport{vg1: {rep}}, ViewOptions{})
	r := rows[0]
	if r.Status != StatusSyncFailing || !strings.Contains(r.Note, "sync failing for 14s: upload to S3 failed: 503") || r.LagTXIDs != 11 {
		t.Errorf("row %q %q lag %d, want sync failing for 14s with the reason, 11 TXIDs behind", r.Status, r.Note, r.LagTXIDs)
	}
}

// With S3 out of reach and no earlier answer, a local tenant is
// "unknown", never "not replicating": nothing says S3 lacks it.
func TestUnreachableS3IsUnknown(t *testing.T) {
	dir := t.TempDir()
	testpeer.InsertRows(t, testpeer.OpenDB(t, filepath.Join(dir, g1+".db")), 0, 3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there: connection refused
	conn := s3conn.Conn{Endpoint: endpoint, Bucket: "bkt", Region: "us-east-1", ForcePathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"}
	api, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	fl := &Fleet{Conn: conn, API: api, Discover: tenants.DiscoverOptions{Dirs: []string{dir}}}
	v, err := fl.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.RemoteErr == "" || len(v.Rows) != 1 {
		t.Fatalf("view %+v, want one row and S3's error", v)
	}
	if r := v.Rows[0]; r.Status != StatusUnknown || r.LagUnknown == "" {
		t.Errorf("row %q (%s), lag unknown %q: want unknown", r.Status, r.Note, r.LagUnknown)
	}

	// An older answer that does not list the tenant says nothing of now.
	fl.remote, fl.remoteAt = []s3browse.TenantSummary{}, time.Now().Add(-time.Minute)
	v, _ = fl.Refresh(context.Background())
	if r := v.Rows[0]; r.Status != StatusUnknown || !strings.Contains(r.Note, "does not list it") {
		t.Errorf("with an older answer: row %q (%s), want unknown", r.Status, r.Note)
	}

	// An older answer that lists it, from a host record: the record is as
	// old as it was when read plus the answer's age.
	rep := hostview.HostReport{Tenant: g1, Host: "web-1", State: "replicating", LocalTXID: 3, Replicated: 3, RecordAge: 5 * time.Second}
	fl.remote = []s3browse.TenantSummary{recordSummary(g1, &rep)}
	fl.reports = map[string][]hostview.HostReport{g1: {rep}}
	v, _ = fl.Refresh(context.Background())
	if r := v.Rows[0]; r.RecordAge < time.Minute+5*time.Second || r.Remote == nil || r.Remote.LatestTXID != 3 {
		t.Errorf("with an older answer from a record: record age %s, remote %+v: want 1m5s or more, TXID 3", r.RecordAge, r.Remote)
	}
	if fl.reports[g1][0].RecordAge != 5*time.Second {
		t.Errorf("the kept answer was aged in place: %s", fl.reports[g1][0].RecordAge)
	}
}

// "Changed since the last sync" is judged from the WAL against
// Litestream's last sync, not from the file's mtime: the checkpoint of a
// clean stop moves the mtime and changes nothing.
func TestChangedSinceSyncIgnoresCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, g1+".db")
	sqldb := testpeer.OpenDB(t, path)
	db := litestream.NewDB(path)
	db.MonitorInterval = 0
	r := litestream.NewReplicaWithClient(db, file.NewReplicaClient(t.TempDir()))
	r.MonitorEnabled = false
	db.Replica = r
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	testpeer.InsertRows(t, sqldb, 0, 3)
	if err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	synced := uint64(r.Pos().TXID)
	// A tiny threshold: the old rule (mtime past the last sync's time by
	// more than it) calls any later checkpoint a change.
	opt := ViewOptions{LagThreshold: time.Millisecond}
	judgeNow := func(what string) Row {
		t.Helper()
		ls, err := tenants.Discover(ctx, tenants.DiscoverOptions{Dirs: []string{dir}})
		if err != nil || len(ls) != 1 {
			t.Fatalf("%s: discover %v %v", what, ls, err)
		}
		if ls[0].TXID != synced {
			t.Fatalf("%s: local TXID %d, want %d", what, ls[0].TXID, synced)
		}
		return Join(ls, []s3browse.TenantSummary{remote(g1, synced, time.Second, -1)}, time.Now(), opt)[0]
	}
	if row := judgeNow("after the sync"); row.Status != StatusInSync || row.Local.WALAhead {
		t.Fatalf("after the sync: %q (%s), WAL ahead %v, want in sync", row.Status, row.Note, row.Local.WALAhead)
	}

	// A write Litestream has not read: the WAL is ahead of its last sync.
	testpeer.InsertRows(t, sqldb, 3, 1)
	if row := judgeNow("after an unsynced write"); row.Status != StatusNotReplicating || !row.Local.WALAhead || !strings.Contains(row.Note, "changed since the last sync") {
		t.Fatalf("after an unsynced write: %q (%s), want not replicating: changed since the last sync", row.Status, row.Note)
	}
	if err := db.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	synced = uint64(r.Pos().TXID)

	// A clean stop: Litestream closes, then the application; the last
	// close checkpoints the WAL into the file and deletes it.
	time.Sleep(20 * time.Millisecond)
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sqldb.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if err := sqldb.Close(); err != nil {
		t.Fatal(err)
	}
	row := judgeNow("after a clean stop")
	if row.Local.Changed.Sub(row.Local.TXIDTime) <= opt.LagThreshold {
		t.Fatalf("the checkpoint did not move the mtime (%s after the sync): the test proves nothing", row.Local.Changed.Sub(row.Local.TXIDTime))
	}
	if row.Status != StatusInSync {
		t.Errorf("after a clean stop, local TXID = S3 TXID: %q (%s), want in sync", row.Status, row.Note)
	}
}

// A host that missed a beat cannot vouch for a tenant being in sync: its
// record, whatever it says, predates what the application wrote while the
// host was cut off from S3 (chaos seed 22: ls -json said in sync for a
// host refused by S3 for 32 s, whose record said local = replicated). With
// nothing local, the row's lag is unknown until the host beats again; a
// heartbeat on time leaves the row in sync.
func TestLateHeartbeatIsNotInSync(t *testing.T) {
	for _, tc := range []struct {
		age  time.Duration
		want Status
	}{
		{8 * time.Second, StatusInSync},
		{34 * time.Second, StatusUnknown},
	} {
		rep := hostview.HostReport{Tenant: vg1, Host: "web-2", State: "sleeping", LocalTXID: 9, Replicated: 9, HostAge: tc.age, RecordAge: tc.age}
		rows := Join(nil, []s3browse.TenantSummary{recordSummary(vg1, &rep)}, now, ViewOptions{})
		ApplyHostReports(rows, map[string][]hostview.HostReport{vg1: {rep}}, ViewOptions{})
		r := rows[0]
		if r.Status != tc.want {
			t.Errorf("heartbeat %s old: %q (%s), want %q", tc.age, r.Status, r.Note, tc.want)
		}
		if tc.want == StatusUnknown && (r.LagUnknown == "" || !strings.Contains(r.Note, "heartbeat 34s ago")) {
			t.Errorf("heartbeat %s old: lag unknown %q, note %q: want the heartbeat's age said", tc.age, r.LagUnknown, r.Note)
		}
	}
}
