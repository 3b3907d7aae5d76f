package replication_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
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

// TestRefreshKeepsTheLock: the terminal UI replicates in-process, and its
// refresh reads every database's header (tenants.Discover) and restore's
// check probes locks: neither may drop the lock of an open tenant.
func TestRefreshKeepsTheLock(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 5)
	eng, logs := start(t, replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitState(t, eng, path, 20*time.Second, replication.StateReplicating)
	if !testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("an open tenant, and no lock of this process on its database")
	}
	api, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		// No InUse: every header is read, as for files the engine has not
		// opened yet.
		if _, err := tenants.Discover(context.Background(), tenants.DiscoverOptions{Dirs: []string{dir}}); err != nil {
			t.Fatal(err)
		}
		if _, err := tenants.JournalMode(path); err != nil {
			t.Fatal(err)
		}
		// Not told this process replicates it (no IsReplicating): the
		// lock probe runs, and must see this process's own hold.
		if _, err := restore.Run(context.Background(), api, restore.Options{Conn: conn, Tenant: guid1, Output: path, Force: true}); err == nil {
			t.Fatal("restore over a live, open tenant did not refuse")
		}
	}
	if !testpeer.HoldsLock(t, os.Getpid(), path) {
		t.Fatal("the refresh dropped the lock of an open tenant")
	}
	app := testpeer.StartApp(t, path)
	app.Do("open")
	app.Do("insert 100 3")
	app.Do("close")
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("the application's close deleted the WAL of an open tenant: %v", err)
	}
	waitRestorable(t, conn, guid1, rows(t, path), 15*time.Second)
	assertWALKept(t, logs)
}

// TestNotADatabaseFile is case 5: a folder, a FIFO, an empty file and a
// symbolic link named like tenants each get a one-line reason, and the
// empty file is never turned into a database; written by its application,
// it replicates.
func TestNotADatabaseFile(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	elsewhere := t.TempDir()
	folder := filepath.Join(dir, guid1+".db")
	fifo := filepath.Join(dir, guid2+".db")
	empty := filepath.Join(dir, guid3+".db")
	link := filepath.Join(dir, "abcdef01-0000-0000-0000-000000000004.db")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(elsewhere, "real.db")
	writeAndClose(t, target, 0, 3)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// One good tenant: a start where nothing can replicate is an error.
	writeAndClose(t, filepath.Join(dir, "abcdef01-0000-0000-0000-000000000005.db"), 0, 2)
	eng, _ := start(t, replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	for path, want := range map[string]string{
		folder: "is a folder, not a database file",
		fifo:   "is a named pipe (FIFO), not a database file",
		empty:  "is empty (0 bytes), not an SQLite database yet",
		link:   "is a symbolic link to",
	} {
		st := waitState(t, eng, path, 20*time.Second, replication.StateFailed)
		if !strings.Contains(st.Reason, want) || strings.Contains(st.Reason, "\n") {
			t.Errorf("%s: reason %q, want one line with %q", filepath.Base(path), st.Reason, want)
		}
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file was written: %v %v", fi.Size(), err)
	}
	for _, suf := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(empty + suf); err == nil {
			t.Fatalf("litefleet created %s beside an empty file", filepath.Base(empty+suf))
		}
	}
	writeAndClose(t, empty, 0, 4)
	waitRestorable(t, conn, guid3, rows(t, empty), 20*time.Second)
}

// TestApplicationChurnAcrossSleeps: an application in its own process
// opens, writes and closes connections continuously (each close of the
// last connection checkpoints and deletes the WAL when it can), checkpoints
// by hand, and pauses long enough for the tenant to sleep, over many sleep
// and wake cycles. At the end every committed row is restorable (by
// litefleet and by litestream restore), and the local file is intact.
func TestApplicationChurnAcrossSleeps(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 5)
	eng, logs := start(t, replication.Options{SleepAfter: 700 * time.Millisecond}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)

	app := testpeer.StartApp(t, path)
	id := 100
	sleeps := 0
	for round := range 24 {
		app.Do("open")
		app.Do(fmt.Sprintf("insert %d 3", id))
		id += 3
		switch round % 4 {
		case 1:
			app.Do("exec PRAGMA wal_checkpoint(TRUNCATE)")
			app.Do(fmt.Sprintf("insert %d 2", id))
			id += 2
		case 2:
			// Held open across the tenant's wake, then closed.
			time.Sleep(400 * time.Millisecond)
			app.Do(fmt.Sprintf("insert %d 1", id))
			id++
		}
		app.Do("close")
		if round%3 == 0 {
			// Long enough to fall asleep.
			if st, ok := eng.Lookup(path); ok && st.State == replication.StateSleeping {
				sleeps++
			}
			time.Sleep(1500 * time.Millisecond)
			if st, ok := eng.Lookup(path); ok && st.State == replication.StateSleeping {
				sleeps++
			}
		}
	}
	want := rows(t, path)
	if len(want) != 5+id-100 {
		t.Fatalf("the application committed %d rows, the file holds %d", 5+id-100, len(want))
	}
	waitRestorable(t, conn, guid1, want, 30*time.Second)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid1), want)
	integrity(t, path)
	assertWALKept(t, logs)
	if sleeps < 4 {
		t.Errorf("the tenant was seen asleep %d times: the test did not cross sleeps", sleeps)
	}
	t.Logf("%d rows over 24 rounds; asleep at %d looks", len(want), sleeps)
}
