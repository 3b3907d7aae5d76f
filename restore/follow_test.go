package restore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
)

// followed runs restore.Follow in the background and records what it
// reports, checking the followed file with PRAGMA integrity_check, through
// an ordinary SQLite connection, at every TXID it reaches.
type followed struct {
	t      *testing.T
	out    string
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	txid     uint64
	applied  int
	restored []string // the Reason of each full restore ("" for the first)
	bad      []string // integrity failures
	errs     []string
}

func startFollow(t *testing.T, opt restore.FollowOptions, api s3conn.API) *followed {
	t.Helper()
	fw := &followed{t: t, out: opt.Output, done: make(chan error, 1)}
	opt.Interval = 50 * time.Millisecond
	opt.OnEvent = fw.event
	ctx, cancel := context.WithCancel(context.Background())
	fw.cancel = cancel
	go func() { fw.done <- restore.Follow(ctx, api, opt) }()
	t.Cleanup(func() { fw.stop() })
	return fw
}

func (fw *followed) event(ev restore.FollowEvent) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	switch ev.Kind {
	case restore.FollowError:
		fw.errs = append(fw.errs, ev.Err.Error())
		return
	case restore.FollowApplied:
		fw.applied++
	case restore.FollowRestored:
		fw.restored = append(fw.restored, ev.Reason)
	}
	fw.txid = ev.TXID
	if got := integrity(ev.Output); got != "ok" {
		fw.bad = append(fw.bad, fmt.Sprintf("TXID %d: %s", ev.TXID, got))
	}
}

// integrity runs PRAGMA integrity_check as a reader of the followed file
// would: a plain connection, beside the follower's.
func integrity(path string) string {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		return err.Error()
	}
	return res
}

// waitTXID waits until the followed file holds want, and checks it held
// a whole database at every step.
func (fw *followed) waitTXID(want uint64) {
	fw.t.Helper()
	testpeer.Eventually(fw.t, 30*time.Second, fmt.Sprintf("the follower reaches TXID %d", want), func() bool {
		fw.mu.Lock()
		defer fw.mu.Unlock()
		return fw.txid >= want
	})
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.bad) > 0 {
		fw.t.Fatalf("the followed file failed integrity_check: %q", fw.bad)
	}
}

func (fw *followed) stop() error {
	if fw.cancel == nil {
		return nil
	}
	fw.cancel()
	fw.cancel = nil
	return <-fw.done
}

func TestFollowAppliesEachTXID(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)

	src := filepath.Join(t.TempDir(), tenantA+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertBlobs(t, db, 0, 50, 300)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantA)
	first := r.Sync()

	out := filepath.Join(t.TempDir(), "standby.db")
	fw := startFollow(t, restore.FollowOptions{Options: restore.Options{Conn: conn, Tenant: tenantA, Output: out}}, client)
	fw.waitTXID(first)

	// Growing rounds, then a shrink (the file must be cut, as SQLite's).
	for round := range 3 {
		testpeer.InsertBlobs(t, db, 50+round*20, 20, 3000)
		fw.waitTXID(r.Sync())
		testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, src))
	}
	for _, q := range []string{"DELETE FROM t WHERE id >= 30", "VACUUM"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	fw.waitTXID(r.Sync())
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, src))
	pages := func(path string) (n int) {
		d, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.QueryRow("PRAGMA page_count").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got, want := pages(out), pages(src); got != want {
		t.Fatalf("the followed file has %d pages after the VACUUM, the source %d", got, want)
	}

	if err := fw.stop(); err != nil {
		t.Fatalf("Follow after cancel: %v", err)
	}
	// Stopped, the follower's WAL is folded back in: the file itself is
	// cut to the source's pages.
	var pageSize int64
	if err := db.QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err != nil || st.Size() != int64(pages(src))*pageSize {
		t.Fatalf("the followed file after stopping: %v, %v; want %d pages of %d bytes", st.Size(), err, pages(src), pageSize)
	}
	// Byte for byte a fresh restore: the file is the replica's, so that
	// replicate accepts it as a restored copy (promotion).
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	if _, err := restore.Run(context.Background(), client, restore.Options{Conn: conn, Tenant: tenantA, Output: fresh}); err != nil {
		t.Fatal(err)
	}
	samePages(t, out, fresh)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.applied == 0 || len(fw.restored) != 1 {
		t.Fatalf("applied %d files, restored %d times (%q): want files applied one by one after one restore; errors: %q", fw.applied, len(fw.restored), fw.restored, fw.errs)
	}
	if got := integrity(out); got != "ok" {
		t.Fatalf("after stopping: %s", got)
	}
}

// A new history (the tenant's prefix replaced by another database's)
// leaves the follower's last applied file gone: it restores in full.
func TestFollowGapRestoresAgain(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)

	src := filepath.Join(t.TempDir(), tenantB+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertBlobs(t, db, 0, 20, 300)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantB)
	r.Sync()
	testpeer.InsertRows(t, db, 100, 3)
	txid := r.Sync()

	out := filepath.Join(t.TempDir(), "standby.db")
	fw := startFollow(t, restore.FollowOptions{Options: restore.Options{Conn: conn, Tenant: tenantB, Output: out}}, client)
	fw.waitTXID(txid)
	testpeer.InsertRows(t, db, 200, 1)
	fw.waitTXID(r.Sync()) // an L0 file applied: the anchor is set
	r.Stop()

	// The new history: another database, more rows, its own TXIDs.
	deletePrefix(t, client, conn.Bucket, conn.TenantPath(tenantB)+"/")
	src2 := filepath.Join(t.TempDir(), tenantB+".db")
	db2 := testpeer.OpenDB(t, src2)
	testpeer.InsertBlobs(t, db2, 1000, 80, 500)
	r2 := testpeer.Replicate(t, srv, conn, testpeer.V5, src2, tenantB)
	r2.Sync()
	testpeer.InsertRows(t, db2, 2000, 2)
	r2.Sync()
	want := testpeer.Rows(t, src2)
	testpeer.Eventually(t, 30*time.Second, "the follower restores the new history", func() bool {
		fw.mu.Lock()
		n := len(fw.restored)
		fw.mu.Unlock()
		return n >= 2 && len(testpeer.Rows(t, out)) == len(want)
	})
	testpeer.SameRows(t, testpeer.Rows(t, out), want)
	// And it follows the new history on.
	testpeer.InsertRows(t, db2, 3000, 5)
	fw.waitTXID(r2.Sync())
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, src2))
	if err := fw.stop(); err != nil {
		t.Fatal(err)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.restored[1] == "" {
		t.Fatalf("the second restore gave no reason: %q", fw.restored)
	}
	t.Logf("restored again because: %s", fw.restored[1])
}

func deletePrefix(t *testing.T, client *s3.Client, bucket, prefix string) {
	t.Helper()
	ctx := context.Background()
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []types.ObjectIdentifier
	for _, o := range out.Contents {
		ids = append(ids, types.ObjectIdentifier{Key: o.Key})
	}
	if len(ids) == 0 {
		t.Fatalf("nothing under %s", prefix)
	}
	if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids}}); err != nil {
		t.Fatal(err)
	}
}

// samePages fails unless the files at a and b hold the same bytes, naming
// the pages that differ; page 1's change counter and version (bytes 24-27,
// 92-99) aside: SQLite rewrites them on every commit of page 1, and
// replicate's check of a restored copy ignores them too.
func samePages(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) {
		t.Fatalf("%s has %d bytes, %s %d", a, len(x), b, len(y))
	}
	const ps = 4096
	for off := 0; off < len(x); off += ps {
		for i := off; i < off+ps; i++ {
			if off == 0 && (i >= 24 && i < 28 || i >= 92 && i < 100) {
				continue
			}
			if x[i] != y[i] {
				t.Errorf("page %d differs first at byte %d: %x, want %x", off/ps+1, i-off, x[i], y[i])
				break
			}
		}
	}
}

// A followed file that a replicator takes over (Litestream's state appears
// beside it) is written no more: following stops with a StoppedError.
func TestFollowStopsWhenReplicated(t *testing.T) {
	integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)

	src := filepath.Join(t.TempDir(), tenantC+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertRows(t, db, 0, 10)
	r := testpeer.Replicate(t, srv, conn, testpeer.V5, src, tenantC)
	txid := r.Sync()

	out := filepath.Join(t.TempDir(), tenantC+".db")
	fw := startFollow(t, restore.FollowOptions{Options: restore.Options{Conn: conn, Tenant: tenantC, Output: out}}, client)
	fw.waitTXID(txid)
	before := testpeer.Rows(t, out)
	if err := os.Mkdir(layout.LitestreamStateDir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	testpeer.InsertRows(t, db, 100, 5)
	r.Sync()
	select {
	case err := <-fw.done:
		fw.cancel = nil
		var stop *restore.StoppedError
		if !errors.As(err, &stop) {
			t.Fatalf("Follow returned %v, want a StoppedError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Follow went on writing a replicated file")
	}
	testpeer.SameRows(t, testpeer.Rows(t, out), before)
}
