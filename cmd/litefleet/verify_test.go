package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
)

// TestVerifyLiveTenant: a tenant replicated by a running litefleet, its
// application holding a connection, is verified (the host record's
// checksum equals the restored copy's), and verify never touches the live
// database: no lock of its own in /proc/locks while it runs, the file's
// inode and mtime unchanged, the replicator's lock still held.
func TestVerifyLiveTenant(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	testpeer.NewDB(t, path, 5)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-host", "web-1")...)
	p.WaitFor(`replicating: db=`+guid1, 60*time.Second)
	app := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, app, 100, 20)
	pid := p.Cmd.Process.Pid
	if !testpeer.HoldsLock(t, pid, path) {
		t.Fatal("the replicator holds no lock on the live database before verify")
	}
	before := fileStamp(t, path)

	args := []string{"verify", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-json"}
	var out string
	// The host record is written at most once per beat (10 s): wait for the
	// one that has the checksum of the replicated TXID.
	testpeer.Eventually(t, 60*time.Second, "verify says verified (the host record carries the replicated TXID's checksum)", func() bool {
		v := testpeer.Start(t, testpeer.CredEnv(srv), binary, args...)
		for {
			if testpeer.HoldsLock(t, v.Cmd.Process.Pid, path) {
				t.Fatal("verify holds a lock on the live database")
			}
			select {
			case <-v.Done():
			case <-time.After(5 * time.Millisecond):
				continue
			}
			break
		}
		code := v.Wait(time.Minute)
		out = v.Out.String()
		if code != 0 {
			t.Fatalf("verify exit %d:\n%s", code, out)
		}
		return strings.Contains(out, `"verdict": "verified"`)
	})
	var got struct {
		Tenants []struct {
			Tenant, Verdict, Reason, Checksum, Integrity string
			TXID                                         uint64
			Expected                                     struct {
				Host     string
				TXID     uint64
				Checksum string
			}
		}
		Summary struct{ Tenants, Failed int }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	r := got.Tenants[0]
	if len(got.Tenants) != 1 || r.Tenant != guid1 || r.Integrity != "ok" || r.TXID == 0 || r.TXID != r.Expected.TXID ||
		r.Checksum == "" || r.Checksum != r.Expected.Checksum || r.Expected.Host != "web-1" || got.Summary.Failed != 0 {
		t.Fatalf("report:\n%s", out)
	}
	if after := fileStamp(t, path); after != before {
		t.Fatalf("the live database changed under verify: %+v, then %+v", before, after)
	}
	if !testpeer.HoldsLock(t, pid, path) {
		t.Fatal("the replicator lost its lock on the live database during verify")
	}
	if strings.Contains(out, srv.SecretKey) {
		t.Fatal("the secret key was printed")
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d:\n%s", code, p.Out.String())
	}

	// Text, and the command line's mistakes.
	code, text := runLitefleet(t, testpeer.CredEnv(srv), "verify", guid1, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 0 || !strings.Contains(text, guid1+" at TXID ") || !strings.Contains(text, "verify: 1 tenants, ") {
		t.Fatalf("verify exit %d:\n%s", code, text)
	}
	for _, bad := range [][]string{{"verify"}, {"verify", "-all", guid1}, {"verify", guid1, guid2, "-txid", "3"}, {"verify", "-match", "a*", guid1}} {
		if code, text := runLitefleet(t, testpeer.CredEnv(srv), append(bad, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)...); code != 2 || strings.Count(strings.TrimSpace(text), "\n") != 0 {
			t.Fatalf("%q: exit %d:\n%s", bad, code, text)
		}
	}
}

type stamp struct {
	ino   uint64
	mtime int64
	size  int64
}

func fileStamp(t *testing.T, path string) stamp {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return stamp{ino: st.Ino, mtime: fi.ModTime().UnixNano(), size: fi.Size()}
}
