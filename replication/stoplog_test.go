package replication_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
)

// TestStopLogsStoppedOnce: the UI's x (Engine.Stop) logs one "stopped"
// line for the tenant, not one from the job and another from the state
// change (issue 20 item 16).
func TestStopLogsStoppedOnce(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)
	db.Close()

	eng, logs := start(t, replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Stop(ctx, path); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "stopped: db="+guid1); n != 1 {
		t.Fatalf("%d stopped lines for %s:\n%s", n, guid1, logs)
	}
}
