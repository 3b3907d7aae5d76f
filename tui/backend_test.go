package tui

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/verify"
)

// startBackend starts a real S3 server, a database of rows rows named
// guid in a folder of its own, an engine that replicates on request, and
// the UI's backend over them.
func startBackend(t *testing.T, guid string, rows int) (srv *s3test.Server, conn s3conn.Conn, path string, b *FleetBackend) {
	t.Helper()
	testpeer.Integration(t)
	srv = s3test.Start(t)
	conn = srv.Conn(t)
	dir := t.TempDir()
	path = filepath.Join(dir, guid+".db")
	testpeer.NewDB(t, path, rows)
	client, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	fl := &fleet.Fleet{Conn: conn, API: client, Discover: tenants.DiscoverOptions{Dirs: []string{dir}}}
	eng, err := replication.New(replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn, OnRequest: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return srv, conn, path, NewFleetBackend(fl, eng, FleetOptions{NoCache: true, Dirs: []string{dir}})
}

// TestFleetBackend drives the real backend against the real S3 server:
// refresh, replication started and stopped in this process, the restore
// guard on a replicated database, a restore, the name check, and a switch
// of bucket and prefix.
func TestFleetBackend(t *testing.T) {
	const guid = "12345678-1234-5678-9abc-123456789012"
	srv, conn, path, b := startBackend(t, guid, 10)
	ctx := t.Context()
	if c := b.Context(); c.Bucket != conn.Bucket || c.Endpoint != srv.Endpoint || c.Prefix != "databases" || len(c.Dirs) != 1 || len(c.Roots) != 1 {
		t.Fatalf("context: %+v", c)
	}

	row := func() fleet.Row {
		t.Helper()
		v, err := b.Refresh(ctx)
		if err != nil || v.RemoteErr != "" || len(v.Rows) != 1 {
			t.Fatalf("refresh: %v %+v", err, v)
		}
		return v.Rows[0]
	}
	r := row()
	if r.Status != fleet.StatusNotReplicating || r.Replicating {
		t.Fatalf("before replicating: %+v", r)
	}

	if err := b.StartReplication(ctx, *r.Local); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r = row(); r.Remote == nil || r.Remote.LatestTXID == 0; r = row() {
		if time.Now().After(deadline) {
			t.Fatalf("nothing replicated after 30s: %+v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !r.Replicating {
		t.Fatal("the view does not show the replication")
	}

	// The database being replicated is never restored over.
	plan, err := b.PlanRestore(ctx, restore.Options{Tenant: guid, Output: path, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.Refusal, "replicated by this process") {
		t.Fatalf("no refusal to restore over the replicated file: %q", plan.Refusal)
	}
	out := filepath.Join(t.TempDir(), guid+".restored.db")
	res, err := b.Restore(ctx, restore.Options{Tenant: guid, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.Integrity != "ok" || res.TXID == 0 {
		t.Fatalf("restore: %+v", res)
	}
	// The overwrite flow over that copy: the tenant is live (this process
	// holds its lease), but the copy is not the database it replicates.
	plan, err = b.PlanRestore(ctx, restore.Options{Tenant: guid, Output: out, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Refusal != "" || !plan.OutputExists {
		t.Fatalf("overwriting a copy of a live tenant is refused: %q", plan.Refusal)
	}

	if f, err := b.Validate(ctx); err != nil || len(f) != 0 {
		t.Fatalf("validate: %v %+v", err, f)
	}

	if err := b.StopReplication(ctx, *r.Local); err != nil {
		t.Fatal(err)
	}
	if r := row(); r.Replicating {
		t.Fatal("still replicating after stop")
	}

	// Another bucket: nothing of the first one's answer is shown.
	other := srv.Conn(t)
	if err := b.SetBucket(ctx, other.Bucket); err != nil {
		t.Fatal(err)
	}
	if r := row(); r.Remote != nil || b.Context().Bucket != other.Bucket {
		t.Fatalf("after :bucket: %+v", r)
	}
	if err := b.SetBucket(ctx, "no/such bucket"); err == nil {
		t.Fatal("a bad bucket name was accepted")
	}
	if err := b.SetPrefix(ctx, "tenants"); err != nil || b.Context().Prefix != "tenants" {
		t.Fatalf("prefix: %v %+v", err, b.Context())
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal("a second Close must be harmless:", err)
	}
}

// TestFleetBackendVerify drives `V`'s backend call against the real S3
// server: a tenant replicated by this process is verified (its restored
// copy proved equal to the host record's checksum), its live file is not
// touched, a tenant with nothing in S3 is unrestorable, and a cancelled
// verification is an error, not a verdict.
func TestFleetBackendVerify(t *testing.T) {
	const guid = "12345678-1234-5678-9abc-123456789012"
	_, _, path, b := startBackend(t, guid, 50)
	ctx := t.Context()
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if err := b.StartReplication(ctx, tenants.Local{Entry: tenants.Entry{Path: path}}); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := b.Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Rows) == 1 && v.Rows[0].Remote != nil && v.Rows[0].Remote.LatestTXID > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing replicated after 30s: %+v", v.Rows)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The host record names the tenant with its checksum once the upload
	// is acknowledged and the record written: until then the verdict is
	// unverifiable, never a failure.
	var rep *verify.Report
	deadline = time.Now().Add(60 * time.Second)
	for {
		if rep, err = b.Verify(ctx, guid); err != nil {
			t.Fatal(err)
		}
		if verify.Failed(rep.Verdict) {
			t.Fatalf("a healthy replica failed: %s: %s", rep.Verdict, rep.Reason)
		}
		if rep.Verdict == verify.Verified {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no host record's checksum to verify against after 60s: %s: %s", rep.Verdict, rep.Reason)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if rep.TXID == 0 || rep.Integrity != "ok" || rep.Checksum == "" || rep.Expected == nil || rep.Checksum != rep.Expected.Checksum {
		t.Fatalf("verified without proof: %+v", rep)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("verify replaced the live database file")
	}

	rep, err = b.Verify(ctx, "0badc0de-0000-4000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != verify.Unrestorable || !verify.Failed(rep.Verdict) {
		t.Fatalf("a tenant with nothing in S3: %s: %s", rep.Verdict, rep.Reason)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if rep, err := b.Verify(cctx, guid); err == nil {
		t.Fatalf("a cancelled verification gave a verdict: %+v", rep)
	}
}
