package replication_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/replication"
)

// TestWriteGoesBeforeIdleStarts: while a fleet of idle tenants starts one
// job at a time, a write to the tenant the start reaches last (by path)
// puts it first: it is replicating, its write in S3, while most idle
// tenants still wait for their first snapshot.
func TestWriteGoesBeforeIdleStarts(t *testing.T) {
	integration(t)
	conn := s3test.Start(t).Conn(t)
	dir := t.TempDir()
	const n = 60
	var last string
	for i := range n {
		last = filepath.Join(dir, fmt.Sprintf("12345678-1234-5678-9abc-%012d.db", i))
		writeAndClose(t, last, 0, 1)
	}
	logs := &testpeer.Buffer{}
	eng, err := replication.New(replication.Options{Host: "prio", Parallel: 2, SleepAfter: -1, Timing: fast,
		Sweep: 300 * time.Millisecond, Retry: 200 * time.Millisecond,
		Logger: slog.New(logline.NewLineHandler(logs, slog.LevelDebug))}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- eng.Start(context.Background()) }()
	t.Cleanup(func() {
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = eng.Close(ctx)
	})

	// The start is under way: some tenant is past starting.
	deadline := time.Now().Add(30 * time.Second)
	for countState(eng, replication.StateStarting) == n {
		if time.Now().After(deadline) {
			t.Fatalf("no tenant started within 30s:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	writeAndClose(t, last, 1, 1)
	st := waitSynced(t, eng, last, 30*time.Second)
	waiting := countState(eng, replication.StateStarting)
	t.Logf("the written tenant replicated TXID %d while %d of %d idle tenants still waited to start", st.ReplicatedTXID, waiting, n)
	if waiting < n/2 {
		t.Errorf("the written tenant waited behind the idle ones: only %d of %d were still starting when its write was in S3", waiting, n)
	}
	equalRows(t, "the written tenant, restored", restored(t, conn, filepath.Base(last[:len(last)-3]), 0), rows(t, last))
	if err := <-started; err != nil {
		t.Fatalf("start: %v", err)
	}
	started <- nil
}

func countState(eng *replication.Engine, s replication.State) int {
	n := 0
	for _, st := range eng.Status() {
		if st.State == s {
			n++
		}
	}
	return n
}
