package replication_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/faultproxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/replication"
)

// TestStartWaitsForS3: a replicator started while S3 refuses connections
// (restarted after a SIGKILL while the server is still down) does not
// exit: it says in its log that S3 is not reachable and asks again with
// backoff, and replicates once S3 answers. Start returned the connection
// error before, and `litefleet replicate` exited.
func TestStartWaitsForS3(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	proxy, err := faultproxy.Start(faultproxy.Options{Name: "p", Target: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	if err := proxy.Set(faultproxy.Faults{Mode: faultproxy.Refuse}); err != nil {
		t.Fatal(err)
	}
	direct := conn
	conn.Endpoint = proxy.URL()
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 3)

	logs := &testpeer.Buffer{}
	eng, err := replication.New(replication.Options{Host: "web-1", SleepAfter: -1, Timing: fast, Sweep: 300 * time.Millisecond, Retry: 200 * time.Millisecond,
		Logger: slog.New(logline.NewLineHandler(logs, slog.LevelDebug))}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = eng.Close(ctx)
		if t.Failed() {
			t.Logf("engine log:\n%s", logs)
		}
	})
	started := make(chan error, 1)
	go func() { started <- eng.Start(context.Background()) }()

	// Two attempts refused, each said in the log; Start still waits.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(logs.String(), "S3 not reachable at start: retrying") < 2 {
		select {
		case err := <-started:
			t.Fatalf("start returned while S3 refused connections: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second \"S3 not reachable at start: retrying\" line within 20s:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := proxy.Set(faultproxy.Faults{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start after S3 came back: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("start did not return within 30s of S3 answering again (the backoff is 1s, 2s, 4s…)")
	}
	waitRestorable(t, direct, guid1, rows(t, path), 20*time.Second)
}
