package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/s3conn"
)

const (
	guid1 = "12345678-1234-5678-9abc-123456789012"
	guid2 = "98765432-4321-8765-cba9-876543210987"
	guid3 = "abcdef01-2345-6789-abcd-ef0123456789"
)

// seedTx is the seed's log line: new transaction: db=TENANT pre=TXID post=TXID elapsed=D.
func seedTx(tenant string) string {
	return `(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d new transaction: db=` + regexp.QuoteMeta(tenant) + ` pre=[0-9a-f]{16} post=([0-9a-f]{16}) elapsed=\S+$`
}

func replicateArgs(srv *s3test.Server, conn s3conn.Conn, extra ...string) []string {
	return append([]string{"replicate", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint}, extra...)
}

func TestReplicateWhileWritingRestoresEveryRow(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	path := filepath.Join(dir, guid1+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 10)

	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", path)...)
	p.WaitFor(`replicating: db=`+guid1, 20*time.Second)

	// An application commits rows while replication runs, through five
	// syncs at least.
	w := testpeer.StartWriter(db, 10, 10*time.Millisecond)
	p.WaitFor(`(?s)(?:new transaction: db=`+guid1+`.*){5}`, 30*time.Second)
	n := w.Stop(t)
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(p.Out.String(), "stopped cleanly") {
		t.Fatalf("no clean stop in output")
	}

	out := filepath.Join(t.TempDir(), "restored.db")
	testpeer.Restore(t, srv, conn, guid1, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, path))
	if got := len(testpeer.Rows(t, out)); got != n {
		t.Fatalf("restored %d rows, want %d", got, n)
	}
}

func TestSIGTERMLosesNoCommittedRow(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	path := filepath.Join(t.TempDir(), guid2+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 5)
	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", path)...)
	p.WaitFor(seedTx(guid2), 20*time.Second)

	// Commit a last burst and stop at once, before the next sync tick.
	testpeer.InsertRows(t, db, 5, 200)
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	testpeer.Restore(t, srv, conn, guid2, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, path))
	if n := len(testpeer.Rows(t, out)); n != 205 {
		t.Fatalf("restored %d rows, want 205", n)
	}
}

func TestSeedExamplesLandInSeedPrefixes(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()

	// The three GUID tenants from the seed, in one process from a config file.
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "access-key-id: $LF_KEY\nsecret-access-key: $LF_SECRET\ndbs:\n")
	for _, g := range []string{guid1, guid2, guid3} {
		path := filepath.Join(dir, g+".db")
		testpeer.NewDB(t, path, 3)
		fmt.Fprintf(&cfg, "  - path: %s\n    replicas:\n      - type: s3\n        bucket: %s\n        path: databases/%s\n        endpoint: %s\n        region: us-east-1\n", path, conn.Bucket, g, srv.Endpoint)
	}
	cfgPath := filepath.Join(dir, "litestream.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
		"LF_KEY="+srv.AccessKey, "LF_SECRET="+srv.SecretKey)
	p := startLitefleet(t, env, "replicate", "-config", cfgPath)

	// The seed's -db-name example, from flags.
	legacy := filepath.Join(dir, "legacy-client.db")
	testpeer.NewDB(t, legacy, 3)
	q := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", legacy, "-db-name", "legacy-client-001")...)

	for _, g := range []string{guid1, guid2, guid3} {
		p.WaitFor(seedTx(g), 30*time.Second)
	}
	q.WaitFor(seedTx("legacy-client-001"), 30*time.Second)
	if code := p.Stop(60 * time.Second); code != 0 {
		t.Fatalf("config replicator exit %d", code)
	}
	if code := q.Stop(60 * time.Second); code != 0 {
		t.Fatalf("-db-name replicator exit %d", code)
	}

	client := srv.Client(t, conn)
	prefixes := map[string]bool{}
	out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(conn.Bucket), Prefix: aws.String("databases/"), Delimiter: aws.String("/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range out.CommonPrefixes {
		prefixes[aws.ToString(cp.Prefix)] = true
	}
	for _, want := range []string{guid1, guid2, guid3, "legacy-client-001"} {
		if !prefixes["databases/"+want+"/"] {
			t.Errorf("no prefix databases/%s/ in %v", want, prefixes)
		}
		// Each prefix holds Litestream LTX files at level 0.
		lo, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
			Bucket: aws.String(conn.Bucket), Prefix: aws.String("databases/" + want + "/0000/"),
		})
		if err != nil || len(lo.Contents) == 0 {
			t.Errorf("no level-0 LTX files under databases/%s/ (err %v)", want, err)
		}
	}
	if len(prefixes) != 4 {
		t.Errorf("want exactly the 4 seed prefixes, got %v", prefixes)
	}
}

// TestSecondReplicatorWaitsNamingTheOwner: a second replicator of a
// tenant another live host holds waits ("leased elsewhere", naming the
// host) instead of writing; when the holder stops cleanly it takes the
// claim, finds that its copy is not the tenant's history, and uploads
// nothing ("diverged"); the original file replicates again.
func TestSecondReplicatorWaitsNamingTheOwner(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	path := filepath.Join(t.TempDir(), guid3+".db")
	testpeer.NewDB(t, path, 3)
	first := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", path)...)
	owner := first.WaitFor(`heartbeat started: host=(\S+)`, 20*time.Second)[1]
	first.WaitFor(`replicating: db=`+guid3, 20*time.Second)

	// The same tenant from another copy of the file: it waits. (Its
	// default host name is the first's: it watches that heartbeat for a
	// beat, sees it change, and takes a name of its own first.)
	other := filepath.Join(t.TempDir(), guid3+".db")
	db := testpeer.OpenDB(t, other)
	testpeer.InsertRows(t, db, 500, 4)
	db.Close()
	second := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", other)...)
	second.WaitFor(`leased elsewhere: db=`+guid3+` reason="held by live host `+regexp.QuoteMeta(owner), 35*time.Second)
	select {
	case <-second.Done():
		t.Fatalf("a replicator waiting for a live host's tenant exited:\n%s", second.Out.String())
	case <-time.After(2 * time.Second):
	}

	// After a clean stop the claim is released: the second takes it, and
	// its different copy is diverged, never uploaded.
	if code := first.Stop(60 * time.Second); code != 0 {
		t.Fatalf("first exit %d", code)
	}
	second.WaitFor(`diverged: db=`+guid3, 40*time.Second)
	if strings.Contains(second.Out.String(), "new transaction: db="+guid3) {
		t.Fatalf("the second replicator uploaded its copy:\n%s", second.Out.String())
	}
	// The operator sees it from anywhere: ls reads the host's record.
	eventually(t, 30*time.Second, func() string {
		_, rows := lsHostsJSON(t, srv, conn)
		if r := rows[guid3]; r.Status != "diverged" || r.State != "diverged" {
			return fmt.Sprintf("ls shows %s as %q (host state %q), want diverged", guid3, r.Status, r.State)
		}
		return ""
	})
	if code := second.Stop(60 * time.Second); code != 1 {
		t.Fatalf("second exit %d, want 1 (a diverged tenant is not replicated)", code)
	}
	third := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", path)...)
	third.WaitFor(`replicating: db=`+guid3, 20*time.Second)
	if code := third.Stop(60 * time.Second); code != 0 {
		t.Fatalf("third exit %d", code)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	testpeer.Restore(t, srv, conn, guid3, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, path))
}

func TestReplicateFailsFastWithOneLine(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	path := filepath.Join(t.TempDir(), guid1+".db")
	testpeer.NewDB(t, path, 1)

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadEndpoint := "http://" + l.Addr().String()
	l.Close()

	badCreds := append(os.Environ(), "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY=wrong-secret")
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"missing bucket", testpeer.CredEnv(srv), []string{"replicate", "-dsn", path, "-bucket", "no-such-bucket", "-endpoint", srv.Endpoint}, 1, `bucket "no-such-bucket" does not exist`},
		{"wrong credentials", badCreds, replicateArgs(srv, conn, "-dsn", path), 1, "refused the credentials"},
		{"no database", testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", filepath.Join(t.TempDir(), guid1+".db")), 1, "no database at"},
		{"not a database", testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", "/etc/hostname"), 1, "not an SQLite database"},
		{"invalid -db-name", testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dsn", path, "-db-name", "Bad Name"), 2, "-db-name"},
		{"no bucket", testpeer.CredEnv(srv), []string{"replicate", "-dsn", path}, 2, "no bucket"},
		{"endpoint without scheme", testpeer.CredEnv(srv), []string{"replicate", "-dsn", path, "-bucket", "bkt", "-endpoint", "127.0.0.1:9"}, 2, "no scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			p := startLitefleet(t, tt.env, tt.args...)
			code := p.Wait(20 * time.Second)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s, want under 10s", d)
			}
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, p.Out.String())
			}
			out := p.Out.String()
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output does not say %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "wrong-secret") || strings.Contains(out, srv.SecretKey) {
				t.Fatalf("output leaks a secret:\n%s", out)
			}
			last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
			if !strings.HasPrefix(last, "litefleet: ") {
				t.Errorf("last line is not the error: %q", last)
			}
		})
	}

	// An unreachable endpoint is no mistake to exit on: a service started
	// again before the network or the server is up (after a SIGKILL, a
	// reboot) says so and keeps asking, with backoff, until S3 answers or
	// it is stopped.
	t.Run("unreachable endpoint", func(t *testing.T) {
		p := startLitefleet(t, testpeer.CredEnv(srv), "replicate", "-dsn", path, "-bucket", conn.Bucket, "-endpoint", deadEndpoint)
		p.WaitFor(`(?s)S3 not reachable at start: retrying.*cannot reach S3.*S3 not reachable at start: retrying`, 20*time.Second)
		if code := p.Stop(20 * time.Second); code == 0 {
			t.Errorf("exit 0 after SIGTERM before the start completed:\n%s", p.Out.String())
		}
		if out := p.Out.String(); strings.Contains(out, srv.SecretKey) {
			t.Fatalf("output leaks a secret:\n%s", out)
		}
	})
}

// TestReplicateHonoursAWSCABundle runs litefleet against S3 behind TLS with
// a private CA: it must trust the CA named by AWS_CA_BUNDLE, where
// Litestream's own client fails, and must still verify certificates.
func TestReplicateHonoursAWSCABundle(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	proxy.StartTLS()
	defer proxy.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw})
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), guid1+".db")
	testpeer.NewDB(t, path, 5)
	args := []string{"replicate", "-dsn", path, "-bucket", conn.Bucket, "-endpoint", proxy.URL}

	// Without the CA: certificate verification fails, quickly and plainly.
	p := startLitefleet(t, testpeer.Without(testpeer.CredEnv(srv), "AWS_CA_BUNDLE"), args...)
	if code := p.Wait(20 * time.Second); code != 1 || !strings.Contains(p.Out.String(), "certificate") {
		t.Fatalf("without the CA: exit %d, want 1 with a certificate error:\n%s", code, p.Out.String())
	}

	// With AWS_CA_BUNDLE naming it: replication works end to end.
	env := append(testpeer.Without(testpeer.CredEnv(srv), "AWS_CA_BUNDLE"), "AWS_CA_BUNDLE="+caFile)
	q := startLitefleet(t, env, args...)
	q.WaitFor(seedTx(guid1), 30*time.Second)
	if code := q.Stop(60 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	testpeer.Restore(t, srv, conn, guid1, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, path))
}

func TestReplicateFolderPicksUpNewTenants(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	dir := t.TempDir()
	testpeer.NewDB(t, filepath.Join(dir, guid1+".db"), 3)
	testpeer.NewDB(t, filepath.Join(dir, guid2+".sqlite"), 3)
	if err := os.WriteFile(filepath.Join(dir, "notes.db"), []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}

	p := startLitefleet(t, testpeer.CredEnv(srv), replicateArgs(srv, conn, "-dir", dir, "-rescan", "500ms")...)
	p.WaitFor(seedTx(guid1), 20*time.Second)
	p.WaitFor(seedTx(guid2), 20*time.Second)
	p.WaitFor(`failed: db=default reason=\S+notes.db is not an SQLite database`, 10*time.Second)

	// A new tenant appears: it replicates without a restart.
	db3 := testpeer.OpenDB(t, filepath.Join(dir, guid3+".db"))
	testpeer.InsertRows(t, db3, 0, 3)
	p.WaitFor(seedTx(guid3), 20*time.Second)
	if n := strings.Count(p.Out.String(), "notes.db is not an SQLite database"); n != 1 {
		t.Errorf("the refused file is logged %d times, want once", n)
	}
	if code := p.Stop(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (one database never replicated)", code)
	}
	out := filepath.Join(t.TempDir(), "restored.db")
	testpeer.Restore(t, srv, conn, guid3, out)
	testpeer.SameRows(t, testpeer.Rows(t, out), testpeer.Rows(t, filepath.Join(dir, guid3+".db")))
}
