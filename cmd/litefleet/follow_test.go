package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// A followed tenant reaches each new row, stops cleanly on SIGTERM, and
// can be promoted: replicate on the followed file continues the history.
func TestRestoreFollowThenPromote(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	env := testpeer.CredEnv(srv)
	ep := []string{"-bucket", conn.Bucket, "-endpoint", srv.Endpoint}

	src := filepath.Join(t.TempDir(), guid1+".db")
	db := testpeer.OpenDB(t, src)
	testpeer.InsertRows(t, db, 0, 20)
	writer := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", src)...)
	writer.WaitFor(seedTx(guid1), 30*time.Second)

	out := filepath.Join(t.TempDir(), guid1+".db")
	fw := startLitefleet(t, env, append([]string{"restore", guid1, "-o", out, "-f", "-follow-interval", "100ms"}, ep...)...)
	fw.WaitFor(`following: db=`+guid1, 30*time.Second)
	for round := range 3 {
		testpeer.InsertRows(t, db, 100*(round+1), 5)
		want := testpeer.Rows(t, src)
		testpeer.Eventually(t, 30*time.Second, "the followed file has the new rows", func() bool {
			return len(testpeer.Rows(t, out)) == len(want)
		})
		testpeer.SameRows(t, testpeer.Rows(t, out), want)
	}
	fw.WaitFor(`followed: db=`+guid1+` txid=[0-9a-f]{16} lag=\S+`, 10*time.Second)
	if code := fw.Stop(30 * time.Second); code != 0 {
		t.Fatalf("restore -f exit %d after SIGTERM, want 0:\n%s", code, fw.Out.String())
	}
	m := regexp.MustCompile(`stopped following: db=` + guid1 + ` txid=([0-9a-f]{16})`).FindStringSubmatch(fw.Out.String())
	if m == nil {
		t.Fatalf("no clean stop:\n%s", fw.Out.String())
	}
	if _, err := os.Stat(out + "-wal"); err == nil {
		t.Fatalf("a -wal is left beside the followed file")
	}

	// Promotion: the old host is gone; the standby replicates its file.
	if code := writer.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d:\n%s", code, writer.Out.String())
	}
	promoted := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", out)...)
	promoted.WaitFor(`replicating: db=`+guid1, 30*time.Second)
	pdb := testpeer.OpenDB(t, out)
	testpeer.InsertRows(t, pdb, 1000, 3)
	// The first upload continues from the TXID the standby reached.
	promoted.WaitFor(`new transaction: db=`+guid1+` pre=`+m[1]+` post=`, 30*time.Second)
	if code := promoted.Stop(60 * time.Second); code != 0 {
		t.Fatalf("promoted replicate exit %d:\n%s", code, promoted.Out.String())
	}
	if regexp.MustCompile(`(?i)diverged`).MatchString(promoted.Out.String()) {
		t.Fatalf("the promoted file diverged:\n%s", promoted.Out.String())
	}
	check := filepath.Join(t.TempDir(), "check.db")
	testpeer.Restore(t, srv, conn, guid1, check)
	testpeer.SameRows(t, testpeer.Rows(t, check), testpeer.Rows(t, out))
}

// restore -all -f follows every tenant, and says so per interval.
func TestRestoreAllFollow(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	env := testpeer.CredEnv(srv)
	ep := []string{"-bucket", conn.Bucket, "-endpoint", srv.Endpoint}

	dir := t.TempDir()
	a, b := filepath.Join(dir, guid1+".db"), filepath.Join(dir, guid2+".db")
	dba, dbb := testpeer.OpenDB(t, a), testpeer.OpenDB(t, b)
	testpeer.InsertRows(t, dba, 0, 10)
	testpeer.InsertRows(t, dbb, 0, 10)
	writer := startLitefleet(t, env, replicateArgs(srv, conn, "-dir", dir)...)
	writer.WaitFor(seedTx(guid1), 30*time.Second)
	writer.WaitFor(seedTx(guid2), 30*time.Second)

	standby := filepath.Join(t.TempDir(), "standby")
	fw := startLitefleet(t, env, append([]string{"restore", "-all", "-o", standby, "-f", "-v", "-follow-interval", "100ms"}, ep...)...)
	fw.WaitFor(`following: 2 tenants`, 30*time.Second)
	testpeer.InsertRows(t, dbb, 100, 5)
	want := testpeer.Rows(t, b)
	testpeer.Eventually(t, 30*time.Second, "tenant 2's standby has the new rows", func() bool {
		return len(testpeer.Rows(t, filepath.Join(standby, guid2+".db"))) == len(want)
	})
	testpeer.SameRows(t, testpeer.Rows(t, filepath.Join(standby, guid2+".db")), want)
	fw.WaitFor(`follow: tenants=2 polled=\d+ changed=1 applied=\d+ restored=0 errors=0 max_lag=\S+`, 10*time.Second)
	fw.WaitFor(`followed: db=`+guid2+` txid=`, 10*time.Second)
	if code := fw.Stop(30 * time.Second); code != 0 {
		t.Fatalf("restore -all -f exit %d after SIGTERM, want 0:\n%s", code, fw.Out.String())
	}
	if strings.Contains(fw.Out.String(), "followed: db="+guid1) {
		t.Fatalf("tenant 1 did not change, yet was followed:\n%s", fw.Out.String())
	}
	_ = writer.Stop(60 * time.Second)
}
