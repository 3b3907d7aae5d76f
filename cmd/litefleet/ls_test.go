package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/internal/testpeer"
	"github.com/litefleet/litefleet/layout"
)

// lsJSON is the part of `ls -json` the tests read; the README documents it.
type lsJSON struct {
	Tenants []struct {
		Tenant string `json:"tenant"`
		Status string `json:"status"`
		Note   string `json:"note"`
		Local  *struct {
			Path    string `json:"path"`
			Name    string `json:"name"`
			Verdict string `json:"verdict"`
			TXID    uint64 `json:"txid"`
		} `json:"local"`
		Remote *struct {
			Format     string `json:"format"`
			LatestTXID uint64 `json:"latest_txid"`
			HasLease   bool   `json:"has_lease"`
		} `json:"remote"`
		LagTXIDs uint64 `json:"lag_txids"`
	} `json:"tenants"`
	Counts      map[string]int `json:"counts"`
	RemoteError string         `json:"remote_error"`
	FromCache   bool           `json:"remote_from_cache"`
}

func TestLsJoinsLocalAndRemote(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	env := testpeer.CredEnv(srv)
	dir := t.TempDir()

	// guid1: replicated now, by a litefleet replicate that keeps running.
	inSync := filepath.Join(dir, guid1+".db")
	testpeer.NewDB(t, inSync, 5)
	rep := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", inSync)...)
	rep.WaitFor(seedTx(guid1), 20*time.Second)

	// guid2: never replicated.
	testpeer.NewDB(t, filepath.Join(dir, guid2+".db"), 2)
	// A file that is not a GUID: falls back to "default".
	testpeer.NewDB(t, filepath.Join(dir, "legacy-client.db"), 2)

	// guid3: replicated from elsewhere, then stopped: remote only.
	elsewhere := filepath.Join(t.TempDir(), guid3+".db")
	testpeer.NewDB(t, elsewhere, 3)
	other := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", elsewhere)...)
	other.WaitFor(seedTx(guid3), 20*time.Second)
	if code := other.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicator of %s exit %d", guid3, code)
	}

	// A prefix that is no tenant name, put there by hand.
	client := srv.Client(t, conn)
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(conn.Bucket), Key: aws.String("databases/Bad Name/0000/0000000000000001-0000000000000001.ltx"), Body: bytes.NewReader([]byte("x")),
	}); err != nil {
		t.Fatal(err)
	}
	// The running replicator has uploaded its whole local position (no
	// one writes to guid1 any more).
	testpeer.Eventually(t, 20*time.Second, guid1+" uploaded up to its local position", func() bool {
		m := regexp.MustCompile(seedTx(guid1)).FindAllStringSubmatch(rep.Out.String(), -1)
		local := testpeer.LocalTXID(t, inSync)
		return local != 0 && len(m) > 0 && m[len(m)-1][1] == layout.TXIDHex(local)
	})

	args := []string{"ls", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-json", "-no-cache"}
	code, out := runLitefleet(t, env, args...)
	if code != 0 {
		t.Fatalf("ls exit %d:\n%s", code, out)
	}
	var v lsJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("ls -json: %v\n%s", err, out)
	}
	status := map[string]string{}
	for _, r := range v.Tenants {
		status[r.Tenant] = r.Status
		if r.Tenant == guid1 {
			if r.Local == nil || r.Remote == nil || r.Local.TXID == 0 || r.Remote.LatestTXID != r.Local.TXID || !r.Remote.HasLease {
				t.Errorf("%s: local %+v remote %+v, want both sides at one TXID with a lease", guid1, r.Local, r.Remote)
			}
		}
		if r.Tenant == guid3 && (r.Local != nil || r.Remote == nil || r.Remote.Format != "ltx") {
			t.Errorf("%s: want remote only in ltx format, got local %+v remote %+v", guid3, r.Local, r.Remote)
		}
	}
	want := map[string]string{
		guid1:      "in sync",
		guid2:      "not replicating",
		"default":  "not replicating",
		guid3:      "remote only",
		"Bad Name": "invalid",
	}
	for k, w := range want {
		if status[k] != w {
			t.Errorf("%s: status %q, want %q (all: %v)", k, status[k], w, status)
		}
	}
	if len(v.Tenants) != len(want) {
		t.Errorf("%d rows, want %d: %v", len(v.Tenants), len(want), status)
	}
	if v.Counts["not replicating"] != 2 || v.Counts["in sync"] != 1 {
		t.Errorf("counts %v", v.Counts)
	}

	// The text form: a header, one line per tenant, a summary.
	code, out = runLitefleet(t, env, "ls", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-no-cache", "-sort", "status")
	if code != 0 {
		t.Fatalf("ls exit %d:\n%s", code, out)
	}
	// The replicator's host record adds a line of hosts.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "TENANT") || !strings.HasPrefix(lines[6], "5 tenants: 1 invalid, 2 not replicating, 1 remote only, 1 in sync") ||
		!strings.HasPrefix(lines[7], "1 host: ") {
		t.Errorf("text output:\n%s", out)
	}
	if !strings.HasPrefix(lines[1], "Bad Name ") {
		t.Errorf("-sort status: invalid first: %q", lines[1])
	}
	if code := rep.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicator exit %d", code)
	}
}

// TestLsKeepsLastGoodAnswer: when S3 stops answering, ls shows the last
// good answer from the cache, says how old it is, and exits 1.
func TestLsKeepsLastGoodAnswer(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	env := append(testpeer.CredEnv(srv), "XDG_CACHE_HOME="+t.TempDir())
	path := filepath.Join(t.TempDir(), guid2+".db")
	testpeer.NewDB(t, path, 3)
	rep := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", path)...)
	rep.WaitFor(seedTx(guid2), 20*time.Second)
	if code := rep.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicator exit %d", code)
	}

	proxy := newTCPProxy(t, strings.TrimPrefix(srv.Endpoint, "http://"))
	args := []string{"ls", "-bucket", conn.Bucket, "-endpoint", "http://" + proxy.addr, "-json"}
	code, out := runLitefleet(t, env, args...)
	if code != 0 {
		t.Fatalf("ls exit %d:\n%s", code, out)
	}

	proxy.close() // S3 is gone
	start := time.Now()
	code, out = runLitefleet(t, env, args...)
	if code != 1 {
		t.Fatalf("ls with S3 down: exit %d, want 1:\n%s", code, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("ls with S3 down took %s", d)
	}
	jsonPart := out[:strings.LastIndex(out, "}")+1]
	var v lsJSON
	if err := json.Unmarshal([]byte(jsonPart), &v); err != nil {
		t.Fatalf("ls -json: %v\n%s", err, out)
	}
	if !v.FromCache || v.RemoteError == "" || len(v.Tenants) != 1 || v.Tenants[0].Tenant != guid2 || v.Tenants[0].Remote == nil {
		t.Fatalf("want the cached answer with the error: %+v", v)
	}
	if !strings.Contains(out, "litefleet: cannot reach S3") {
		t.Errorf("no one-line error:\n%s", out)
	}

	code, out = runLitefleet(t, env, "ls", "-bucket", conn.Bucket, "-endpoint", "http://"+proxy.addr)
	if code != 1 || !strings.Contains(out, "S3 side from ") || !strings.Contains(out, guid2) {
		t.Errorf("text form does not show the cached answer and its age (exit %d):\n%s", code, out)
	}
}

func TestInspect(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	env := testpeer.CredEnv(srv)
	path := filepath.Join(t.TempDir(), guid3+".db")
	db := testpeer.OpenDB(t, path)
	testpeer.InsertRows(t, db, 0, 3)
	rep := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", path)...)
	m := rep.WaitFor(`heartbeat started: host=(\S+)`, 20*time.Second)
	rep.WaitFor(seedTx(guid3), 20*time.Second)
	testpeer.InsertRows(t, db, 3, 3)
	rep.WaitFor(`post=0000000000000002`, 20*time.Second)

	base := []string{"inspect", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint}
	code, out := runLitefleet(t, env, append(base, guid3, "-json")...)
	if code != 0 {
		t.Fatalf("inspect exit %d:\n%s", code, out)
	}
	var tn struct {
		Name       string `json:"name"`
		URL        string `json:"url"`
		Format     string `json:"format"`
		LatestTXID uint64 `json:"latest_txid"`
		Levels     []struct {
			Level int `json:"level"`
			Files []struct {
				MinTXID uint64 `json:"min_txid"`
				MaxTXID uint64 `json:"max_txid"`
			} `json:"files"`
		} `json:"levels"`
		Lease *struct {
			Host      string `json:"host"`
			HostAlive bool   `json:"host_alive"`
		} `json:"lease"`
	}
	if err := json.Unmarshal([]byte(out), &tn); err != nil {
		t.Fatalf("inspect -json: %v\n%s", err, out)
	}
	if tn.Format != "ltx" || tn.LatestTXID < 2 || len(tn.Levels) == 0 || tn.Levels[0].Level != 0 || len(tn.Levels[0].Files) < 2 {
		t.Errorf("inspect: %+v", tn)
	}
	if tn.Lease == nil || tn.Lease.Host != m[1] || !tn.Lease.HostAlive {
		t.Errorf("lease %+v, want held by live host %s", tn.Lease, m[1])
	}
	if tn.URL != conn.URL(guid3) {
		t.Errorf("url %q", tn.URL)
	}

	code, out = runLitefleet(t, env, append(base, guid3)...)
	if code != 0 || !strings.Contains(out, "held by host "+m[1]) || !strings.Contains(out, "level 0 (one file per sync)") {
		t.Errorf("inspect text (exit %d):\n%s", code, out)
	}
	code, out = runLitefleet(t, env, append(base, guid1)...)
	if code != 1 || !strings.Contains(out, "nothing in s3://") {
		t.Errorf("inspect of an absent tenant: exit %d:\n%s", code, out)
	}
	code, out = runLitefleet(t, env, append(base, "../etc")...)
	if code != 2 {
		t.Errorf("inspect ../etc: exit %d, want 2:\n%s", code, out)
	}
	if code := rep.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicator exit %d", code)
	}
}

// tcpProxy forwards connections to a backend until closed, so a test can
// make S3 disappear from one endpoint while the server keeps running.
type tcpProxy struct {
	addr  string
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newTCPProxy(t *testing.T, backend string) *tcpProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: l.Addr().String(), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); b.Close() }()
			go func() { _, _ = io.Copy(c, b); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestNoSDKWarningOnStderr: on a host without credentials whose metadata
// service refuses IMDSv2 tokens, the AWS SDK warns "falling back to
// IMDSv1" on stderr by default; litefleet keeps it out (slog, debug) and
// says in one line that no credentials were found.
func TestNoSDKWarningOnStderr(t *testing.T) {
	var tokens atomic.Int64
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			tokens.Add(1)
		}
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer imds.Close()
	env := append(testpeer.Without(os.Environ(), "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_V1_DISABLED"),
		"HOME="+t.TempDir(), "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(t.TempDir(), "none"),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL)
	code, out := runLitefleet(t, env, "ls", "-bucket", "no-creds", "-endpoint", "http://127.0.0.1:1", "-no-cache")
	if tokens.Load() == 0 {
		t.Fatalf("the SDK never asked the metadata service (exit %d):\n%s", code, out)
	}
	if code != 1 || !strings.Contains(out, "no S3 credentials found") {
		t.Errorf("exit %d, want 1 saying no credentials were found:\n%s", code, out)
	}
	if strings.Contains(out, "IMDSv1") || strings.Contains(out, "WARN") {
		t.Errorf("the SDK's warning reached stderr:\n%s", out)
	}
}

// TestJunkLeaseReadsOneWay: a lock.json that is not a lease holds no one's
// lease, and ls and inspect say so in the same words.
func TestJunkLeaseReadsOneWay(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	for key, body := range map[string]string{
		conn.TenantPath(guid3) + "/0000/0000000000000001-0000000000000001.ltx": "x",
		conn.TenantPath(guid3) + "/lock.json":                                  "garbage",
	} {
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(conn.Bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	env := testpeer.CredEnv(srv)
	code, out := runLitefleet(t, env, "ls", "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-no-cache", "-json")
	var v lsJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || len(v.Tenants) != 1 {
		t.Fatalf("ls: exit %d, %v:\n%s", code, err, out)
	}
	row := v.Tenants[0]
	_, reason, ok := strings.Cut(row.Note, "lease unreadable: ")
	if row.Status != "remote only" || !ok || !strings.HasPrefix(reason, "decode lock.json: ") {
		t.Fatalf("ls: status %q, note %q: want remote only, lease unreadable", row.Status, row.Note)
	}
	code, out = runLitefleet(t, env, "inspect", guid3, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 0 || !strings.Contains(out, "lease     unreadable: "+reason+"\n") {
		t.Fatalf("inspect (exit %d) does not say %q:\n%s", code, "unreadable: "+reason, out)
	}
}

// TestLsUnknownWhenS3Refuses: with S3 refusing the credentials or the
// bucket missing, ls does not show the cached answer as if S3 were down:
// local rows are "unknown" with the reason, and one line says what to fix.
func TestLsUnknownWhenS3Refuses(t *testing.T) {
	testpeer.Integration(t)
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	cacheHome := t.TempDir()
	env := append(testpeer.CredEnv(srv), "XDG_CACHE_HOME="+cacheHome)
	dir := t.TempDir()
	path := filepath.Join(dir, guid2+".db")
	testpeer.NewDB(t, path, 3)
	rep := startLitefleet(t, env, replicateArgs(srv, conn, "-dsn", path)...)
	rep.WaitFor(seedTx(guid2), 20*time.Second)
	if code := rep.Stop(60 * time.Second); code != 0 {
		t.Fatalf("replicator exit %d", code)
	}
	args := []string{"ls", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint, "-json"}
	if code, out := runLitefleet(t, env, args...); code != 0 {
		t.Fatalf("ls exit %d:\n%s", code, out) // this answer is now in the cache
	}

	badSecret := append(testpeer.CredEnv(srv), "XDG_CACHE_HOME="+cacheHome, "AWS_SECRET_ACCESS_KEY=wrong-secret")
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		note string
		says string
	}{
		{"refused credentials", badSecret, args, "S3: credentials refused", "S3 refused the credentials"},
		{"no such bucket", env, []string{"ls", "-dir", dir, "-bucket", "nosuch-bucket", "-endpoint", srv.Endpoint, "-json"}, "S3: bucket does not exist", `bucket "nosuch-bucket" does not exist`},
	} {
		code, out := runLitefleet(t, tt.env, tt.args...)
		var v lsJSON
		if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &v); err != nil {
			t.Fatalf("%s: %v\n%s", tt.name, err, out)
		}
		if code != 1 || v.FromCache || len(v.Tenants) != 1 || v.Tenants[0].Status != "unknown" || v.Tenants[0].Note != tt.note || v.Tenants[0].Remote != nil {
			t.Errorf("%s: exit %d, %+v: want 1, no cached answer, %s unknown (%s)", tt.name, code, v, guid2, tt.note)
		}
		last := out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]
		if !strings.HasPrefix(last, "litefleet: ") || !strings.Contains(last, tt.says) || strings.Contains(out, "wrong-secret") {
			t.Errorf("%s: the last line does not say %q:\n%s", tt.name, tt.says, out)
		}
	}
	code, out := runLitefleet(t, badSecret, "ls", "-dir", dir, "-bucket", conn.Bucket, "-endpoint", srv.Endpoint)
	if code != 1 || !strings.Contains(out, "unknown") || !strings.Contains(out, "S3 side unknown") || strings.Contains(out, "S3 side from") {
		t.Errorf("text form, refused (exit %d):\n%s", code, out)
	}
}
