package replication_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// walLost are Litestream's words when the WAL was deleted under it.
var walLost = []string{"invalid wal header magic", "-wal: no such file"}

func assertWALKept(t *testing.T, logs *testpeer.Buffer) {
	t.Helper()
	for _, w := range walLost {
		if strings.Contains(logs.String(), w) {
			t.Fatalf("the WAL was deleted under Litestream (%q in the log)", w)
		}
	}
}

// TestWakeKeepsItsLock is issue 16's case 1 after a wake: an application in
// a process of its own writes to a sleeping tenant on a connection it keeps
// open while the tenant wakes, then closes it. litefleet must hold its
// shared lock throughout, so that the application's close is not the last
// connection's (which checkpoints and deletes the WAL under Litestream),
// and the next write must be restorable within seconds.
func TestWakeKeepsItsLock(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 5)
	eng, logs := start(t, replication.Options{SleepAfter: 3 * time.Second}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)
	waitState(t, eng, path, 20*time.Second, replication.StateSleeping)

	app := testpeer.StartApp(t, path)
	app.Do("open")
	app.Do("insert 100 1")
	waitState(t, eng, path, 10*time.Second, replication.StateReplicating)
	if !testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("the tenant is awake, but this process holds no lock on its database")
	}
	app.Do("close")
	if !testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("after the application's close, this process holds no lock on the database")
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("the application's close deleted the WAL of an awake tenant: %v", err)
	}
	app.Do("open")
	app.Do("insert 101 1")
	app.Do("close")
	want := rows(t, path)
	waitRestorable(t, conn, guid1, want, 15*time.Second)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid1), want)
	assertWALKept(t, logs)
}

// TestRestartKeepsItsLock is case 1 after a restart: a tenant with
// Litestream's state beside it, opened by a new engine that never sleeps.
func TestRestartKeepsItsLock(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 5)
	src := replication.Source{Dirs: []string{dir}, DirConn: conn}
	first, _ := start(t, replication.Options{SleepAfter: -1}, src)
	waitSynced(t, first, path, 20*time.Second)
	closeEngine(t, first)

	eng, logs := start(t, replication.Options{SleepAfter: -1}, src)
	waitState(t, eng, path, 20*time.Second, replication.StateReplicating)
	app := testpeer.StartApp(t, path)
	for i := range 3 {
		app.Do("open")
		app.Do(fmt.Sprintf("insert %d 2", 100*(i+1)))
		app.Do("close")
		if !testpeer.HoldsLock(t, os.Getpid(), path) {
			t.Fatalf("after the application's close %d, this process holds no lock on the database", i+1)
		}
	}
	want := rows(t, path)
	waitRestorable(t, conn, guid1, want, 15*time.Second)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid1), want)
	assertWALKept(t, logs)
}
