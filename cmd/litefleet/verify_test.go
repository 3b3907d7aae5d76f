package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/s3browse"
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
	// Never asleep: a sleep's close may checkpoint the WAL into the file,
	// which would move its mtime whatever verify does.
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-host", "web-1", "-sleep-after", "0")...)
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
	// -config: the database's own keys (none in the environment) read it.
	cfg := filepath.Join(t.TempDir(), "litestream.yml")
	yml := "dbs:\n  - path: " + path + "\n    access-key-id: $LF_KEY\n    secret-access-key: $LF_SECRET\n    replica:\n      url: s3://" + conn.Bucket + "/databases/" + guid1 + "\n      endpoint: " + srv.Endpoint + "\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"), "LF_KEY="+srv.AccessKey, "LF_SECRET="+srv.SecretKey)
	code, text = runLitefleet(t, env, "verify", "-config", cfg)
	if code != 0 || !strings.Contains(text, guid1+" at TXID ") || strings.Contains(text, srv.SecretKey) {
		t.Fatalf("verify -config exit %d:\n%s", code, text)
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

// TestVerifyContinuous: replicate -verify-every verifies each tenant of
// the host within a period; one tenant's replica damaged mid-run (bytes
// flipped in an LTX object) is a failed verdict within the next period: an
// ERROR line naming it, /metrics' failure counter and timestamp, and the
// host record's verdict in ls -json.
func TestVerifyContinuous(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	for _, g := range []string{guid1, guid2} {
		testpeer.NewDB(t, filepath.Join(dir, g+".db"), 5)
	}
	const period = 3 * time.Second
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-host", "web-1", "-sleep-after", "1s",
		"-verify-every", period.String(), "-addr", "127.0.0.1:0")...)
	base := "http://" + p.WaitFor(`monitor listening: addr=(\S+)`, 20*time.Second)[1]
	p.WaitFor(`sleeping: db=`+guid1, 60*time.Second)
	p.WaitFor(`sleeping: db=`+guid2, 60*time.Second)

	metric := func(name, tenant string) (float64, bool) {
		_, text := httpGet(t, base+"/metrics")
		re := regexp.MustCompile(`(?m)^` + name + `\{tenant="` + tenant + `"\} (\S+)$`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return v, err == nil
	}
	testpeer.Eventually(t, 4*period, "both tenants verified (litefleet_tenant_last_verified_timestamp_seconds)", func() bool {
		_, a := metric("litefleet_tenant_last_verified_timestamp_seconds", guid1)
		_, b := metric("litefleet_tenant_last_verified_timestamp_seconds", guid2)
		return a && b
	})
	if n, ok := metric("litefleet_tenant_verify_failures_total", guid2); !ok || n != 0 {
		t.Fatalf("failures before the damage: %v %v\n%s", n, ok, p.Out.String())
	}

	// Damage guid2's snapshot in S3.
	api := srv.Client(t, conn)
	ctx := context.Background()
	key := conn.TenantPath(guid2) + "/0000/0000000000000001-0000000000000001.ltx"
	obj, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	body[len(body)/2] ^= 0xff
	if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(`(?m)^.*verify failed: db=`+guid2+` verdict="broken chain".*$`, 6*period)
	if n, ok := metric("litefleet_tenant_verify_failures_total", guid2); !ok || n < 1 {
		t.Fatalf("litefleet_tenant_verify_failures_total{tenant=%q} = %v, %v after the failure", guid2, n, ok)
	}
	if n, _ := metric("litefleet_tenant_verify_failures_total", guid1); n != 0 {
		t.Fatalf("the undamaged tenant failed %v times:\n%s", n, p.Out.String())
	}
	// ls reads the host record, written at the next beat (10 s).
	testpeer.Eventually(t, 30*time.Second, "ls -json shows guid2's verdict from the host record", func() bool {
		code, out := runLitefleet(t, testpeer.CredEnv(srv), "ls", "-json", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
		if code != 0 {
			return false
		}
		var v struct {
			Tenants []struct{ Tenant, Verdict string } `json:"tenants"`
		}
		if json.Unmarshal([]byte(out), &v) != nil {
			return false
		}
		got := map[string]string{}
		for _, r := range v.Tenants {
			got[r.Tenant] = r.Verdict
		}
		return got[guid2] == "broken chain" && got[guid1] == "verified"
	})
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d:\n%s", code, p.Out.String())
	}
}

// TestVerifyAfterCompaction: a tenant written for long enough that the
// engine compacts its level-0 files into level 1 verifies as verified: a
// real compaction equals the files it replaces, and the chain through it
// is whole.
func TestVerifyAfterCompaction(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	testpeer.NewDB(t, path, 5)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-host", "web-1", "-sleep-after", "0")...)
	p.WaitFor(`replicating: db=`+guid1, 60*time.Second)
	db := testpeer.OpenDB(t, path)
	w := testpeer.StartWriter(db, 1000, 300*time.Millisecond)
	api := srv.Client(t, conn)
	testpeer.Eventually(t, 90*time.Second, "a level-1 compaction in S3 beside level-0 files", func() bool {
		tn, err := s3browse.Inspect(context.Background(), api, conn, guid1)
		if err != nil {
			t.Fatal(err)
		}
		var l0, l1 bool
		for _, l := range tn.Levels {
			l0 = l0 || (l.Level == 0 && len(l.Files) > 0)
			l1 = l1 || (l.Level == 1 && len(l.Files) > 0)
		}
		return l0 && l1
	})
	w.Stop(t)
	args := []string{"verify", guid1, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-json"}
	var out string
	testpeer.Eventually(t, 60*time.Second, "verify says verified once the host record has the last TXID's checksum", func() bool {
		code, text := runLitefleet(t, testpeer.CredEnv(srv), args...)
		out = text
		if code != 0 || strings.Contains(text, `"verdict": "mismatch"`) || strings.Contains(text, `"verdict": "broken chain"`) {
			t.Fatalf("verify exit %d:\n%s", code, text)
		}
		return strings.Contains(text, `"verdict": "verified"`)
	})
	if !regexp.MustCompile(`"files": \d+`).MatchString(out) {
		t.Fatalf("report:\n%s", out)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicate exit %d:\n%s", code, p.Out.String())
	}
}

// A config's verify-every: that is not a period is refused in one line,
// before anything starts.
func TestVerifyEveryConfigRefused(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "litestream.yml")
	body := "verify-every: soon\ndbs:\n  - path: /nonexistent/" + guid1 + ".db\n    replica:\n      url: s3://bucket/databases/" + guid1 + "\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, text := runLitefleet(t, nil, "replicate", "-config", cfg)
	if code != 2 || !strings.Contains(text, `verify-every: "soon" is not a period: write e.g. 24h`) || strings.Count(strings.TrimSpace(text), "\n") != 0 {
		t.Fatalf("exit %d:\n%s", code, text)
	}
}

// A bandwidth that is not one, in the config or as a flag, is refused in
// one line that says how to write it, before anything starts.
func TestVerifyBandwidthRefused(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "litestream.yml")
	body := "verify-every: 24h\nverify-bandwidth: fast\ndbs:\n  - path: /nonexistent/" + guid1 + ".db\n    replica:\n      url: s3://bucket/databases/" + guid1 + "\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, text := runLitefleet(t, nil, "replicate", "-config", cfg)
	if code != 2 || !strings.Contains(text, `verify-bandwidth: "fast" is not a bandwidth: write bytes a second, e.g. 5MB`) || strings.Count(strings.TrimSpace(text), "\n") != 0 {
		t.Fatalf("config: exit %d:\n%s", code, text)
	}
	for _, args := range [][]string{
		{"replicate", "-dir", t.TempDir(), "-bucket", "backups", "-verify-every", "1h", "-verify-bandwidth", "-5MB"},
		{"verify", "-all", "-bucket", "backups", "-bandwidth", "lots"},
	} {
		code, text := runLitefleet(t, nil, args...)
		if code != 2 || !strings.Contains(text, "is not a bandwidth") {
			t.Errorf("%v: exit %d:\n%s", args, code, text)
		}
	}
}
