// Command demo runs litefleet on a demo fleet: a local versitygw S3 server,
// a handful of tenant databases with writers, and `litefleet replicate`
// replicating them. `make demo` runs it; Ctrl-C stops everything it started.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite"
)

const (
	bucket    = "demo-fleet"
	accessKey = "litefleet-demo"
	secretKey = "litefleet-demo-secret"
)

// tenants of the demo fleet: GUID-named files, and one legacy file that
// replicates under an explicit name, as in the seed.
var tenants = []struct{ file, name string }{
	{"12345678-1234-5678-9abc-123456789012.db", ""},
	{"98765432-4321-8765-cba9-876543210987.db", ""},
	{"abcdef01-2345-6789-abcd-ef0123456789.db", ""},
	{"fedcba98-7654-3210-fedc-ba9876543210.db", ""},
	{"legacy-client.db", "legacy-client-001"},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("dir", ".demo", "folder for the demo's databases and S3 data (recreated)")
	litefleet := flag.String("litefleet", "bin/litefleet", "litefleet binary to run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	abs, err := filepath.Abs(*root)
	if err != nil {
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
	fmt.Printf("demo: S3 server (versitygw) at %s, bucket %s\n", endpoint, bucket)

	cfgPath := filepath.Join(abs, "litestream.yml")
	if err := writeConfig(cfgPath, dataDir, endpoint); err != nil {
		return err
	}
	var wg sync.WaitGroup
	writeCtx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	for i, tn := range tenants {
		path := filepath.Join(dataDir, tn.file)
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
	fmt.Printf("demo: %d tenant databases in %s, each with a writer\n", len(tenants), dataDir)

	cmd := exec.Command(*litefleet, "replicate", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "DEMO_ACCESS_KEY="+accessKey, "DEMO_SECRET_KEY="+secretKey)
	// Its own process group: Ctrl-C reaches it through us, once, in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run make build)", *litefleet, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fmt.Printf(`demo: replicating with: %s replicate -config %s
demo: try, in another terminal:
  %s validate %s
  AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s %s/litestream restore -o /tmp/restored.db 's3://%s/databases/%s?endpoint=%s&region=us-east-1'
demo: Ctrl-C stops the writers, makes a final sync and stops the S3 server.
`, *litefleet, cfgPath, *litefleet, dataDir, accessKey, secretKey, toolsBin(), bucket, strings.TrimSuffix(tenants[0].file, ".db"), endpoint)

	select {
	case <-ctx.Done():
		fmt.Println("\ndemo: stopping")
		stopWriters()
		wg.Wait()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-exited
	case err = <-exited:
		stopWriters()
		wg.Wait()
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

func toolsBin() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, ".tools", "bin")
}

// startS3 starts versitygw on a free loopback port and waits until it answers.
func startS3(dir, logFile string) (string, func(), error) {
	bin := filepath.Join(toolsBin(), "versitygw")
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("%s missing: run make tools", bin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
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
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(endpoint)
		if err == nil {
			resp.Body.Close()
			return endpoint, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("versitygw did not start: see %s", logFile)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeConfig(path, dataDir, endpoint string) error {
	var b strings.Builder
	b.WriteString("# The demo fleet. Credentials come from the environment.\naccess-key-id: $DEMO_ACCESS_KEY\nsecret-access-key: $DEMO_SECRET_KEY\ndbs:\n")
	for _, tn := range tenants {
		name := tn.name
		if name == "" {
			name = strings.TrimSuffix(tn.file, ".db")
		}
		fmt.Fprintf(&b, "  - path: %s\n    replica:\n      type: s3\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n      region: us-east-1\n",
			filepath.Join(dataDir, tn.file), bucket, name, endpoint)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
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
	customers := []string{"acme", "beta-corp", "gamma", "delta", "epsilon"}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := db.ExecContext(ctx, `INSERT INTO orders (customer, amount_cents, created_at) VALUES (?, ?, ?)`,
			customers[rand.IntN(len(customers))], rand.IntN(100000), time.Now().UTC().Format(time.RFC3339Nano))
		if err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "demo: writer:", err)
		}
	}
}
