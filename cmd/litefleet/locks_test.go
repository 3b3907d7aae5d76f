package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestReplicateKeepsItsLock is issue 16's case 1 as reported, with the
// real binary: a sleeping WAL tenant is written on an application
// connection held open while it wakes, then closed; a second row follows
// on a new connection. litefleet holds its lock on the database all along
// (/proc/locks), the WAL is never deleted under Litestream, both rows are
// restorable by litestream restore, and the stop is clean (exit 0), the
// application's connections closed before it.
func TestReplicateKeepsItsLock(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	testpeer.NewDB(t, path, 5)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-host", "locks", "-sleep-after", "3s")...)
	p.WaitFor(`sleeping: db=`+guid1, 60*time.Second)

	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 100, 1)
	// The wake: a second "replicating" line (the first is the start's).
	testpeer.Eventually(t, 20*time.Second, "the tenant woke", func() bool {
		return strings.Count(p.Out.String(), "replicating: db="+guid1) >= 2
	})
	pid := p.Cmd.Process.Pid
	if !testpeer.HoldsLock(t, pid, path) {
		t.Fatal("the tenant woke, but litefleet holds no lock on its database")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("the application's close deleted the WAL of an awake tenant: %v", err)
	}
	if !testpeer.HoldsLock(t, pid, path) {
		t.Fatal("after the application's close, litefleet holds no lock on the database")
	}
	db = testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 101, 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	want := testpeer.Rows(t, path)
	testpeer.Eventually(t, 30*time.Second, "both rows restorable by litestream restore", func() bool {
		out := filepath.Join(t.TempDir(), "r.db")
		url := conn.URL(guid1) + "?endpoint=" + srv.Endpoint + "&region=us-east-1&forcePathStyle=true"
		if code, _ := testpeer.Run(t, testpeer.Without(testpeer.CredEnv(srv), "AWS_CA_BUNDLE"), testpeer.Bin(t, testpeer.V5), "restore", "-o", out, url); code != 0 {
			return false
		}
		return len(testpeer.Restored(t, out)) == len(want)
	})
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after a clean stop:\n%s", code, p.Out.String())
	}
	for _, w := range []string{"invalid wal header magic", "-wal: no such file", "not replicated"} {
		if strings.Contains(p.Out.String(), w) {
			t.Fatalf("%q in litefleet's output:\n%s", w, p.Out.String())
		}
	}
}
