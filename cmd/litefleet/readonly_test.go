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
		if err != nil {
			t.Skip("running as root and there is no user nobody")
		}
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
