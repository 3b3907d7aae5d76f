package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3browse"
)

// binary is the litefleet command built once for the integration tests:
// they run it as an operator would, with signals and exit codes.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "litefleet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by every user: a test runs it as nobody to meet a
	// read-only folder as root cannot.
	_ = os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "litefleet")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build litefleet:", err)
		os.Exit(1)
	}
	code := s3test.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is an io.Writer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running litefleet command.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr together
	done   chan struct{}
	err    error
	exited time.Time
}

// credEnv gives the server's credentials the standard AWS way, keeping the
// machine's environment (AWS_CA_BUNDLE included).
func credEnv(srv *s3test.Server) []string {
	return append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+srv.SecretKey,
	)
}

func startLitefleet(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	return startLitefleetAs(t, nil, env, args...)
}

// startLitefleetAs runs litefleet as another user when cred is set.
func startLitefleetAs(t testing.TB, cred *syscall.Credential, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	p := &proc{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start litefleet: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("litefleet %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// waitFor waits until the output matches re, failing the test on timeout
// or when the process exits first.
func (p *proc) waitFor(re string, timeout time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		if m := rx.FindStringSubmatch(p.out.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			p.t.Fatalf("litefleet exited (%v) before printing %q:\n%s", p.err, re, p.out.String())
		case <-deadline:
			p.t.Fatalf("litefleet did not print %q within %s:\n%s", re, timeout, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for the exit, returning the exit code.
func (p *proc) stop(timeout time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(timeout)
}

func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("litefleet did not exit within %s:\n%s", timeout, p.out.String())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatalf("wait: %v", p.err)
	return -1
}

// openDB opens a database the way a tenant's application would: WAL mode
// and a busy timeout, through the same pure-Go driver as Litestream.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, val TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func insertRows(t testing.TB, db *sql.DB, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := db.Exec(`INSERT INTO t (id, val) VALUES (?, ?)`, i, fmt.Sprintf("row-%d-%s", i, strings.Repeat("x", i%50))); err != nil {
			t.Fatalf("insert row %d: %v", i, err)
		}
	}
}

// rows reads every row of t, in order.
func rows(t testing.TB, path string) []string {
	t.Helper()
	return queryRows(t, "file:"+path+"?mode=ro")
}

// queryRows reads every row of t through dsn, in order.
func queryRows(t testing.TB, dsn string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT id, val FROM t ORDER BY id`)
	if err != nil {
		t.Fatalf("read %s: %v", dsn, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var id int
		var val string
		if err := rs.Scan(&id, &val); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d=%s", id, val))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// litestreamRestore restores a tenant's prefix with the real litestream
// command, the seed's way: litestream restore -o PATH s3://BUCKET/databases/GUID.
func litestreamRestore(t testing.TB, srv *s3test.Server, conn s3browse.Conn, tenant, out string) {
	t.Helper()
	bin, err := s3test.FindTool("litestream")
	if err != nil {
		t.Fatalf("%v: run make tools", err)
	}
	url := conn.URL(tenant) + "?endpoint=" + srv.Endpoint + "&region=us-east-1&forcePathStyle=true"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "restore", "-o", out, url)
	// litestream's S3 client fails with AWS_CA_BUNDLE set (DESIGN.md).
	cmd.Env = withoutEnv(credEnv(srv), "AWS_CA_BUNDLE")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("litestream restore %s: %v\n%s", url, err, b)
	}
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func equalRows(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("restored %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d: restored %q, want %q", i, got[i], want[i])
		}
	}
}
