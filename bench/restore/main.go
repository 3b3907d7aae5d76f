// Command restore benchmarks `litefleet restore` against the real
// `litestream restore` on the same replicas, in the same run: one large
// database, and a fleet of small tenants (`restore -all` against a loop of
// `litestream restore`, the way an operator would script it).
//
// With -all-runs N it only checks `restore -all` at scale instead: the
// small tenants restored N times in a row into one folder, each run's
// restored count, failures, leftover temporaries and wall time printed
// (issue 16: restore -all must never lose a tenant to itself).
//
// It needs an S3 server: run it through scripts/with-s3.sh, as
// bench/restore.sh does, which also builds bin/litefleet.
//
//	scripts/with-s3.sh go run ./bench/restore -litefleet bin/litefleet
//	scripts/with-s3.sh go run ./bench/restore -litefleet bin/litefleet -all-runs 20 -tenants 1000 -tenant-kb 64 -parallel 16
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "modernc.org/sqlite"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3conn"
)

// Tenant names: the small tenants share a prefix that -match selects.
const bigTenant = "b16b16b1-0000-4000-8000-000000000200"

func smallTenant(i int) string { return fmt.Sprintf("5a11%04x-0000-4000-8000-%012x", i, i) }

func main() {
	var (
		bigMB     = flag.Int("big-mb", 200, "size of the large database, in MB")
		tenants   = flag.Int("tenants", 100, "number of small tenants")
		smallMB   = flag.Int("tenant-mb", 2, "size of each small tenant, in MB")
		parallel  = flag.Int("parallel", 8, "restore -all -parallel")
		runs      = flag.Int("runs", 3, "timed runs of each command; the median is reported")
		work      = flag.String("dir", "", "working folder (default: a new temporary folder, removed at the end)")
		litefleet = flag.String("litefleet", "bin/litefleet", "the litefleet binary to time")
		profile   = flag.String("cpuprofile", "", "also restore the large tenant in this process and write a CPU profile here")
		allRuns   = flag.Int("all-runs", 0, "only run restore -all of the small tenants this many times in a row into one folder, and report each run")
		smallKB   = flag.Int("tenant-kb", 0, "size of each small tenant, in KB (overrides -tenant-mb)")
	)
	flag.Parse()
	small := *smallMB * 1000
	if *smallKB > 0 {
		small = *smallKB
	}
	if *allRuns > 0 {
		*bigMB = 0 // no large database, no litestream comparison
	}
	if err := run(*bigMB, *tenants, small, *parallel, *runs, *allRuns, *work, *litefleet, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type env struct {
	conn       s3conn.Conn
	client     *s3.Client
	litefleet  string
	litestream string
	environ    []string // credentials the standard AWS way, no AWS_CA_BUNDLE
}

// run benchmarks; smallKB is the size of each small tenant. With allRuns
// > 0 it runs repeatAll instead, and bigMB is 0.
func run(bigMB, tenants, smallKB, parallel, runs, allRuns int, work, litefleet, profile string) error {
	if _, err := s3conn.AdoptCABundle(); err != nil {
		return err
	}
	endpoint := os.Getenv(s3test.EnvEndpoint)
	if endpoint == "" {
		return errors.New("no S3 server: run this through scripts/with-s3.sh (bench/restore.sh does)")
	}
	lfBin, err := filepath.Abs(litefleet)
	if err != nil {
		return err
	}
	if _, err := os.Stat(lfBin); err != nil {
		return fmt.Errorf("%w: build it with `make build`", err)
	}
	lsBin, err := s3test.FindTool("litestream")
	if err != nil {
		return fmt.Errorf("%w: run `make tools`", err)
	}
	if work == "" {
		if work, err = os.MkdirTemp("", "litefleet-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	e := &env{
		conn: s3conn.Conn{Bucket: fmt.Sprintf("bench-restore-%d", time.Now().Unix()), Prefix: s3conn.DefaultPrefix, Endpoint: endpoint,
			AccessKeyID: os.Getenv(s3test.EnvAccessKey), SecretAccessKey: os.Getenv(s3test.EnvSecretKey), ForcePathStyle: true},
		litefleet: lfBin, litestream: lsBin,
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			e.environ = append(e.environ, kv)
		}
	}
	e.environ = append(e.environ, "AWS_ACCESS_KEY_ID="+e.conn.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+e.conn.SecretAccessKey)
	ctx := context.Background()
	if e.client, err = s3conn.NewClient(ctx, e.conn); err != nil {
		return err
	}
	if _, err := e.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e.conn.Bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}

	// The databases, written as an application would, then replicated by
	// litefleet replicate until each tenant has synced once.
	src := filepath.Join(work, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	start := time.Now()
	var names []string
	if bigMB > 0 {
		names = append(names, bigTenant)
		if err := makeDB(filepath.Join(src, bigTenant+".db"), bigMB*1000); err != nil {
			return err
		}
	}
	for i := range tenants {
		names = append(names, smallTenant(i))
		if err := makeDB(filepath.Join(src, smallTenant(i)+".db"), smallKB); err != nil {
			return err
		}
	}
	bigSize, smallSize := fileSize(filepath.Join(src, bigTenant+".db")), int64(0)
	for i := range tenants {
		smallSize += fileSize(filepath.Join(src, smallTenant(i)+".db"))
	}
	if bigMB > 0 {
		fmt.Printf("databases: one of %.1f MB and %d totalling %.1f MB, written in %s\n", float64(bigSize)/1e6, tenants,
			float64(smallSize)/1e6, time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Printf("databases: %d totalling %.1f MB, written in %s\n", tenants, float64(smallSize)/1e6, time.Since(start).Round(time.Millisecond))
	}
	start = time.Now()
	if err := e.replicate(work, src, names); err != nil {
		return err
	}
	fmt.Printf("replicated by litefleet replicate in %s\n", time.Since(start).Round(time.Millisecond))
	if allRuns > 0 {
		return e.repeatAll(filepath.Join(work, "out", "fleet"), tenants, smallKB, parallel, allRuns)
	}

	out := filepath.Join(work, "out")
	big := bigResult{}
	// 1. One large database.
	lsOut, lfOut := filepath.Join(out, "ls-big.db"), filepath.Join(out, "lf-big.db")
	for r := 0; r < runs; r++ {
		// Alternate which goes first, so that neither always meets a
		// cache the other warmed.
		for _, first := range []bool{r%2 == 0, r%2 != 0} {
			if first {
				d, err := e.time(lsOut, e.litestreamCmd(bigTenant, lsOut))
				if err != nil {
					return err
				}
				big.ls = append(big.ls, d)
			} else {
				d, err := e.time(lfOut, e.litefleetCmd(lfOut, bigTenant))
				if err != nil {
					return err
				}
				big.lf = append(big.lf, d)
			}
		}
	}
	same, err := sameFile(lsOut, lfOut)
	if err != nil {
		return err
	}

	// 2. The fleet of small tenants.
	var fleetLS, fleetLF []time.Duration
	lsDir, lfDir := filepath.Join(out, "ls-fleet"), filepath.Join(out, "lf-fleet")
	for r := 0; r < runs; r++ {
		for _, first := range []bool{r%2 == 0, r%2 != 0} {
			if first {
				_ = os.RemoveAll(lsDir)
				if err := os.MkdirAll(lsDir, 0o755); err != nil {
					return err
				}
				t0 := time.Now()
				for i := range tenants {
					p := filepath.Join(lsDir, smallTenant(i)+".db")
					if err := e.exec(e.litestreamCmd(smallTenant(i), p)); err != nil {
						return err
					}
				}
				fleetLS = append(fleetLS, time.Since(t0))
			} else {
				_ = os.RemoveAll(lfDir)
				t0 := time.Now()
				cmd := e.litefleetCmd(lfDir, "-all", "-match", "5a11*", "-parallel", fmt.Sprint(parallel))
				if err := e.exec(cmd); err != nil {
					return err
				}
				fleetLF = append(fleetLF, time.Since(t0))
			}
		}
	}
	fleetSame := 0
	for i := range tenants {
		ok, err := sameFile(filepath.Join(lsDir, smallTenant(i)+".db"), filepath.Join(lfDir, smallTenant(i)+".db"))
		if err != nil {
			return err
		}
		if ok {
			fleetSame++
		}
	}

	if profile != "" {
		if err := e.profile(profile, filepath.Join(out, "profiled.db")); err != nil {
			return err
		}
		if err := e.profileAll(profile+".all", filepath.Join(out, "profiled-fleet"), parallel); err != nil {
			return err
		}
	}

	bigLS, bigLF := median(big.ls), median(big.lf)
	fmt.Printf("\nreproduce: bench/restore.sh -big-mb %d -tenants %d -tenant-kb %d -parallel %d -runs %d\n", bigMB, tenants, smallKB, parallel, runs)
	loopLS, allLF := median(fleetLS), median(fleetLF)
	fmt.Printf("restore of one %.1f MB database (median of %d runs; %s, %d CPUs):\n", float64(bigSize)/1e6, runs, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU())
	fmt.Printf("  litestream restore   %8s   %s\n", bigLS.Round(time.Millisecond), fmtRuns(big.ls))
	fmt.Printf("  litefleet restore    %8s   %s\n", bigLF.Round(time.Millisecond), fmtRuns(big.lf))
	fmt.Printf("  ratio litestream/litefleet: %.2f (target >= 2.0, issue 19); files identical: %v\n", ratio(bigLS, bigLF), same)
	fmt.Printf("restore of %d tenants of %.1f MB each (median of %d runs):\n", tenants, float64(smallSize)/1e6/float64(max(tenants, 1)), runs)
	fmt.Printf("  loop of litestream restore        %8s   %s\n", loopLS.Round(time.Millisecond), fmtRuns(fleetLS))
	fmt.Printf("  litefleet restore -all -parallel %d %8s   %s\n", parallel, allLF.Round(time.Millisecond), fmtRuns(fleetLF))
	fmt.Printf("  ratio loop/litefleet: %.2f (target >= 20.0, issue 19); files identical: %d of %d\n", ratio(loopLS, allLF), fleetSame, tenants)
	fmt.Printf("  (litefleet also runs PRAGMA integrity_check and fsync on every file; litestream restore, by default, neither checks nor fsyncs the folder)\n")
	if !same || fleetSame != tenants {
		return errors.New("litefleet and litestream restored different files")
	}
	return nil
}

type bigResult struct{ ls, lf []time.Duration }

// repeatAll runs `litefleet restore -all` of the small tenants runs times
// in a row into one folder, emptied of its databases between runs, and
// prints each run's restored count, failures, leftover temporaries and
// wall time. Any failure or leftover fails the benchmark, after every run.
func (e *env) repeatAll(dir string, tenants, smallKB, parallel, runs int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Printf("restore -all -parallel %d of %d tenants into one folder, %d runs (%s, %d CPUs):\n", parallel, tenants, runs, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU())
	var bad, total int
	var walls []time.Duration
	for r := 1; r <= runs; r++ {
		cmd := e.litefleetCmd(dir, "-all", "-json", "-match", "5a11*", "-parallel", fmt.Sprint(parallel))
		cmd.Env = e.environ
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t0 := time.Now()
		runErr := cmd.Run()
		wall := time.Since(t0)
		walls = append(walls, wall)
		var out struct {
			Summary restore.Summary `json:"summary"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			return fmt.Errorf("run %d: %v: %w\n%s", r, runErr, err, stderr.String())
		}
		sum := out.Summary
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		dbs, leftovers := 0, 0
		for _, ent := range ents {
			switch {
			case strings.HasSuffix(ent.Name(), ".db"):
				dbs++
				if err := os.Remove(filepath.Join(dir, ent.Name())); err != nil {
					return err
				}
			default:
				leftovers++
			}
		}
		fmt.Printf("  run %2d: restored %d of %d, failed %d, files %d, leftovers %d, wall %s\n",
			r, sum.Restored, tenants, sum.Failed, dbs, leftovers, wall.Round(time.Millisecond))
		for _, f := range sum.Failures[:min(len(sum.Failures), 3)] {
			fmt.Printf("          FAILED %s: %s\n", f.Tenant, f.Error)
		}
		total += sum.Failed
		if sum.Restored != tenants || sum.Failed > 0 || dbs != tenants || leftovers > 0 {
			bad++
		}
	}
	fmt.Printf("  %d of %d runs restored every tenant (%d failures in all); wall median %s, max %s\n",
		runs-bad, runs, total, median(walls).Round(time.Millisecond), slices.Max(walls).Round(time.Millisecond))
	fmt.Printf("reproduce: bench/restore.sh -all-runs %d -tenants %d -tenant-kb %d -parallel %d\n", runs, tenants, smallKB, parallel)
	if bad > 0 {
		return fmt.Errorf("%d of %d runs of restore -all did not restore every tenant cleanly", bad, runs)
	}
	return nil
}

// makeDB writes a database of about rows KB: each row ~1 KB, half random
// (hex) and half repetitive, with an index, as a tenant's data might be.
func makeDB(path string, rows int) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, val TEXT NOT NULL)`,
		`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ` + fmt.Sprint(rows) + `)
		 INSERT INTO t (k, val) SELECT hex(randomblob(8)), hex(randomblob(250)) || printf('%.480c', 'x') FROM c`,
		`CREATE INDEX t_k ON t(k)`,
		`PRAGMA wal_checkpoint(TRUNCATE)`,
	} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return db.Close()
}

// replicate runs litefleet replicate on every database until each tenant
// has logged a synced transaction, then stops it with SIGTERM.
func (e *env) replicate(work, src string, names []string) error {
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "dbs:\n")
	for _, n := range names {
		fmt.Fprintf(&cfg, "  - path: %s\n    replica:\n      type: s3\n      bucket: %s\n      path: databases/%s\n      endpoint: %s\n",
			filepath.Join(src, n+".db"), e.conn.Bucket, n, e.conn.Endpoint)
	}
	cfgPath := filepath.Join(work, "litestream.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(e.litefleet, "replicate", "-config", cfgPath)
	cmd.Env = e.environ
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	synced := map[string]bool{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(10 * time.Minute)
	for len(synced) < len(names) {
		select {
		case l, ok := <-lines:
			if !ok {
				return errors.New("litefleet replicate exited early")
			}
			if i := strings.Index(l, "new transaction: db="); i >= 0 {
				synced[strings.Fields(l[i+len("new transaction: db="):])[0]] = true
			} else if strings.Contains(l, "ERROR") || strings.Contains(l, "litefleet:") {
				fmt.Fprintln(os.Stderr, l)
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			return fmt.Errorf("only %d of %d tenants synced in 10 minutes", len(synced), len(names))
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		for range lines { // drain until the process closes its output
		}
	}()
	err := cmd.Wait()
	pw.Close()
	return err
}

func (e *env) litestreamCmd(tenant, out string) *exec.Cmd {
	url := e.conn.URL(tenant) + "?endpoint=" + e.conn.Endpoint + "&region=us-east-1&forcePathStyle=true"
	return exec.Command(e.litestream, "restore", "-o", out, url)
}

func (e *env) litefleetCmd(out string, args ...string) *exec.Cmd {
	a := append([]string{"restore", "-bucket", e.conn.Bucket, "-endpoint", e.conn.Endpoint, "-o", out}, args...)
	return exec.Command(e.litefleet, a...)
}

// time runs cmd after removing out, and returns how long it took.
func (e *env) time(out string, cmd *exec.Cmd) (time.Duration, error) {
	for _, suf := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(out + suf)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return 0, err
	}
	t0 := time.Now()
	err := e.exec(cmd)
	return time.Since(t0), err
}

func (e *env) exec(cmd *exec.Cmd) error {
	cmd.Env = e.environ
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, b.String())
	}
	return nil
}

// profile restores the large tenant in this process under the CPU profiler.
func (e *env) profile(path, out string) error {
	_ = os.Remove(out)
	return cpuProfile(path, "restore", func() (string, error) {
		res, err := restore.Run(context.Background(), e.client, restore.Options{Conn: e.conn, Tenant: bigTenant, Output: out})
		if err != nil {
			return "", err
		}
		return res.Position.String(), nil
	})
}

// profileAll restores the small tenants with restore.All in this process
// under the CPU profiler.
func (e *env) profileAll(path, out string, parallel int) error {
	_ = os.RemoveAll(out)
	return cpuProfile(path, "restore -all", func() (string, error) {
		sum, err := restore.All(context.Background(), e.client, restore.AllOptions{Conn: e.conn, OutputDir: out, Match: "5a11*", Parallel: parallel}, nil)
		return fmt.Sprintf("%d restored", sum.Restored), err
	})
}

// cpuProfile runs what under the CPU profiler, writing the profile to
// path, and prints how long it took and what it says of itself.
func cpuProfile(path, name string, what func() (string, error)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	t0 := time.Now()
	said, err := what()
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	fmt.Printf("profiled in-process %s: %s, %s; CPU profile in %s (go tool pprof -top %s)\n",
		name, time.Since(t0).Round(time.Millisecond), said, path, path)
	return nil
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func sameFile(a, b string) (bool, error) {
	ha, err := hashFile(a)
	if err != nil {
		return false, err
	}
	hb, err := hashFile(b)
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

func hashFile(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }

func fmtRuns(d []time.Duration) string {
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(time.Millisecond).String())
	}
	return "(runs: " + strings.Join(parts, ", ") + ")"
}
