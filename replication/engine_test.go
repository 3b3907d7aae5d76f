package replication_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/logline"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
)

// TestSleepWakeUnderCheckpointingWriter: a tenant sleeps when idle, holding
// no descriptor, and every write made while it sleeps reaches S3 although
// the writer checkpoints, closes (SQLite then deletes the WAL) and reopens
// the database; point-in-time restore still reaches each round's state.
func TestSleepWakeUnderCheckpointingWriter(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	writeAndClose(t, path, 0, 10)
	// Half a megabyte that never changes: a wake that re-snapshotted the
	// database would upload it again.
	db := testpeer.OpenDB(t, path)
	if _, err := db.Exec(`CREATE TABLE big (b BLOB); INSERT INTO big VALUES (randomblob(512*1024))`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	eng, _ := start(t, replication.Options{SleepAfter: time.Second}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)
	waitState(t, eng, path, 10*time.Second, replication.StateSleeping)
	firstTXID := status(t, eng, path).ReplicatedTXID
	if n, _ := openUnder(t, dir); n != 0 {
		t.Fatalf("a sleeping tenant holds %d descriptors in its folder", n)
	}

	type point struct {
		txid uint64
		rows []string
	}
	var points []point
	prev := status(t, eng, path).ReplicatedTXID
	for round := range 5 {
		first := 10 + round*5
		switch round % 3 {
		case 0: // commit and close: the WAL is checkpointed and deleted
			writeAndClose(t, path, first, 5)
		case 1: // checkpoint by hand, keep writing, then close
			db := testpeer.OpenDB(t, path)
			testpeer.InsertRows(t, db, first, 2)
			if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				t.Fatal(err)
			}
			testpeer.InsertRows(t, db, first+2, 3)
			db.Close()
		case 2: // a long-lived connection that stays open while the tenant sleeps
			db := testpeer.OpenDB(t, path)
			testpeer.InsertRows(t, db, first, 5)
			defer db.Close()
		}
		want := rows(t, path)
		waitRestorable(t, conn, guid1, want, 20*time.Second)
		// Asleep again, its positions are final for the round.
		st := waitState(t, eng, path, 10*time.Second, replication.StateSleeping)
		if st.ReplicatedTXID <= prev || st.ReplicatedTXID != st.LocalTXID {
			t.Fatalf("round %d: replicated TXID %d of local %d, before %d", round, st.ReplicatedTXID, st.LocalTXID, prev)
		}
		prev = st.ReplicatedTXID
		points = append(points, point{st.ReplicatedTXID, want})
	}
	// Five wakes moved a few pages each, not the database: the level-0
	// files after the first sum to far less than the half megabyte.
	// (Litestream's level-1 compaction rewrites the first snapshot once,
	// as it does for any replica: that is not a wake's doing.)
	if n := l0BytesAfter(t, srv, conn, guid1, firstTXID); n > 256<<10 {
		t.Errorf("level-0 files after TXID %d hold %d bytes: a wake uploaded the whole database again", firstTXID, n)
	}
	for i, p := range points {
		equalRows(t, "point-in-time restore of round "+string(rune('0'+i)), restored(t, conn, guid1, p.txid), p.rows)
	}
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid1), rows(t, path))
}

// TestFileReplacedUnderReplication: a database deleted and re-created, or
// renamed over, under an open replication is noticed, the old file's
// descriptors are released, and the new file's rows are what S3 restores.
func TestFileReplacedUnderReplication(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)

	eng, _ := start(t, replication.Options{SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
	waitSynced(t, eng, path, 20*time.Second)
	db.Close()

	// rm and re-create with other rows.
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suf)
	}
	writeAndClose(t, path, 100, 8)
	want := rows(t, path)
	waitRestorable(t, conn, guid2, want, 20*time.Second)

	// mv another database over it.
	other := filepath.Join(t.TempDir(), "new.db")
	writeAndClose(t, other, 200, 3)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + "-wal")
	want = rows(t, path)
	waitRestorable(t, conn, guid2, want, 20*time.Second)
	testpeer.Eventually(t, 10*time.Second, "no descriptor of a deleted file", func() bool {
		_, deleted := openUnder(t, dir)
		return len(deleted) == 0
	})
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid2), want)
}

// TestMissingReleasesClaimAndMoves: a deleted tenant's claim is released
// within 10 s, and a tenant moved from host A's folder to host B's is
// replicated by B, continuing its history.
func TestMissingReleasesClaimAndMoves(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pathA := filepath.Join(dirA, guid3+".db")
	writeAndClose(t, pathA, 0, 7)

	a, _ := start(t, replication.Options{Host: "host-a", SleepAfter: -1}, replication.Source{Dirs: []string{dirA}, DirConn: conn})
	waitSynced(t, a, pathA, 20*time.Second)
	b, _ := start(t, replication.Options{Host: "host-b", SleepAfter: -1}, replication.Source{Dirs: []string{dirB}, DirConn: conn})

	api := srv.Client(t, conn)
	claim, err := hosts.ReadClaim(context.Background(), api, conn.Bucket, conn.TenantPath(guid3))
	if err != nil || claim == nil || claim.Host != "host-a" {
		t.Fatalf("claim before the move: %+v %v", claim, err)
	}
	pathB := filepath.Join(dirB, guid3+".db")
	for _, suf := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(pathA+suf, pathB+suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	moved := time.Now()
	waitState(t, a, pathA, 10*time.Second, replication.StateMissing)
	testpeer.Eventually(t, 10*time.Second-time.Since(moved), "host-a's claim released", func() bool {
		c, err := hosts.ReadClaim(context.Background(), api, conn.Bucket, conn.TenantPath(guid3))
		return err == nil && (c == nil || c.Host == "host-b")
	})
	// The moved file carries its Litestream state? No: it stayed behind in
	// dirA's .<file>-litestream, so host-b sees a restored copy.
	waitSynced(t, b, pathB, 30*time.Second)
	writeAndClose(t, pathB, 7, 3)
	waitRestorable(t, conn, guid3, rows(t, pathB), 20*time.Second)
	if c, _ := hosts.ReadClaim(context.Background(), api, conn.Bucket, conn.TenantPath(guid3)); c == nil || c.Host != "host-b" {
		t.Fatalf("claim after the move: %+v", c)
	}
}

// TestTwoCopiesNeverOverwrite: two hosts with different copies of one
// tenant, started in either order for 10 rounds: the copy whose history is
// not the replica's is diverged and uploads nothing; restore always gives
// the first writer's rows.
func TestTwoCopiesNeverOverwrite(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pathA, pathB := filepath.Join(dirA, guid1+".db"), filepath.Join(dirB, guid1+".db")
	writeAndClose(t, pathA, 0, 5)
	writeAndClose(t, pathB, 1000, 9)

	run := func(host, dir string) (*replication.Engine, *testpeer.Buffer, func()) {
		logs := &testpeer.Buffer{}
		eng, err := replication.New(replication.Options{Host: host, SleepAfter: -1, Timing: fast, Sweep: 300 * time.Millisecond, Retry: 200 * time.Millisecond,
			Logger: newLogger(logs)}, replication.Source{Dirs: []string{dir}, DirConn: conn, OnRequest: false})
		if err != nil {
			t.Fatal(err)
		}
		err = eng.Start(context.Background())
		stop := func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = eng.Close(ctx)
		}
		var se *replication.StartError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("%s: %v", host, err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log:\n%s", host, logs)
			}
		})
		return eng, logs, stop
	}

	// The first writer's history.
	a, _, stopA := run("host-a", dirA)
	waitSynced(t, a, pathA, 20*time.Second)
	stopA()
	want := rows(t, pathA)

	for round := range 10 {
		// B's copy is never uploaded, whoever starts first.
		var b *replication.Engine
		var stopB func()
		var logsB *testpeer.Buffer
		if round%2 == 0 {
			b, logsB, stopB = run("host-b", dirB)
			a, _, stopA = run("host-a", dirA)
		} else {
			a, _, stopA = run("host-a", dirA)
			b, logsB, stopB = run("host-b", dirB)
		}
		stB := waitState(t, b, pathB, 20*time.Second, replication.StateDiverged, replication.StateLeased)
		if stB.State == replication.StateLeased && round%2 == 1 {
			// A holds it: stop A, then B takes the claim and finds the
			// histories differ.
			waitSynced(t, a, pathA, 20*time.Second)
			stopA()
			stB = waitState(t, b, pathB, 20*time.Second, replication.StateDiverged)
		} else {
			waitSynced(t, a, pathA, 20*time.Second)
			stopA()
		}
		if stB.State != replication.StateDiverged {
			stB = waitState(t, b, pathB, 20*time.Second, replication.StateDiverged)
		}
		if !strings.Contains(stB.Reason, "-takeover "+guid1) || !strings.Contains(stB.Reason, "restore") {
			t.Fatalf("round %d: the diverged reason does not give both ways out: %s", round, stB.Reason)
		}
		if strings.Contains(logsB.String(), "new transaction: db="+guid1) {
			t.Fatalf("round %d: host-b uploaded its copy:\n%s", round, logsB)
		}
		stopB()
		// A keeps writing between rounds.
		writeAndClose(t, pathA, 5+round, 1)
		a, _, stopA = run("host-a", dirA)
		waitSynced(t, a, pathA, 20*time.Second)
		stopA()
		want = rows(t, pathA)
		equalRows(t, "round restore", restored(t, conn, guid1, 0), want)
	}
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid1), want)
}

// TestTakeoverKeepsTheOldHistory: -takeover replaces a diverged replica
// with the local file after copying the old history to an archive prefix,
// from which it still restores.
func TestTakeoverKeepsTheOldHistory(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	pathA, pathB := filepath.Join(dirA, guid2+".db"), filepath.Join(dirB, guid2+".db")
	writeAndClose(t, pathA, 0, 4)
	writeAndClose(t, pathB, 500, 6)
	a, _ := start(t, replication.Options{Host: "host-a", SleepAfter: -1}, replication.Source{Dirs: []string{dirA}, DirConn: conn})
	waitSynced(t, a, pathA, 20*time.Second)
	ctx := context.Background()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	old := rows(t, pathA)

	b, logs := start(t, replication.Options{Host: "host-b", SleepAfter: -1, Takeover: []string{guid2}}, replication.Source{Dirs: []string{dirB}, DirConn: conn})
	waitSynced(t, b, pathB, 30*time.Second)
	equalRows(t, "after takeover", restored(t, conn, guid2, 0), rows(t, pathB))
	m := strings.Index(logs.String(), "archive=s3://")
	if m < 0 {
		t.Fatalf("no archive named in the log:\n%s", logs)
	}
	archive := strings.Fields(logs.String()[m+len("archive=s3://"):])[0]
	_, key, _ := strings.Cut(archive, "/")
	if !strings.HasPrefix(key, layout.Root+"archive/databases/"+guid2+".at-") {
		t.Fatalf("archive %s is not under %sarchive/databases/", archive, layout.Root)
	}
	arch := conn
	arch.Prefix = key[:strings.LastIndex(key, "/")]
	equalRows(t, "the archived history", restored(t, arch, key[strings.LastIndex(key, "/")+1:], 0), old)
}

func newLogger(w *testpeer.Buffer) *slog.Logger {
	return slog.New(logline.NewLineHandler(w, slog.LevelDebug))
}

// skewClock is a clock a test can move ahead of the real one.
type skewClock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *skewClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.skew) }
func (c *skewClock) Add(d time.Duration) { c.mu.Lock(); c.skew += d; c.mu.Unlock() }

// TestFencedHostUploadsNothing: when the host's last good heartbeat is
// FenceAfter old (the clock moved, as it does while S3 is unreachable), its
// tenants are "lease lost (retrying)" and nothing more is uploaded; the
// next good beat resumes them, and everything committed meanwhile reaches
// S3. A clean stop then releases the claim and deletes the heartbeat.
func TestFencedHostUploadsNothing(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	// Every write to the tenant's prefix, counted where S3 would see it.
	var writes atomic.Int64
	var fenced atomic.Bool
	p, err := s3proxy.Start(s3proxy.Options{Target: srv.Endpoint, Hook: func(r s3proxy.Request) {
		if fenced.Load() && (r.Kind == s3proxy.Put || r.Kind == s3proxy.Delete) && strings.Contains(r.Key, guid3) {
			writes.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	conn := srv.Conn(t)
	viaProxy := conn
	viaProxy.Endpoint = p.URL()
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	writeAndClose(t, path, 0, 3)
	clk := &skewClock{}
	slow := hosts.Timing{BeatEvery: 3 * time.Second, FenceAfter: 7500 * time.Millisecond, DeadAfter: 12 * time.Second, WriteMargin: time.Second}
	eng, logs := start(t, replication.Options{Host: "fenced", SleepAfter: -1, Timing: slow, Now: clk.Now}, replication.Source{Dirs: []string{dir}, DirConn: viaProxy})
	st := waitSynced(t, eng, path, 20*time.Second)

	clk.Add(slow.FenceAfter + time.Second)
	waitState(t, eng, path, 5*time.Second, replication.StateLeaseLost)
	fenced.Store(true)
	writeAndClose(t, path, 3, 4)
	// Litestream syncs the change to a local LTX file and its replica
	// loop tries to upload it: the gate refuses it before any request.
	testpeer.Eventually(t, 10*time.Second, "Litestream's local sync of the change made while fenced", func() bool {
		return testpeer.LocalTXID(t, path) > st.ReplicatedTXID
	})
	testpeer.Eventually(t, 10*time.Second, "the fenced upload refused by the gate", func() bool {
		return strings.Contains(logs.String(), "may not write the tenant now")
	})
	if n := writes.Load(); n != 0 {
		t.Fatalf("a fenced host sent %d write(s) to the tenant's prefix", n)
	}
	if got := status(t, eng, path).ReplicatedTXID; got != st.ReplicatedTXID {
		t.Fatalf("replicated TXID moved from %d to %d while fenced", st.ReplicatedTXID, got)
	}
	fenced.Store(false)
	// The next beat (within BeatEvery) is good: replication resumes.
	waitRestorable(t, conn, guid3, rows(t, path), 20*time.Second)
	waitState(t, eng, path, 5*time.Second, replication.StateReplicating)

	ctx := context.Background()
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	api := srv.Client(t, conn)
	if c, _ := hosts.ReadClaim(ctx, api, conn.Bucket, conn.TenantPath(guid3)); c != nil {
		t.Fatalf("claim left after a clean stop: %+v", c)
	}
	if l, _ := hosts.List(ctx, api, conn.Bucket, nil); len(l) != 0 {
		t.Fatalf("heartbeat left after a clean stop: %v", l)
	}
}

// TestRestoredDatabaseResumesHistory is the operator's flow after losing a
// host: restore the replica (with litefleet's restore or with litestream's),
// replicate the restored file on another host. It is the tenant's history,
// not diverged: replication continues from there, and every row, old and
// new, restores. Restored in place, with Litestream's old local state still
// beside the file, it is the same.
func TestRestoredDatabaseResumesHistory(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dirA := t.TempDir()
	pathA := filepath.Join(dirA, guid1+".db")
	writeAndClose(t, pathA, 0, 5)
	a, _ := start(t, replication.Options{Host: "host-a", SleepAfter: -1}, replication.Source{Dirs: []string{dirA}, DirConn: conn})
	waitSynced(t, a, pathA, 20*time.Second)
	closeEngine(t, a)

	api, err := s3conn.NewClient(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	next := 5
	for _, how := range []string{"litefleet restore", "litestream restore", "litefleet restore in place"} {
		dir, path := dirA, pathA
		if how != "litefleet restore in place" {
			dir = t.TempDir()
			path = filepath.Join(dir, guid1+".db")
		} else {
			for _, suf := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(path + suf) // the lost file; its .db-litestream stays
			}
		}
		switch how {
		case "litestream restore":
			testpeer.Restore(t, srv, conn, guid1, path)
		default:
			if _, err := restore.Run(context.Background(), api, restore.Options{Conn: conn, Tenant: guid1, Output: path}); err != nil {
				t.Fatalf("%s: %v", how, err)
			}
		}
		eng, logs := start(t, replication.Options{Host: "host-b", SleepAfter: -1}, replication.Source{Dirs: []string{dir}, DirConn: conn})
		st := waitSynced(t, eng, path, 20*time.Second)
		if st.State != replication.StateReplicating {
			t.Fatalf("%s: the restored file is %q (%s), want replicating", how, st.State, st.Reason)
		}
		writeAndClose(t, path, next, 3)
		next += 3
		want := rows(t, path)
		waitRestorable(t, conn, guid1, want, 20*time.Second)
		if strings.Contains(logs.String(), "diverged") {
			t.Fatalf("%s: diverged:\n%s", how, logs)
		}
		closeEngine(t, eng)
		equalRows(t, how+", then litestream restore", litestreamRestored(t, srv, conn, guid1), want)
	}
}

// closeEngine stops an engine now (start's cleanup closes it again: a no-op).
func closeEngine(t *testing.T, eng *replication.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := eng.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}
