package replication_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// TestShapeChangesWhileAsleep is issue 16's cases 2 and 3: the application
// changes the database's shape while its tenant sleeps. Each change ends in
// a replica that restores to the file's rows (by litefleet and by
// litestream restore), without an ERROR storm, with the local file intact,
// and the application's readers are never locked out for more than a
// moment (a reader with a 1 s busy timeout never fails).
func TestShapeChangesWhileAsleep(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	cases := []struct {
		name string
		sql  []string
	}{
		{"page size", []string{
			"exec PRAGMA journal_mode=DELETE", "exec PRAGMA page_size=8192", "exec VACUUM",
			"exec PRAGMA journal_mode=WAL", "insert 1000 3"}},
		{"journal mode DELETE", []string{"exec PRAGMA journal_mode=DELETE", "insert 1000 3"}},
		{"vacuum that shrinks", []string{"exec DELETE FROM t WHERE id < 150", "exec VACUUM"}},
		{"checkpoint truncate", []string{"insert 1000 3", "exec PRAGMA wal_checkpoint(TRUNCATE)", "insert 1003 2"}},
		{"24 MB transaction", []string{"exec BEGIN", "exec CREATE TABLE big (b BLOB)",
			"exec WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 24) INSERT INTO big SELECT randomblob(1<<20) FROM n",
			"exec COMMIT", "insert 1000 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := srv.Conn(t)
			dir := t.TempDir()
			path := filepath.Join(dir, guid1+".db")
			writeAndClose(t, path, 0, 200)
			eng, logs := start(t, replication.Options{SleepAfter: time.Second}, replication.Source{Dirs: []string{dir}, DirConn: conn})
			waitSynced(t, eng, path, 20*time.Second)
			waitState(t, eng, path, 20*time.Second, replication.StateSleeping)

			app := testpeer.StartApp(t, path)
			app.Do("open")
			for _, line := range tc.sql {
				app.Do(line)
			}
			app.Do("close")

			// A reader of the application's, with a short busy timeout,
			// while the tenant wakes and replicates the change.
			reader := testpeer.StartApp(t, path)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var readErr error
			var once sync.Once
			halt := func() { once.Do(func() { close(stop) }); wg.Wait() }
			t.Cleanup(halt)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := reader.Try("open 1000"); err != nil {
						readErr = err
						return
					}
					_, err := reader.Try("query SELECT count(*) FROM t")
					reader.Try("close")
					if err != nil {
						readErr = err
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			want := rows(t, path)
			waitRestorable(t, conn, guid1, want, 30*time.Second)
			halt()
			if readErr != nil {
				t.Errorf("the application could not read its own database: %v", readErr)
			}
			equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid1), want)
			if got := testpeer.Query(t, "file:"+path+"?mode=ro"); len(got) != len(want) {
				t.Fatalf("local file: %d rows, want %d", len(got), len(want))
			}
			integrity(t, path)
			if n := strings.Count(logs.String(), "ERROR"); n > 3 {
				t.Errorf("%d ERROR lines: a failing tenant must back off", n)
			}
			st := status(t, eng, path)
			if st.State != replication.StateReplicating && st.State != replication.StateSleeping {
				t.Errorf("state %s (%s), want replicating or sleeping", st.State, st.Reason)
			}
		})
	}
}

// integrity runs PRAGMA integrity_check on a live database, read-only.
func integrity(t *testing.T, path string) {
	t.Helper()
	db := testpeer.OpenRO(t, path)
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check of %s: %q %v", filepath.Base(path), res, err)
	}
}
