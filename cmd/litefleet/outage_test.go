package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
)

// outage replicates while a writer commits a row every 100 ms, takes S3
// away for 45 s (longer than a host is given to prove it is alive), brings
// it back, and checks that every committed row is restorable, with
// litefleet's restore and with litestream's, and that the replicator said
// what happened and stopped cleanly.
func outage(t *testing.T, args func(srv *s3test.Private, conn s3conn.Conn, dir, path string) []string, down, up func(*s3test.Private)) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	srv := s3test.StartPrivate(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)
	p := startLitefleet(t, testpeer.CredEnv(&srv.Server), args(srv, conn, dir, path)...)
	p.WaitFor(`replicating: db=`+guid1, 20*time.Second)

	var committed atomic.Int64
	committed.Store(5)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 5; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := db.Exec(`INSERT INTO t (id, val) VALUES (?, ?)`, i, "row"); err != nil {
				t.Errorf("commit %d: %v", i, err)
				return
			}
			committed.Add(1)
		}
	})
	// Rows committed and uploaded before the outage.
	waitCommitted := func(n int64, what string) {
		t.Helper()
		testpeer.Eventually(t, 30*time.Second, what, func() bool { return committed.Load() >= n })
	}
	waitCommitted(committed.Load()+10, "10 rows committed before the outage")
	p.WaitFor(seedTx(guid1), 20*time.Second)
	down(srv)
	wentDown := time.Now()
	// The host stops writing (fenced) while S3 is away...
	p.WaitFor(`lease lost \(retrying\): db=`+guid1, 60*time.Second)
	// ...and S3 stays away for 45 s, longer than a host is given to prove
	// it is alive (DeadAfter, 40 s): the fault's length, not a wait for
	// something to happen.
	<-time.After(time.Until(wentDown.Add(45 * time.Second)))
	up(srv)
	p.WaitFor(`replication resumed: db=`+guid1, 60*time.Second)
	waitCommitted(committed.Load()+10, "10 rows committed after the outage")
	close(stop)
	wg.Wait()
	want := testpeer.Rows(t, path)
	if int64(len(want)) != committed.Load() {
		t.Fatalf("the writer committed %d rows, the file holds %d", committed.Load(), len(want))
	}
	// Everything committed during and after the outage reaches S3.
	eventually(t, 40*time.Second, func() string {
		got := restoreRowsQuiet(t, &srv.Server, conn, guid1)
		if len(got) != len(want) {
			return fmt.Sprintf("after the outage S3 restores %d of %d committed rows", len(got), len(want))
		}
		testpeer.SameRows(t, got, want)
		return ""
	})
	// ls, from the file and the host's record, agrees.
	eventually(t, 30*time.Second, func() string {
		_, rows := lsHostsJSON(t, &srv.Server, conn, "-dir", dir)
		if r := rows[guid1]; r.Status != "in sync" || (r.State != "replicating" && r.State != "sleeping") {
			return fmt.Sprintf("ls -json after the outage: %s is %q (host state %q, note %q), want in sync", guid1, r.Status, r.State, r.Note)
		}
		return ""
	})
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(p.Out.String(), "stopped cleanly") {
		t.Fatal("no clean stop")
	}
	out := filepath.Join(t.TempDir(), "litestream.db")
	testpeer.Restore(t, &srv.Server, conn, guid1, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), want)
}

// restoreRowsQuiet restores the tenant's latest state with litefleet's
// restore; nil when it cannot yet. Safe in goroutines: it never fails the
// test.
func restoreRowsQuiet(t *testing.T, srv *s3test.Server, conn s3conn.Conn, tenant string) []string {
	api, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		return nil
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	if _, err := restore.Run(context.Background(), api, restore.Options{Conn: conn, Tenant: tenant, Output: out}); err != nil {
		return nil
	}
	rows, _ := testpeer.QueryErr("file:" + out + "?mode=ro&immutable=1")
	return rows
}

// TestOutageFrozenDSN: S3 hangs (SIGSTOP) for 45 s under -dsn.
func TestOutageFrozenDSN(t *testing.T) {
	outage(t, func(srv *s3test.Private, conn s3conn.Conn, _, path string) []string {
		return []string{"replicate", "-dsn", path, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint}
	}, (*s3test.Private).Freeze, (*s3test.Private).Thaw)
}

// TestOutageKilledDir: S3 is killed and restarted after 45 s, under -dir.
func TestOutageKilledDir(t *testing.T) {
	outage(t, func(srv *s3test.Private, conn s3conn.Conn, dir, _ string) []string {
		return []string{"replicate", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-sleep-after", "5s"}
	}, (*s3test.Private).Kill, func(p *s3test.Private) { p.Restart(t) })
}
