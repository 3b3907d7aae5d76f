// Command fleet measures what a fleet of idle and writing tenants costs a
// replicator (issue 9): `litefleet replicate -dir` over N tenant databases,
// and `litestream replicate -config` (v0.5.18) over the same fleet for
// comparison, each against versitygw behind a request-counting proxy
// (internal/s3proxy) that the replicator's S3 endpoint points at.
//
// For each N it prints: the time from start until every tenant's first
// snapshot is in S3 (its first LTX upload of any level, answered 2xx); after an idle window, the replicator's RSS,
// descriptors, OS threads, goroutines and CPU, and the S3 requests per idle
// tenant per day by kind (heartbeats and host records per process apart);
// the commit-to-S3 latency of 100 writing tenants and of wakes of sleeping
// ones; and at the end one markdown table for the README.
//
// Run it with `make bench-fleet` (BENCH_FLEET_ARGS passes flags), or
//
//	make build && go run ./bench/fleet -n 1000 -idle 30s     # while developing
//	make build && go run ./bench/fleet -n 1000,10000          # the README's figures
//
// It starts its own versitygw (from .tools/bin: `make tools`) with its data
// in the work folder, which is removed at the end unless -keep; there each
// run leaves the replicator's log and requests.tsv, every request the proxy
// saw (start, duration, status, kind, key).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3conn"
)

// bench holds what every run shares: flags, the S3 server, the output.
type bench struct {
	ns            []int
	compare       map[int]bool
	idle          time.Duration
	sleepAfter    time.Duration
	writers       int
	startWriters  int
	startDelay    time.Duration
	writeFor      time.Duration
	wakes         int
	firstTimeout  time.Duration
	stopTimeout   time.Duration
	uploadTimeout time.Duration
	litefleet     string
	baseline      string // another litefleet binary to compare with (-baseline)
	baselineNs    map[int]bool
	litestream    string
	work          string

	s3     *s3test.Server
	vgw    *exec.Cmd
	client *s3.Client
	out    io.Writer
	began  time.Time
}

func main() {
	b := &bench{out: os.Stdout, began: time.Now()}
	var ns, compare, baselineNs string
	var keep bool
	flag.StringVar(&ns, "n", "1000,10000", "fleet sizes to measure, comma-separated")
	flag.StringVar(&compare, "compare", "1000", "fleet sizes at which litestream replicate is measured too (comma-separated; empty: none)")
	flag.DurationVar(&b.idle, "idle", 3*time.Minute, "idle window over which requests and CPU are counted (after every tenant fell asleep)")
	flag.DurationVar(&b.sleepAfter, "sleep-after", time.Minute, "litefleet replicate -sleep-after")
	flag.IntVar(&b.writers, "writers", 100, "tenants writing about once a second")
	flag.DurationVar(&b.writeFor, "write-for", time.Minute, "how long the writers write")
	flag.IntVar(&b.startWriters, "start-writers", 100, "tenants writing about once a second while the fleet starts (the last ones by path; 0: none)")
	flag.DurationVar(&b.startDelay, "start-delay", 5*time.Second, "how long after the replicator's start the -start-writers begin")
	flag.IntVar(&b.wakes, "wakes", 50, "sleeping tenants woken by one write each")
	flag.DurationVar(&b.firstTimeout, "first-timeout", 10*time.Minute, "how long to wait for every first snapshot")
	flag.DurationVar(&b.uploadTimeout, "upload-timeout", 30*time.Second, "how long a commit may wait for its upload before it counts as not uploaded")
	flag.DurationVar(&b.stopTimeout, "stop-timeout", 2*time.Minute, "how long a replicator may take to exit after SIGTERM before it is killed")
	flag.StringVar(&b.litefleet, "litefleet", "bin/litefleet", "the litefleet binary (make build)")
	flag.StringVar(&b.baseline, "baseline", "", "another litefleet binary (e.g. main's) measured too at the -baseline-n sizes, with the ratio")
	flag.StringVar(&baselineNs, "baseline-n", "10000", "fleet sizes at which -baseline is measured (comma-separated)")
	flag.StringVar(&b.litestream, "litestream", "", "the litestream v0.5 binary (default: .tools/bin/litestream)")
	flag.StringVar(&b.work, "work", "", "work folder for databases, logs and the S3 server's data (default: a new temporary folder)")
	flag.BoolVar(&keep, "keep", false, "keep the work folder (logs, databases, S3 data)")
	flag.Parse()
	var err error
	if b.ns, err = sizes("-n", ns); err == nil && len(b.ns) == 0 {
		err = errors.New("-n: give at least one fleet size, e.g. -n 1000")
	}
	if err == nil {
		var cs []int
		cs, err = sizes("-compare", compare)
		b.compare = map[int]bool{}
		for _, n := range cs {
			b.compare[n] = true
		}
	}
	if err == nil {
		var bs []int
		bs, err = sizes("-baseline-n", baselineNs)
		b.baselineNs = map[int]bool{}
		for _, n := range bs {
			b.baselineNs[n] = b.baseline != ""
		}
	}
	if err == nil && (b.idle <= 0 || b.writeFor <= 0 || b.sleepAfter <= 0) {
		err = errors.New("-idle, -write-for and -sleep-after must be positive durations, e.g. 3m")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	if err := b.main(ctx, keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		code = 1
	}
	stop()
	os.Exit(code)
}

func sizes(flagName, s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(strings.ReplaceAll(f, "_", ""))
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: give fleet sizes as positive numbers, e.g. 1000,10000", flagName, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (b *bench) main(ctx context.Context, keep bool) error {
	if _, err := s3conn.AdoptCABundle(); err != nil {
		return err
	}
	var err error
	if b.litefleet, err = filepath.Abs(b.litefleet); err != nil {
		return err
	}
	if _, err := os.Stat(b.litefleet); err != nil {
		return fmt.Errorf("%w: build it with `make build`", err)
	}
	if b.baseline != "" {
		if b.baseline, err = filepath.Abs(b.baseline); err != nil {
			return err
		}
		if _, err := os.Stat(b.baseline); err != nil {
			return fmt.Errorf("-baseline: %w: build main's with `git worktree add /tmp/main main && cd /tmp/main && make build`", err)
		}
	}
	if len(b.compare) > 0 {
		if b.litestream == "" {
			if b.litestream, err = s3test.FindTool("litestream"); err != nil {
				return fmt.Errorf("%w: run `make tools`, or pass -compare ''", err)
			}
		}
		if b.litestream, err = filepath.Abs(b.litestream); err != nil {
			return err
		}
	}
	if b.work == "" {
		if b.work, err = os.MkdirTemp("", "litefleet-benchfleet-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Fprintf(b.out, "work folder kept: %s\n", b.work)
		} else {
			_ = os.RemoveAll(b.work)
		}
	}()
	b.machine()
	if err := b.startS3(); err != nil {
		return err
	}
	defer b.stopS3()

	var results []*result
	for _, n := range b.ns {
		tenants := newTenants(n)
		results = append(results, b.run(ctx, sysLitefleet, tenants))
		if ctx.Err() != nil {
			break
		}
		if b.baselineNs[n] {
			results = append(results, b.run(ctx, sysBaseline, tenants))
			if ctx.Err() != nil {
				break
			}
		}
		if b.compare[n] {
			results = append(results, b.run(ctx, sysLitestream, tenants))
			if ctx.Err() != nil {
				break
			}
		}
	}
	b.summary(results)
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("%s: %w", r.label(), r.err)
		}
	}
	return ctx.Err()
}

// machine prints what the figures depend on.
func (b *bench) machine() {
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	b.say("machine: %d CPUs, open-file limit %d, load average %s", runtime.NumCPU(), lim.Cur, loadAvg())
	for _, n := range b.ns {
		if uint64(n) > lim.Cur/2 {
			b.say("note: N=%d is more than half the open-file limit (%d): a replicator holding every tenant open will run out of descriptors", n, lim.Cur)
		}
	}
	b.say("work folder: %s", b.work)
}

// loadAvg is the machine's 1, 5 and 15 minute load averages: other work
// on the machine moves the figures.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// startS3 starts a private versitygw with its data in the work folder.
func (b *bench) startS3() error {
	bin, err := s3test.FindTool("versitygw")
	if err != nil {
		return fmt.Errorf("%w: run `make tools`", err)
	}
	data := filepath.Join(b.work, "s3")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	port, err := s3test.FreePort()
	if err != nil {
		return err
	}
	b.s3 = &s3test.Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "benchfleet", SecretKey: "benchfleet-secret", Dir: data}
	logFile, err := os.Create(filepath.Join(b.work, "versitygw.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the server keeps its own descriptor
	b.vgw = exec.Command(bin, "--access", b.s3.AccessKey, "--secret", b.s3.SecretKey, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--quiet", "posix", data)
	b.vgw.Stdout, b.vgw.Stderr = logFile, logFile
	b.vgw.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.vgw.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	if err := s3test.WaitReady(b.s3.Endpoint, 10*time.Second); err != nil {
		b.stopS3()
		return err
	}
	// The client serves every run's bucket; Conn wants one named.
	conn := s3conn.Conn{Bucket: "fleet", Endpoint: b.s3.Endpoint, AccessKeyID: b.s3.AccessKey, SecretAccessKey: b.s3.SecretKey, ForcePathStyle: true}
	if b.client, err = s3conn.NewClient(context.Background(), conn); err != nil {
		b.stopS3()
		return err
	}
	b.say("versitygw at %s (data: %s)", b.s3.Endpoint, data)
	return nil
}

func (b *bench) stopS3() {
	done := make(chan struct{})
	go func() { _ = b.vgw.Wait(); close(done) }()
	_ = b.vgw.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.vgw.Process.Kill()
		<-done
	}
}

// env is a replicator's environment: the S3 server's credentials the
// standard AWS way. Litestream's S3 client fails with AWS_CA_BUNDLE set.
func (b *bench) env(noCABundle bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY" || k == "AWS_SESSION_TOKEN" || k == "AWS_PROFILE":
		case k == "LITEFLEET_PPROF":
		case noCABundle && k == "AWS_CA_BUNDLE":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "AWS_ACCESS_KEY_ID="+b.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.s3.SecretKey)
}

// say prints a progress line, stamped with the time since the start.
func (b *bench) say(format string, args ...any) {
	d := time.Since(b.began).Truncate(time.Second)
	fmt.Fprintf(b.out, "[%02d:%02d] %s\n", int(d.Minutes()), int(d.Seconds())%60, fmt.Sprintf(format, args...))
}
