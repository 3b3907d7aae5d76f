package tui

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
)

// TestFleetBackend drives the real backend against the real S3 server:
// refresh, replication started and stopped in this process, the restore
// guard on a replicated database, a restore, the name check, and a switch
// of bucket and prefix.
func TestFleetBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	const guid = "12345678-1234-5678-9abc-123456789012"
	path := filepath.Join(dir, guid+".db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := db.Exec(`INSERT INTO t (v) VALUES (?)`, fmt.Sprint("row ", i)); err != nil {
			t.Fatal(err)
		}
	}

	client, err := s3browse.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	fl := &fleet.Fleet{Conn: conn, API: client, Discover: fleet.DiscoverOptions{Dirs: []string{dir}}}
	eng, err := replication.New(replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn, OnRequest: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b := NewFleetBackend(fl, eng, FleetOptions{NoCache: true, Dirs: []string{dir}})
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
