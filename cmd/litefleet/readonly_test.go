package main

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestReadOnlyFolderFailsAtOnce: a database in a folder this user cannot
// write is "failed" with the reason at once, and replicate exits 1 at
// start when no tenant can start. As root, which writes anywhere, the
// command runs as nobody.
func TestReadOnlyFolderFailsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	testpeer.InsertRows(t, testpeer.OpenDB(t, path), 0, 3)

	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		testpeer.Require(t, err == nil, "the user nobody (running as root, a read-only folder is met only as another user)")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o755) // nobody may read, not write
		}
		_ = os.Chmod(path, 0o644)
	} else {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	home := t.TempDir()
	_ = os.Chmod(home, 0o777)
	env := append(testpeer.CredEnv(srv), "HOME="+home)
	start := time.Now()
	p := startLitefleetAs(t, cred, env, replicateArgs(srv, conn, "-dsn", path)...)
	code := p.Wait(30 * time.Second)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s, want the failure at once", took.Round(time.Millisecond))
	}
	out := p.Out.String()
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "failed: db="+guid2) || !strings.Contains(out, "read-only") {
		t.Fatalf("no failed state with the reason:\n%s", out)
	}
	last := strings.TrimSpace(out)
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.HasPrefix(last, "litefleet: no database can replicate (1 failed)") {
		t.Errorf("last line: %q", last)
	}
	if strings.Contains(out, "stopped cleanly") {
		t.Errorf("a failed start claims a clean stop:\n%s", out)
	}
}

// TestPermissionsTakenFromOpenTenant: a database open for replication whose
// permissions are taken away (chmod 000) is "failed" with the reason within
// a sweep, not left failing quietly inside Litestream; given back, it
// replicates again and every row is restorable. Runs as nobody, since root
// may read and write any file.
func TestPermissionsTakenFromOpenTenant(t *testing.T) {
	testpeer.Integration(t)
	testpeer.Require(t, os.Geteuid() == 0, "root, to run the replicator as another user")
	u, err := user.Lookup("nobody")
	testpeer.Require(t, err == nil, "the user nobody")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	path := filepath.Join(dir, guid2+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 3)
	_ = db.Close()
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		_ = os.Chown(p, uid, gid)
	}
	home := t.TempDir()
	_ = os.Chmod(home, 0o777)
	env := append(testpeer.CredEnv(srv), "HOME="+home)
	p := startLitefleetAs(t, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, env,
		replicateArgs(srv, conn, "-dir", dir, "-sleep-after", "0")...)
	p.WaitFor(`replicating: db=`+guid2, 30*time.Second)

	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(`failed: db=`+guid2+`.*permission denied`, 30*time.Second)

	// Given back, with rows the application wrote meanwhile (as root).
	db = testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 3, 4)
	_ = db.Close()
	for _, f := range []string{path + "-wal", path + "-shm"} {
		_ = os.Chown(f, uid, gid)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	base := len(p.Out.String())
	testpeer.Eventually(t, 30*time.Second, "replicating again", func() bool {
		return strings.Contains(p.Out.String()[base:], "replicating: db="+guid2)
	})
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Out.String())
	}
	want := testpeer.Rows(t, path)
	restored := filepath.Join(t.TempDir(), "r.db")
	if code, text := runLitefleet(t, testpeer.CredEnv(srv), "restore", guid2, "-o", restored, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint); code != 0 {
		t.Fatalf("restore: exit %d:\n%s", code, text)
	}
	if got := testpeer.Rows(t, restored); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("restored %d rows, want %d (%v)", len(got), len(want), got)
	}
}
