// Package s3test gives integration tests a real S3 server on 127.0.0.1 and a
// fresh bucket per test.
//
// The server is the one named by LITEFLEET_TEST_S3_ENDPOINT (with
// LITEFLEET_TEST_S3_ACCESS_KEY and LITEFLEET_TEST_S3_SECRET_KEY), which
// `make test` and .ci/run start. Without it, the package starts versitygw
// itself from .tools/bin or PATH, so `go test ./...` works in a checkout
// where `make tools` has run.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/s3conn"
)

// Env variable names shared with the Makefile and .ci/run.
const (
	EnvEndpoint  = "LITEFLEET_TEST_S3_ENDPOINT"
	EnvAccessKey = "LITEFLEET_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "LITEFLEET_TEST_S3_SECRET_KEY"
	EnvDataDir   = "LITEFLEET_TEST_S3_DIR" // the posix backend's folder, for fault tests
)

// Server is a running S3 server.
type Server struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Dir       string // backend folder; each subfolder is a bucket
}

var (
	once   sync.Once
	shared *Server
	errSrv error
	owned  *exec.Cmd // the server this package started, if any
)

// Main runs a package's tests and then stops the server Start may have
// started. Call it from TestMain: os.Exit(s3test.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if owned != nil {
		_ = owned.Process.Kill()
		_ = owned.Wait()
	}
	return code
}

// Start returns the shared server, starting one when the environment names none.
func Start(tb testing.TB) *Server {
	tb.Helper()
	once.Do(func() { shared, errSrv = start() })
	if errSrv != nil {
		tb.Fatalf("S3 test server: %v", errSrv)
	}
	return shared
}

func start() (*Server, error) {
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		return &Server{Endpoint: ep, AccessKey: os.Getenv(EnvAccessKey), SecretKey: os.Getenv(EnvSecretKey), Dir: os.Getenv(EnvDataDir)}, nil
	}
	bin, err := FindTool("versitygw")
	if err != nil {
		return nil, fmt.Errorf("%v: run `make test`, or `make tools` before `go test`", err)
	}
	dir, err := os.MkdirTemp("", "litefleet-s3-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "litefleet-test", SecretKey: "litefleet-test-secret", Dir: dir}
	// The server logs to a file, not to the test binary's stderr: an
	// inherited pipe would make `go test` wait for it after the tests.
	logFile, err := os.Create(dir + ".log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The kernel stops the server if the test binary dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	if err := WaitReady(s.Endpoint, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%w (log: %s)", err, logFile.Name())
	}
	owned = cmd
	return s, nil
}

// WaitReady waits until endpoint answers HTTP at all (403 counts).
func WaitReady(endpoint string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(endpoint)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("S3 server at %s not ready after %s: %w", endpoint, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FindTool finds a helper binary in the repository's .tools/bin or on PATH.
func FindTool(name string) (string, error) {
	if dir, err := os.Getwd(); err == nil {
		for d := dir; ; d = filepath.Dir(d) {
			p := filepath.Join(d, ".tools", "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil || filepath.Dir(d) == d {
				break
			}
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in .tools/bin or PATH", name)
	}
	return p, nil
}

// Conn is a connection to a new, empty bucket on the server, removed from
// nothing at the end: buckets live in a temporary folder.
func (s *Server) Conn(tb testing.TB) s3conn.Conn {
	tb.Helper()
	c := s3conn.Conn{
		Bucket:          NewBucketName(tb),
		Endpoint:        s.Endpoint,
		AccessKeyID:     s.AccessKey,
		SecretAccessKey: s.SecretKey,
		Prefix:          s3conn.DefaultPrefix,
	}
	cl := s.Client(tb, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(c.Bucket)}); err != nil {
		tb.Fatalf("create bucket %s: %v", c.Bucket, err)
	}
	return c
}

// Client returns an S3 client for c.
func (s *Server) Client(tb testing.TB, c s3conn.Conn) *s3.Client {
	tb.Helper()
	cl, err := s3conn.NewClient(context.Background(), c)
	if err != nil {
		tb.Fatalf("s3 client: %v", err)
	}
	return cl
}

// NewBucketName returns a valid, unique bucket name derived from the test name.
func NewBucketName(tb testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(tb.Name())
	name = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, name)
	if len(name) > 40 {
		name = name[:40]
	}
	return strings.Trim("t-"+name, "-") + "-" + hex.EncodeToString(b[:])
}

// Private is a versitygw started for one test alone, so that the test may
// kill it and start it again (fault tests) without disturbing the others.
// It logs to a file in the test's temporary folder and is killed when the
// test ends.
type Private struct {
	Server
	bin  string
	addr string
	log  string
	args []string // before the backend: extra server options
	mu   sync.Mutex
	cmd  *exec.Cmd
}

// StartPrivate starts a dedicated versitygw on a free port, with its own
// backend folder (Dir).
func StartPrivate(tb testing.TB) *Private {
	tb.Helper()
	return startPrivate(tb, nil)
}

// startPrivate starts a dedicated versitygw; extra builds its extra options
// from the test's temporary folder.
func startPrivate(tb testing.TB, extra func(dir string) []string) *Private {
	tb.Helper()
	bin, err := FindTool("versitygw")
	if err != nil {
		tb.Fatalf("%v: run `make tools`", err)
	}
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		tb.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	p := &Private{
		Server: Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "litefleet-private",
			SecretKey: "litefleet-private-secret", Dir: data},
		bin: bin, addr: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(dir, "versitygw.log"),
	}
	if extra != nil {
		p.args = extra(dir)
	}
	tb.Cleanup(p.Kill)
	p.Restart(tb)
	return p
}

// Kill stops the server at once (SIGKILL), as a crash would; the data in
// Dir stays. Killing a stopped server does nothing.
func (p *Private) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Restart starts the server again on the same port and folder (or for the
// first time), and waits until it answers.
func (p *Private) Restart(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return
	}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	args := append([]string{"--access", p.AccessKey, "--secret", p.SecretKey, "--port", p.addr, "--quiet"}, p.args...)
	cmd := exec.Command(p.bin, append(args, "posix", p.Dir)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start versitygw: %v", err)
	}
	p.cmd = cmd
	if err := WaitReady(p.Endpoint, 10*time.Second); err != nil {
		log, _ := os.ReadFile(p.log)
		tb.Fatalf("%v\n%s", err, log)
	}
}

// IAM is a private versitygw with its internal IAM (--iam-dir): the root
// account (AccessKey, SecretKey) passes every check, while users made with
// CreateUser may do only what a bucket policy allows them. It is killed
// when the test ends.
type IAM struct {
	*Private
	IAMDir string
}

// StartIAM starts a versitygw with internal IAM on a free loopback port.
func StartIAM(tb testing.TB) *IAM {
	tb.Helper()
	var iamDir string
	p := startPrivate(tb, func(dir string) []string {
		iamDir = filepath.Join(dir, "iam")
		if err := os.Mkdir(iamDir, 0o700); err != nil {
			tb.Fatal(err)
		}
		return []string{"--iam-dir", iamDir}
	})
	return &IAM{Private: p, IAMDir: iamDir}
}

// CreateUser adds an account with role "user" (no bucket of its own, no
// access beyond bucket policies), the way an operator does: with
// `versitygw admin create-user`, signed by the root account.
func (s *IAM) CreateUser(tb testing.TB, accessKey, secretKey string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "admin", "--access", s.AccessKey, "--secret", s.SecretKey, "--endpoint-url", s.Endpoint,
		"create-user", "--access", accessKey, "--secret", secretKey, "--role", "user")
	// The admin command reads no credentials of the caller's environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("versitygw admin create-user %s: %v\n%s", accessKey, err, out)
	}
}

// PutBucketPolicy sets a bucket's policy as the root account; the server
// checks the document (principals must exist) and refuses a bad one.
func (s *IAM) PutBucketPolicy(tb testing.TB, bucket string, policy []byte) {
	tb.Helper()
	cl := s.Client(tb, s3conn.Conn{Bucket: bucket, Endpoint: s.Endpoint, AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(string(policy))}); err != nil {
		log, _ := os.ReadFile(s.log)
		tb.Fatalf("put bucket policy on %s: %v\n%s\nserver log:\n%s", bucket, err, policy, log)
	}
}

// Freeze stops the server's process (SIGSTOP): connections are accepted by
// the kernel and never answered, as with a hung server. Thaw resumes it.
func (p *Private) Freeze() { p.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (p *Private) Thaw() { p.signal(syscall.SIGCONT) }

func (p *Private) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}
