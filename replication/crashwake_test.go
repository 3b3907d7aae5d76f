package replication_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
)

// TestKilledAwakeTenantResumesIncrementally: a tenant written all the time
// never sleeps, so its page table was only ever in memory, and a killed
// replicator's restart met a WAL the application had checkpointed away:
// Litestream snapshotted the whole database again (seed 35 of bench/chaos:
// 14.3 MB over a 200 KB/s link, not up before the next fault). The table is
// now saved while awake and rolled forward through the local LTX files at
// start: after SIGKILL, a TRUNCATE checkpoint and one more row, the restart
// uploads a few pages, not the database. Invariants: every row committed is
// restorable by litefleet and by litestream restore; integrity_check ok.
func TestKilledAwakeTenantResumesIncrementally(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	api := srv.Client(t, conn)
	dir := t.TempDir()
	path := filepath.Join(dir, guid3+".db")
	app := testpeer.OpenDB(t, path)
	testpeer.InsertBlobs(t, app, 0, 8, 1_000_000)

	spec := childSpec{Dir: dir, Conn: conn, Key: conn.AccessKeyID, Secret: conn.SecretAccessKey, Host: "h-crash", Timing: slowTiming,
		SavePagesEvery: 300 * time.Millisecond}
	first, _, _ := startReplicator(t, spec)
	waitRestorable(t, conn, guid3, rows(t, path), 60*time.Second)
	testpeer.InsertRows(t, app, 100, 3)
	waitRestorable(t, conn, guid3, rows(t, path), 30*time.Second)
	before := maxL0(t, api, conn.Bucket, conn.TenantPath(guid3))
	table := filepath.Join(layout.LitestreamStateDir(path), "litefleet-pages")
	testpeer.Eventually(t, 30*time.Second, "the page table saved while awake at the replica's TXID "+before.String(), func() bool {
		b, err := os.ReadFile(table)
		return err == nil && len(b) >= 16 && ltx.TXID(binary.BigEndian.Uint64(b[8:16])) == before
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 10*time.Second, "the killed replicator to be gone", func() bool {
		return syscall.Kill(first.Process.Pid, 0) != nil
	})
	// The application goes on: its checkpoint empties the WAL Litestream
	// last read, and it writes one more row.
	if _, err := app.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	testpeer.InsertRows(t, app, 200, 1)
	want := rows(t, path)

	_, out, stop := startReplicator(t, spec)
	waitRestorable(t, conn, guid3, want, 60*time.Second)
	equalRows(t, "litestream restore", litestreamRestored(t, srv, conn, guid3), want)
	var uploaded int64
	objs, err := api.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(conn.Bucket), Prefix: aws.String(conn.TenantPath(guid3) + "/0000/")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs.Contents {
		if lo, _, err := ltx.ParseFilename(filepath.Base(aws.ToString(o.Key))); err == nil && lo > before {
			uploaded += aws.ToInt64(o.Size)
		}
	}
	t.Logf("after the restart: %d bytes of level-0 files above TXID %s (the database: 8 MB)", uploaded, before)
	if uploaded == 0 || uploaded > 1<<20 {
		t.Errorf("the restart uploaded %d bytes of level-0 files above TXID %s, want a few pages (the database is 8 MB)", uploaded, before)
	}
	if !strings.Contains(out.String(), "incremental wake") {
		t.Errorf("the restart did not say it woke incrementally:\n%s", out)
	}
	if code := stop(); code != 0 {
		t.Fatalf("the replicator exited with %d", code)
	}
	integrity(t, path)
}

// maxL0 is the highest TXID of the tenant's level-0 files in S3.
func maxL0(t *testing.T, api *s3.Client, bucket, tenantPath string) ltx.TXID {
	t.Helper()
	out, err := api.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(tenantPath + "/0000/")})
	if err != nil {
		t.Fatal(err)
	}
	var hi ltx.TXID
	for _, o := range out.Contents {
		if _, max, err := ltx.ParseFilename(filepath.Base(aws.ToString(o.Key))); err == nil && max > hi {
			hi = max
		}
	}
	return hi
}
