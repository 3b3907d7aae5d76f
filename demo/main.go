// Command demo runs litefleet on a demo fleet: a local versitygw S3 server,
// a handful of tenant databases with writers, two `litefleet replicate`
// hosts (demo-a and demo-b, each with its own share of the tenants, demo-a
// serving /metrics) replicating them, and then the terminal UI over that
// fleet, showing both hosts, tenants in sync, one lagging (its uploads go
// through a slow proxy), one local only (in no replicate config) and one
// remote only (replicated briefly from a folder that is then deleted). `make demo` runs it; q in
// the UI, or Ctrl-C, stops everything it started.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/superfly/ltx"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/internal/s3test"
)

const (
	bucket    = "demo-fleet"
	accessKey = "litefleet-demo"
	secretKey = "litefleet-demo-secret"
)

// tenants of the demo fleet: GUID-named files, and one legacy file that
// replicates under an explicit name, as in the seed. The lagging one
// uploads through a proxy that holds each LTX file back.
var tenants = []struct {
	file, name string
	lagging    bool
}{
	{file: "12345678-1234-5678-9abc-123456789012.db"},
	{file: "98765432-4321-8765-cba9-876543210987.db"},
	{file: "abcdef01-2345-6789-abcd-ef0123456789.db"},
	{file: "fedcba98-7654-3210-fedc-ba9876543210.db", lagging: true},
	{file: "legacy-client.db", name: "legacy-client-001"},
}

const (
	// localOnly is in the data folder but not in the replicate config.
	localOnly = "5eed5eed-1111-4222-8333-444455556666.db"
	// remoteOnly is replicated from a temporary folder, which is then
	// deleted: only its replica remains.
	remoteOnly = "0badc0de-0000-4000-8000-000000000001.db"
	// uploadDelay is how far behind its writes the proxy keeps the
	// lagging tenant's uploads: beyond the fleet view's 10 s threshold.
	uploadDelay = 15 * time.Second
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("dir", ".demo", "folder for the demo's databases and S3 data (recreated)")
	litefleet := flag.String("litefleet", "bin/litefleet", "litefleet binary to run")
	withTUI := flag.Bool("tui", true, "end in the terminal UI; -tui=false replicates until Ctrl-C")
	flag.Parse()

	// SIGHUP: the terminal closed (tmux kill-session, a closed window).
	// Everything the demo started stops as on Ctrl-C: the S3 server, the
	// replicator and the writers run in process groups of their own, so
	// the terminal's hangup does not reach them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	abs, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	// The UI runs in the demo's folder (its default restore output for a
	// tenant with nothing local is ./NAME.restored-TIME.db): the binary's
	// path must not depend on where the demo was started.
	if *litefleet, err = filepath.Abs(*litefleet); err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil {
		return fmt.Errorf("clear %s: %w", abs, err)
	}
	dataDir, s3Dir := filepath.Join(abs, "data"), filepath.Join(abs, "s3")
	for _, d := range []string{dataDir, filepath.Join(s3Dir, bucket)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}

	endpoint, stopS3, err := startS3(s3Dir, filepath.Join(abs, "versitygw.log"))
	if err != nil {
		return err
	}
	defer stopS3()
	fmt.Printf("demo: S3 server (versitygw) at %s, bucket %s, access key %s, secret key %s\n", endpoint, bucket, accessKey, secretKey)

	proxy, releaseProxy, stopProxy, err := startDelayProxy(endpoint, uploadDelay)
	if err != nil {
		return err
	}
	defer stopProxy()

	env := os.Environ()
	if err := seedRemoteOnly(ctx, *litefleet, filepath.Join(abs, "remote-only"), endpoint, env, filepath.Join(abs, "remote-only.log")); err != nil {
		return err
	}
	fmt.Printf("demo: tenant %s replicated, then its local file deleted: remote only\n", strings.TrimSuffix(remoteOnly, ".db"))

	// The whole fleet's config, for the UI; each host replicates its half.
	cfgPath := filepath.Join(abs, "litestream.yml")
	if err := writeConfig(cfgPath, dataDir, endpoint, proxy, "", func(int) bool { return true }); err != nil {
		return err
	}
	fmt.Printf("demo: %s names the demo's S3 and its tenants: try, in another terminal,\n  %s ls -config %s\n", cfgPath, *litefleet, cfgPath)
	metricsPort, err := s3test.FreePort()
	if err != nil {
		return err
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	hosts := []demoHost{
		// demo-b replicates the lagging tenant, through the slow proxy: a
		// host reaches one bucket through one endpoint (its heartbeat is
		// per endpoint and bucket).
		{name: "demo-a", cfg: filepath.Join(abs, "demo-a.yml"), log: filepath.Join(abs, "replicate-demo-a.log"), addr: metricsAddr, mine: func(i int) bool { return !tenants[i].lagging }},
		{name: "demo-b", cfg: filepath.Join(abs, "demo-b.yml"), log: filepath.Join(abs, "replicate-demo-b.log"), mine: func(i int) bool { return tenants[i].lagging }},
	}
	for _, h := range hosts {
		if err := writeConfig(h.cfg, dataDir, endpoint, proxy, h.addr, h.mine); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	writeCtx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	files := []string{localOnly}
	for _, tn := range tenants {
		files = append(files, tn.file)
	}
	for i, file := range files {
		path := filepath.Join(dataDir, file)
		db, err := openTenant(path)
		if err != nil {
			return err
		}
		defer db.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(writeCtx, db, time.Duration(300+i*250)*time.Millisecond)
		}()
	}
	fmt.Printf("demo: %d tenant databases in %s, each with a writer; %s is not in the replicate config\n", len(files), dataDir, localOnly)

	var procs []*replicator
	stopAll := func() error {
		var first error
		for _, p := range procs {
			if err := p.stop(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for _, h := range hosts {
		p, err := startReplicator(*litefleet, h, env, *withTUI)
		if err != nil {
			_ = stopAll()
			return err
		}
		procs = append(procs, p)
	}
	exited := make(chan error, len(procs))
	for _, p := range procs {
		go func() { exited <- p.wait() }()
	}

	if *withTUI {
		fmt.Printf("demo: replicating on two hosts, demo-a (%s, log %s) and demo-b (%s, log %s)\n", hosts[0].cfg, hosts[0].log, hosts[1].cfg, hosts[1].log)
		fmt.Printf("demo: demo-a serves http://%s/metrics, /healthz and /status\n", metricsAddr)
		fmt.Println("demo: opening the terminal UI: q quits and stops the demo")
		// A moment for the first syncs and host records, so the UI opens
		// on a live fleet with both hosts.
		select {
		case <-time.After(4 * time.Second):
		case <-ctx.Done():
		}
		uiErr := runTUI(ctx, *litefleet, cfgPath, dataDir, env)
		fmt.Println("demo: stopping")
		stopWriters()
		wg.Wait()
		releaseProxy() // the final sync need not wait
		if err := stopAll(); err != nil {
			return err
		}
		fmt.Println("demo: stopped; data kept in", abs)
		return uiErr
	}

	fmt.Printf(`demo: replicating with: %[1]s replicate -config %[2]s -host demo-a, and -config %[3]s -host demo-b
demo: try, in another terminal:
  %[1]s validate %[4]s
  curl -s http://%[5]s/healthz; curl -s http://%[5]s/metrics | grep litefleet_tenant_lag
  AWS_ACCESS_KEY_ID=%[6]s AWS_SECRET_ACCESS_KEY=%[7]s %[1]s ls -bucket %[8]s -endpoint %[9]s
  AWS_ACCESS_KEY_ID=%[6]s AWS_SECRET_ACCESS_KEY=%[7]s %[10]s/litestream restore -o /tmp/restored.db 's3://%[8]s/databases/%[11]s?endpoint=%[9]s&region=us-east-1'
demo: Ctrl-C stops the writers, makes a final sync and stops the S3 server.
`, *litefleet, hosts[0].cfg, hosts[1].cfg, dataDir, metricsAddr, accessKey, secretKey, bucket, endpoint, toolsBin(), strings.TrimSuffix(tenants[0].file, ".db"))

	select {
	case <-ctx.Done():
		fmt.Println("\ndemo: stopping")
		stopWriters()
		wg.Wait()
		releaseProxy()
		err = stopAll()
	case err = <-exited:
		stopWriters()
		wg.Wait()
		_ = stopAll()
		if err == nil {
			err = errors.New("litefleet replicate stopped by itself")
		}
	}
	if err != nil {
		return fmt.Errorf("litefleet replicate: %w", err)
	}
	fmt.Println("demo: stopped; data kept in", abs)
	return nil
}

// demoHost is one replicating host of the demo: its name, its share of
// the tenants, its config and log, and where it serves its metrics.
type demoHost struct {
	name, cfg, log, addr string
	mine                 func(i int) bool
}

// replicator is a running `litefleet replicate`.
type replicator struct {
	h    demoHost
	cmd  *exec.Cmd
	logf *os.File
	done chan struct{}
	err  error
}

func startReplicator(litefleet string, h demoHost, env []string, quiet bool) (*replicator, error) {
	cmd := exec.Command(litefleet, "replicate", "-config", h.cfg, "-host", h.name)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	r := &replicator{h: h, cmd: cmd, done: make(chan struct{})}
	if quiet {
		// The terminal belongs to the UI: the replicator logs to a file.
		lf, err := os.Create(h.log)
		if err != nil {
			return nil, err
		}
		r.logf = lf
		cmd.Stdout, cmd.Stderr = lf, lf
	}
	cmd.Env = env
	// Its own process group: Ctrl-C reaches it through us, once, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build)", litefleet, err)
	}
	go func() {
		r.err = cmd.Wait()
		if r.logf != nil {
			r.logf.Close()
		}
		close(r.done)
	}()
	return r, nil
}

func (r *replicator) wait() error {
	<-r.done
	return r.err
}

// stop asks for a clean stop (a final sync) and waits for it.
func (r *replicator) stop() error {
	select {
	case <-r.done:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		<-r.done
	}
	if r.err != nil {
		return fmt.Errorf("host %s: %w (see %s)", r.h.name, r.err, r.h.log)
	}
	return nil
}

func toolsBin() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, ".tools", "bin")
}

// startS3 starts versitygw on a free loopback port and waits until it answers.
func startS3(dir, logFile string) (string, func(), error) {
	bin, err := s3test.FindTool("versitygw")
	if err != nil {
		return "", nil, fmt.Errorf("%w: run make tools", err)
	}
	port, err := s3test.FreePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(logFile)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--access", accessKey, "--secret", secretKey, "--port", addr, "--quiet", "posix", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start versitygw: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
	}
	endpoint := "http://" + addr
	if err := s3test.WaitReady(endpoint, 10*time.Second); err != nil {
		stop()
		return "", nil, fmt.Errorf("versitygw did not start: see %s", logFile)
	}
	return endpoint, stop, nil
}

// writeConfig writes a litestream.yml of the tenants mine picks, serving
// the monitor on addr when it is not empty. The whole fleet's file is what
// an operator passes with -config to ls, inspect, restore or the UI: the
// keys are the demo server's own, written out so that it works as it is.
func writeConfig(path, dataDir, endpoint, proxy, addr string, mine func(i int) bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# The demo fleet (make demo): litefleet ls|inspect|restore -config %s\n", path)
	fmt.Fprintf(&b, "# The keys are the demo S3 server's, valid only while it runs.\naccess-key-id: %s\nsecret-access-key: %s\n", accessKey, secretKey)
	if addr != "" {
		fmt.Fprintf(&b, "addr: %s\n", addr)
	}
	b.WriteString("dbs:\n")
	for i, tn := range tenants {
		if !mine(i) {
			continue
		}
		name := tn.name
		if name == "" {
			name = strings.TrimSuffix(tn.file, ".db")
		}
		ep := endpoint
		if tn.lagging {
			ep = proxy // same bucket, slow uploads
		}
		fmt.Fprintf(&b, "  - path: %s\n    replica:\n      type: s3\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n      region: us-east-1\n",
			filepath.Join(dataDir, tn.file), bucket, name, ep)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// startDelayProxy starts a reverse proxy to the S3 server that holds every
// LTX upload until delay after the time in its header: the tenant
// replicating through it then stays about delay behind, without a backlog
// that grows (holding each upload for delay would: Litestream uploads one
// file per sync, one after another). Everything else, the lease's
// lock.json above all, passes at once: a delayed lease renewal would cost
// the replicator its lease. So does the tenant's first LTX file (from TXID
// 1, its snapshot): held, it kept the tenant "starting" for 20-30 s, where
// the README promises seconds; the lag shows from the next change on.
// release stops holding, for the final sync.
func startDelayProxy(endpoint string, delay time.Duration) (addr string, release, stop func(), err error) {
	target, err := url.Parse(endpoint)
	if err != nil {
		return "", nil, nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a cancelled upload is no news
	released := make(chan struct{})
	var once sync.Once
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".ltx") {
			head := make([]byte, ltx.HeaderSize)
			n, _ := io.ReadFull(r.Body, head)
			var hdr ltx.Header
			if hdr.UnmarshalBinary(head[:n]) == nil && hdr.Timestamp > 0 && !hdr.IsSnapshot() {
				select {
				case <-time.After(time.Until(time.UnixMilli(hdr.Timestamp).Add(delay))):
				case <-released:
				case <-r.Context().Done():
					return
				}
			}
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(head[:n]), r.Body), r.Body}
		}
		// The Host header stays the proxy's: it is what the client signed.
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	release = func() { once.Do(func() { close(released) }) }
	stop = func() {
		release()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return "http://" + l.Addr().String(), release, stop, nil
}

// seedRemoteOnly replicates one tenant from dir until its first upload,
// stops the replicator, and deletes dir: the tenant then exists in S3 only.
func seedRemoteOnly(ctx context.Context, litefleet, dir, endpoint string, env []string, logFile string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, remoteOnly)
	db, err := openTenant(path)
	if err != nil {
		return err
	}
	for range 20 {
		write1(ctx, db)
	}
	db.Close()
	lf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(litefleet, "replicate", "-dsn", path, "-bucket", bucket, "-endpoint", endpoint)
	cmd.Env = append(env, "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run make build)", litefleet, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "new transaction") {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("the remote-only tenant did not replicate: see %s", logFile)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("replicate the remote-only tenant: %w (see %s)", err, logFile)
	}
	return os.RemoveAll(dir)
}

// runTUI runs the terminal UI on the demo fleet, in the foreground, until
// the operator quits it or the demo is interrupted.
func runTUI(ctx context.Context, litefleet, cfgPath, dataDir string, env []string) error {
	cmd := exec.Command(litefleet, "-config", cfgPath, "-dir", dataDir, "-no-cache")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = env
	// In the demo's folder: a restore of a tenant with nothing local lands
	// there by default, not in the repository.
	cmd.Dir = filepath.Dir(cfgPath)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the terminal UI: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// A signal reached the demo, not the UI (which reads Ctrl-C as a
		// key): ask the UI to quit cleanly.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return <-done
	}
}

func openTenant(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, amount_cents INTEGER, created_at TEXT)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return db, nil
}

// write inserts an order every interval, roughly, until ctx ends.
func write(ctx context.Context, db *sql.DB, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		write1(ctx, db)
	}
}

var customers = []string{"acme", "beta-corp", "gamma", "delta", "epsilon"}

func write1(ctx context.Context, db *sql.DB) {
	// Errors are not printed: with the UI up, stderr would tear its
	// screen, and a failing writer shows anyway as a tenant that stops
	// changing.
	_, _ = db.ExecContext(ctx, `INSERT INTO orders (customer, amount_cents, created_at) VALUES (?, ?, ?)`,
		customers[rand.IntN(len(customers))], rand.IntN(100000), time.Now().UTC().Format(time.RFC3339Nano))
}
