package restore_test

// Integration tests of restore against a real S3 server (versitygw) with
// replicas written by the real litestream commands, v0.5.18 and the legacy
// v0.3.14 (testpeer). Running Litestream apart keeps this test binary clear
// of a data race inside Litestream's store (DB.Close against the snapshot
// it takes of a new database), which the race detector reports when a
// Supervisor in this process stops early. Skipped with -short. Run them
// with scripts/with-s3.sh so that they share one server.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/replication"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
)

const (
	tenantA = "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9"
	tenantB = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0"
	tenantC = "2c3d4e5f-6071-4283-94a5-b6c7d8e9f0a1"
)

var adoptCA sync.Once

// integration skips with -short and makes Litestream's S3 client work with
// AWS_CA_BUNDLE set, as main does.
func integration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	adoptCA.Do(func() {
		if _, err := s3conn.AdoptCABundle(); err != nil {
			t.Fatal(err)
		}
	})
}

// noLeftovers fails when dir holds anything but the names given.
func noLeftovers(t testing.TB, dir string, want ...string) {
	t.Helper()
	got := testpeer.DirNames(t, dir)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", dir, got, want)
	}
}

func TestRestoreLatestAndPointInTime(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	src := filepath.Join(t.TempDir(), tenantA+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertBlobs(t, db, 0, 200, 300)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantA)
	txA := r.Sync()
	rowsA := testpeer.Rows(t, src)
	time.Sleep(50 * time.Millisecond)
	atA := time.Now()
	time.Sleep(50 * time.Millisecond)
	testpeer.InsertBlobs(t, db, 200, 200, 300)
	txB := r.Sync()
	testpeer.InsertBlobs(t, db, 400, 100, 300)
	r.Stop()
	rowsAll := testpeer.Rows(t, src)
	if txB <= txA {
		t.Fatalf("TXIDs did not move: %d then %d", txA, txB)
	}

	out := t.TempDir()
	t.Run("dry run", func(t *testing.T) {
		opt := restore.Options{Conn: conn, Tenant: tenantA, Output: filepath.Join(out, "dry.db")}
		p, err := restore.NewPlan(ctx, client, opt)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, f := range p.Files {
			if !strings.HasPrefix(f.Key, "databases/"+tenantA+"/") || f.Size <= 0 {
				t.Errorf("plan file %+v", f)
			}
			sum += f.Size
		}
		if len(p.Files) == 0 || p.Bytes != sum || p.Source != restore.SourceLTX || p.TXID != p.Latest.TXID || p.TXID <= txB || p.Time.IsZero() || p.Refusal != "" {
			t.Fatalf("plan %+v", p)
		}
		opt.DryRun = true
		res, err := restore.Run(ctx, client, opt)
		if err != nil || !res.DryRun || res.TXID != p.TXID {
			t.Fatalf("dry-run Restore: %+v, %v", res, err)
		}
		noLeftovers(t, out)
	})

	t.Run("latest", func(t *testing.T) {
		var calls, last, total int64
		opt := restore.Options{Conn: conn, Tenant: tenantA, Output: filepath.Join(out, tenantA+".db"),
			Progress: func(done, all int64) { calls++; last, total = done, all }}
		res, err := restore.Run(ctx, client, opt)
		if err != nil {
			t.Fatal(err)
		}
		testpeer.SameRows(t, testpeer.Restored(t, opt.Output), rowsAll)
		if !res.Current || res.TXID != res.Latest.TXID || res.Integrity != "ok" || res.Time.IsZero() || res.Note != "" {
			t.Fatalf("result %+v", res)
		}
		if calls == 0 || last != total || total != res.Plan.Bytes || res.Downloaded != total {
			t.Fatalf("progress: %d calls, last %d/%d, plan %d bytes, downloaded %d", calls, last, total, res.Plan.Bytes, res.Downloaded)
		}
		noLeftovers(t, out, tenantA+".db")
	})

	t.Run("txid", func(t *testing.T) {
		opt := restore.Options{Conn: conn, Tenant: tenantA, Output: filepath.Join(out, "txid.db"), TXID: txA}
		res, err := restore.Run(ctx, client, opt)
		if err != nil {
			t.Fatal(err)
		}
		testpeer.SameRows(t, testpeer.Restored(t, opt.Output), rowsA)
		if res.TXID != txA || res.Current || !strings.Contains(res.Note, "as asked") {
			t.Fatalf("result %+v", res)
		}
		// A TXID that ends no file is refused with the range that exists.
		_, err = restore.Run(ctx, client, restore.Options{Conn: conn, Tenant: tenantA, Output: filepath.Join(out, "none.db"), TXID: 1 << 40})
		if err == nil || !strings.Contains(err.Error(), "is not a restore point") {
			t.Fatalf("TXID 1<<40: %v", err)
		}
	})

	t.Run("timestamp", func(t *testing.T) {
		opt := restore.Options{Conn: conn, Tenant: tenantA, Output: filepath.Join(out, "ts.db"), Timestamp: atA}
		res, err := restore.Run(ctx, client, opt)
		if err != nil {
			t.Fatal(err)
		}
		testpeer.SameRows(t, testpeer.Restored(t, opt.Output), rowsA)
		if res.TXID != txA || res.Time.After(atA) {
			t.Fatalf("result %+v, want TXID %d before %s", res, txA, atA)
		}
	})
}

func TestRestoreRefusesAndForceKeepsBackup(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	src := filepath.Join(t.TempDir(), tenantB+".db")
	testpeer.InsertBlobs(t, testpeer.OpenDB(t, src), 0, 50, 100)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantB)
	r.Sync()
	r.Stop()
	want := testpeer.Rows(t, src)

	// The old database: a crashed application's file, with rows that are
	// only in its -wal.
	dir := t.TempDir()
	target := filepath.Join(dir, tenantB+".db")
	crashedWriter(t, target)
	oldRows := testpeer.RowsOfCopy(t, target)
	if len(oldRows) != 7 {
		t.Fatalf("old database has %d rows, want 7", len(oldRows))
	}
	for _, suf := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(target + suf); err != nil {
			t.Fatalf("the crashed writer left no %s: %v", suf, err)
		}
	}

	opt := restore.Options{Conn: conn, Tenant: tenantB, Output: target}
	_, err := restore.Run(ctx, client, opt)
	var refused *restore.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), target+" exists: pass -force") || !strings.Contains(err.Error(), ".bak-TIME") {
		t.Fatalf("existing output: %v", err)
	}

	opt.IsReplicating = func(p string) (string, bool) { return "someone", p == target }
	if _, err := restore.Run(ctx, client, opt); err == nil || !strings.Contains(err.Error(), "being replicated by this process as tenant someone") {
		t.Fatalf("replicating output: %v", err)
	}
	opt.IsReplicating = nil

	other := restore.Options{Conn: conn, Tenant: tenantB, Output: filepath.Join(dir, tenantC+".db")}
	if _, err := restore.Run(ctx, client, other); err == nil || !strings.Contains(err.Error(), "is named after tenant "+tenantC) {
		t.Fatalf("output named after another tenant: %v", err)
	}

	opt.Force = true
	res, err := restore.Run(ctx, client, opt)
	if err != nil {
		t.Fatal(err)
	}
	testpeer.SameRows(t, testpeer.Restored(t, target), want)
	if !strings.HasPrefix(res.Backup, target+".bak-") {
		t.Fatalf("backup %q", res.Backup)
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(res.Backup + suf); err != nil {
			t.Errorf("backup%s: %v", suf, err)
		}
	}
	testpeer.SameRows(t, testpeer.RowsOfCopy(t, res.Backup), oldRows)
	noLeftovers(t, dir, tenantB+".db", filepath.Base(res.Backup), filepath.Base(res.Backup)+"-wal", filepath.Base(res.Backup)+"-shm")
}

// crashedWriter leaves a database at path as an application killed in the
// middle of its work would: 5 rows checkpointed, 2 more only in the -wal.
func crashedWriter(t *testing.T, path string) {
	t.Helper()
	if os.Getenv("LITEFLEET_CRASHED_WRITER") != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCrashedWriter$")
	cmd.Env = append(os.Environ(), "LITEFLEET_CRASHED_WRITER="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper: %q %v", buf, err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// TestHelperCrashedWriter is crashedWriter's child process.
func TestHelperCrashedWriter(t *testing.T) {
	path := os.Getenv("LITEFLEET_CRASHED_WRITER")
	if path == "" {
		t.Skip("helper process")
	}
	db := testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, db, 0, 5, 10)
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA wal_autocheckpoint=0`); err != nil {
		t.Fatal(err)
	}
	testpeer.InsertBlobs(t, db, 5, 2, 10)
	fmt.Print("ready")
	time.Sleep(time.Minute) // killed before
}

func TestRestoreServerKilledMidway(t *testing.T) {
	integration(t)
	srv := s3test.StartPrivate(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	// About 40 MB of random data: far more than the socket buffers hold,
	// so the server dies with most of the object unsent.
	src := filepath.Join(t.TempDir(), tenantC+".db")
	db := testpeer.OpenDB(t, src)
	for i := 0; i < 8; i++ {
		testpeer.InsertBlobs(t, db, i*1000, 1000, 5000)
	}
	r := testpeer.Replicate(t, &srv.Server, conn, testpeer.V5, src, tenantC)
	r.Sync()
	r.Stop()

	dir := t.TempDir()
	out := filepath.Join(dir, tenantC+".db")
	killed := false
	opt := restore.Options{Conn: conn, Tenant: tenantC, Output: out, Progress: func(done, total int64) {
		if !killed && done > total/4 {
			killed = true
			srv.Kill()
		}
	}}
	start := time.Now()
	_, err := restore.Run(ctx, client, opt)
	if !killed {
		t.Fatal("the restore never reached a quarter of the download")
	}
	if err == nil {
		t.Fatal("restore succeeded with the server killed")
	}
	t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
	for _, want := range []string{"cannot reach S3", "nothing was written at " + out, "databases/" + tenantC + "/"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q", want)
		}
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the restore took %s to give up", time.Since(start))
	}
	noLeftovers(t, dir)

	srv.Restart(t)
	opt.Progress = nil
	res, err := restore.Run(ctx, client, opt)
	if err != nil {
		t.Fatalf("retry after restart: %v", err)
	}
	testpeer.SameRows(t, testpeer.Restored(t, out), testpeer.Rows(t, src))
	if !res.Current {
		t.Fatalf("result %+v", res)
	}
	noLeftovers(t, dir, tenantC+".db")
}

func TestRestoreDetectsCorruptObject(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	if srv.Dir == "" {
		t.Skip("the S3 server's folder is unknown (set " + s3test.EnvDataDir + ")")
	}
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	src := filepath.Join(t.TempDir(), tenantA+".db")
	testpeer.InsertBlobs(t, testpeer.OpenDB(t, src), 0, 300, 1000)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantA)
	r.Sync()
	r.Stop()

	dir := t.TempDir()
	opt := restore.Options{Conn: conn, Tenant: tenantA, Output: filepath.Join(dir, tenantA+".db")}
	p, err := restore.NewPlan(ctx, client, opt)
	if err != nil {
		t.Fatal(err)
	}
	// Flip bytes in the middle of the snapshot, as a bad disk would.
	key := p.Files[0].Key
	file := filepath.Join(srv.Dir, conn.Bucket, filepath.FromSlash(key))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+16; i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}

	_, err = restore.Run(ctx, client, opt)
	if err == nil {
		t.Fatal("restore of a corrupt object succeeded")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "object "+key+": ") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("error does not name the object %s", key)
	}
	noLeftovers(t, dir)
}

func TestRestoreGenerationsV3(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()
	const tenant = "legacy-client-001"

	src := filepath.Join(t.TempDir(), "legacy-client.db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertBlobs(t, db, 0, 100, 200)
	r := testpeer.Replicate(t, srv, conn, testpeer.V3, src, tenant)
	// An application writes while v0.3 replicates: a snapshot, then WAL
	// segments after it.
	w := testpeer.StartWriter(db, 100, 20*time.Millisecond)
	testpeer.WaitInS3(t, client, conn, tenant, "a generation with WAL segments", func(tn *s3browse.Tenant) bool {
		return len(tn.Generations) == 1 && len(tn.Generations[0].Snapshots) == 1 && len(tn.Generations[0].WALSegments) > 1
	})
	w.Stop(t)
	r.Stop() // a final sync
	want := testpeer.Rows(t, src)

	out := filepath.Join(t.TempDir(), "restored.db")
	opt := restore.Options{Conn: conn, Tenant: tenant, Output: out}
	res, err := restore.Run(ctx, client, opt)
	if err != nil {
		t.Fatalf("%v\nlitestream v0.3 output:\n%s", err, r.Out.String())
	}
	testpeer.SameRows(t, testpeer.Restored(t, out), want)
	if res.Source != restore.SourceGenerations || res.Position.Generation == "" || !res.Current || res.Integrity != "ok" || res.Downloaded != res.Plan.Bytes {
		t.Fatalf("result %+v", res)
	}
	snap := 0
	for _, f := range res.Plan.Files {
		if strings.HasSuffix(f.Key, ".snapshot.lz4") {
			snap++
		}
	}
	if snap != 1 || len(res.Plan.Files) < 2 {
		t.Fatalf("plan files %+v: want one snapshot and WAL segments", res.Plan.Files)
	}
	noLeftovers(t, filepath.Dir(out), "restored.db")

	// -txid cannot apply to v0.3 generations.
	opt.TXID, opt.Output = 1, filepath.Join(t.TempDir(), "x.db")
	if _, err := restore.Run(ctx, client, opt); err == nil || !strings.Contains(err.Error(), "no TXIDs") {
		t.Fatalf("-txid on v0.3: %v", err)
	}
}

func TestRestoreRefusesFileThisProcessReplicates(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	ctx := context.Background()

	path := filepath.Join(t.TempDir(), tenantC+".db")
	testpeer.InsertBlobs(t, testpeer.OpenDB(t, path), 0, 10, 10)
	target := tenants.Target{Path: path, Tenant: tenants.NameFor(path, ""), Conn: conn}
	sup, err := replication.New(replication.Options{SleepAfter: -1}, replication.Source{Targets: []tenants.Target{target}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sup.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	if err := sup.Sync(ctx, path); err != nil {
		t.Fatal(err)
	}
	if name, ok := sup.Replicating(path); !ok || name != tenantC {
		t.Fatalf("Replicating(%s) = %q, %v", path, name, ok)
	}
	if _, ok := sup.Replicating(path + "x"); ok {
		t.Fatal("IsReplicating of another path")
	}
	_, err = restore.Run(ctx, client, restore.Options{Conn: conn, Tenant: tenantC, Output: path, Force: true, IsReplicating: sup.Replicating})
	var refused *restore.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "being replicated by this process as tenant "+tenantC) {
		t.Fatalf("restore over a replicated file: %v", err)
	}
	if got := testpeer.Rows(t, path); len(got) != 10 {
		t.Fatalf("the replicated file changed: %d rows", len(got))
	}
}
