package replication_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

func TestMain(m *testing.M) {
	testpeer.AppMain()
	replicatorMain()
	os.Exit(s3test.Main(m))
}

const (
	guid1 = "12345678-1234-5678-9abc-123456789012"
	guid2 = "98765432-4321-8765-cba9-876543210987"
	guid3 = "abcdef01-2345-6789-abcd-ef0123456789"
)

// fast is a protocol timing short enough for tests, in the default's ratios.
var fast = hosts.Timing{BeatEvery: 500 * time.Millisecond, FenceAfter: 1250 * time.Millisecond, DeadAfter: 2 * time.Second, WriteMargin: 200 * time.Millisecond}

func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration")
	}
}

// start runs an engine for the test and closes it at the end.
func start(t *testing.T, opt replication.Options, src replication.Source) (*replication.Engine, *testpeer.Buffer) {
	t.Helper()
	return startWith(t, opt, src, nil)
}

// startWith is start, telling made about the engine before it starts
// (Start returns once every tenant's first snapshot is up).
func startWith(t *testing.T, opt replication.Options, src replication.Source, made func(*replication.Engine)) (*replication.Engine, *testpeer.Buffer) {
	t.Helper()
	return launch(t, opt, src, made, false)
}

// startFailing is start for an engine some of whose tenants cannot start:
// Start's StartError is let through (the engine goes on with them).
func startFailing(t *testing.T, opt replication.Options, src replication.Source) (*replication.Engine, *testpeer.Buffer) {
	t.Helper()
	return launch(t, opt, src, nil, true)
}

func launch(t *testing.T, opt replication.Options, src replication.Source, made func(*replication.Engine), mayFail bool) (*replication.Engine, *testpeer.Buffer) {
	t.Helper()
	logs := &testpeer.Buffer{}
	if opt.Logger == nil {
		opt.Logger = slog.New(logline.NewLineHandler(logs, slog.LevelDebug))
	}
	if opt.Timing == (hosts.Timing{}) {
		opt.Timing = fast
	}
	if opt.Sweep == 0 {
		opt.Sweep = 300 * time.Millisecond
	}
	if opt.Retry == 0 {
		opt.Retry = 200 * time.Millisecond
	}
	eng, err := replication.New(opt, src)
	if err != nil {
		t.Fatal(err)
	}
	if made != nil {
		made(eng)
	}
	var se *replication.StartError
	if err := eng.Start(context.Background()); err != nil && !(mayFail && errors.As(err, &se)) {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = eng.Close(ctx)
		if t.Failed() || os.Getenv("LITEFLEET_TEST_LOGS") != "" {
			t.Logf("engine log:\n%s", logs)
		}
	})
	return eng, logs
}

// status returns the engine's view of the tenant at path.
func status(t *testing.T, eng *replication.Engine, path string) replication.TenantStatus {
	t.Helper()
	st, ok := eng.Lookup(path)
	if !ok {
		t.Fatalf("the engine does not know %s", path)
	}
	return st
}

// waitState waits until the tenant at path is in one of the states.
func waitState(t *testing.T, eng *replication.Engine, path string, d time.Duration, states ...replication.State) replication.TenantStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := status(t, eng, path)
		if slices.Contains(states, st.State) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %q (%s), want one of %v after %s", filepath.Base(path), st.State, st.Reason, states, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSynced waits until every local transaction of the tenant is in S3.
func waitSynced(t *testing.T, eng *replication.Engine, path string, d time.Duration) replication.TenantStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := status(t, eng, path)
		if st.LocalTXID > 0 && st.ReplicatedTXID >= st.LocalTXID && (st.State == replication.StateReplicating || st.State == replication.StateSleeping) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not in sync after %s: %+v", filepath.Base(path), d, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeAndClose opens the database, commits rows and closes it: with no
// other connection, SQLite checkpoints and deletes the WAL on close.
func writeAndClose(t *testing.T, path string, first, n int) {
	t.Helper()
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, first, n)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// rows lists a database's rows.
func rows(t *testing.T, path string) []string { t.Helper(); return testpeer.Rows(t, path) }

// litestreamRestored restores with the real litestream command.
func litestreamRestored(t *testing.T, srv *s3test.Server, conn s3conn.Conn, tenant string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "litestream.db")
	testpeer.Restore(t, srv, conn, tenant, out)
	return testpeer.Rows(t, out)
}

func equalRows(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %d rows, want %d (first difference: %s)", what, len(got), len(want), firstDiff(got, want))
	}
}

// restored restores the tenant with litefleet's restore and returns its rows.
func restored(t *testing.T, conn s3conn.Conn, tenant string, txid uint64) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	api, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(context.Background(), api, restore.Options{Conn: conn, Tenant: tenant, Output: out, TXID: txid}); err != nil {
		t.Fatalf("restore %s: %v", tenant, err)
	}
	return rows(t, out)
}

// waitRestorable waits until a restore of the tenant gives want.
func waitRestorable(t *testing.T, conn s3conn.Conn, tenant string, want []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := tryRestore(t, conn, tenant)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("restore of %s after %s: %v", tenant, d, err)
			}
			t.Fatalf("restore of %s after %s: %d rows, want %d (%s)", tenant, d, len(got), len(want), firstDiff(got, want))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func tryRestore(t *testing.T, conn s3conn.Conn, tenant string) ([]string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "try.db")
	api, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		return nil, err
	}
	if _, err := restore.Run(context.Background(), api, restore.Options{Conn: conn, Tenant: tenant, Output: out}); err != nil {
		return nil, err
	}
	return rows(t, out), nil
}

// l0BytesAfter sums the sizes of the tenant's level-0 files after txid.
func l0BytesAfter(t *testing.T, srv *s3test.Server, conn s3conn.Conn, tenant string, txid uint64) int64 {
	t.Helper()
	rep, err := s3browse.Inspect(context.Background(), srv.Client(t, conn), conn, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, lv := range rep.Levels {
		for _, f := range lv.Files {
			if f.Level == 0 && f.MinTXID > txid {
				n += f.Size
			}
		}
	}
	return n
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

// openFiles lists this process's open file descriptors' targets.
func openFiles(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	var out []string
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// openUnder counts open descriptors of files under dir, and of deleted ones.
func openUnder(t *testing.T, dir string) (n int, deleted []string) {
	t.Helper()
	for _, p := range openFiles(t) {
		if strings.HasPrefix(p, dir) {
			n++
			if strings.HasSuffix(p, " (deleted)") {
				deleted = append(deleted, p)
			}
		}
	}
	return n, deleted
}
