package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/internal/s3proxy"
	"github.com/litefleet/litefleet/internal/s3test"
)

// The replicators compared.
const (
	sysLitefleet  = "litefleet"
	sysLitestream = "litestream"
	// sysBaseline is litefleet too, another build of it (-baseline).
	sysBaseline = "litefleet-baseline"
)

// result is what one run measured: one replicator over one fleet.
type result struct {
	addr     string // litefleet's -addr
	sys      string
	baseline bool // the -baseline binary
	n        int
	err      error

	created   time.Duration    // writing the N databases
	firstGot  int              // tenants with a first snapshot in S3
	firstHalf time.Duration    // from start to half of them
	firstAll  time.Duration    // from start to the last of them
	startup   s3proxy.Snapshot // requests until then

	asleep   int           // tenants asleep when the idle window began (litefleet)
	settle   time.Duration // waiting for them to fall asleep
	asleepAt time.Duration // from start until they had

	metrics, status scrape // GETs of -addr's /metrics and /status after the idle window (litefleet)

	window  time.Duration // the idle window
	idleReq s3proxy.Snapshot
	idleCPU float64 // % of one core
	vgwCPU  float64 // the S3 server's, for context
	idle    procSample

	startW    dist // commits of the writers while the fleet starts
	writers   int
	warm      dist // the writers' first commits, all at once (wakes of 100)
	active    dist // then about one commit a second each
	writeReq  s3proxy.Snapshot
	writeOwn  s3proxy.Counts // on the writers' prefixes
	writePeak peak
	writeErrs []error

	wakeAsleep int // woken tenants that fell asleep again (litefleet)
	wake       dist
	wakeReq    s3proxy.Counts // on the woken tenants' prefixes

	stopTook time.Duration
	exitCode int
	killed   bool
}

func (r *result) label() string { return fmt.Sprintf("%s N=%s", r.label2(), commaInt(r.n)) }

// label2 names the replicator: the -baseline build apart.
func (r *result) label2() string {
	if r.baseline {
		return sysBaseline
	}
	return r.sys
}

// run measures one replicator over a new copy of the fleet's databases,
// replicating into a new bucket.
func (b *bench) run(ctx context.Context, sys string, tenants []string) (res *result) {
	bin := b.litefleet
	if sys == sysBaseline {
		bin, sys = b.baseline, sysLitefleet
	}
	res = &result{sys: sys, baseline: bin != b.litefleet, n: len(tenants), exitCode: -1}
	b.say("=== %s (load average %s)", res.label(), loadAvg())
	dir := filepath.Join(b.work, fmt.Sprintf("%s-%d", res.label2(), len(tenants)))
	dbs := filepath.Join(dir, "dbs")
	if err := os.MkdirAll(dbs, 0o755); err != nil {
		res.err = err
		return res
	}
	start := time.Now()
	if err := createDatabases(ctx, dbs, tenants); err != nil {
		res.err = fmt.Errorf("create databases: %w", err)
		return res
	}
	res.created = time.Since(start)
	b.say("created %s databases (10 rows each, WAL mode) in %s", commaInt(len(tenants)), round(res.created))

	bucket := fmt.Sprintf("fleet-%s-%d-%d", sys, len(tenants), time.Now().Unix())
	if _, err := b.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		res.err = fmt.Errorf("create bucket %s: %w", bucket, err)
		return res
	}
	up := newUploads("databases")
	reqFile, err := os.Create(filepath.Join(dir, "requests.tsv"))
	if err != nil {
		res.err = err
		return res
	}
	defer reqFile.Close()
	up.logTo(reqFile)
	proxy, err := s3proxy.Start(s3proxy.Options{Target: b.s3.Endpoint, Hook: up.hook})
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		_ = proxy.Close()
		if err := up.flush(); err != nil {
			b.say("request log: %v", err)
		}
	}()

	port, err := s3test.FreePort()
	if err != nil {
		res.err = err
		return res
	}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", port)
	port2, err := s3test.FreePort()
	if err != nil {
		res.err = err
		return res
	}
	res.addr = fmt.Sprintf("127.0.0.1:%d", port2)
	var args []string
	env := b.env(sys == sysLitestream)
	log := newProcLog(sys == sysLitefleet)
	if sys == sysLitefleet {
		args = []string{bin, "replicate", "-dir", dbs, "-bucket", bucket, "-endpoint", proxy.URL(),
			"-host", "bench", "-log-format", "json", "-sleep-after", b.sleepAfter.String(), "-addr", res.addr}
		env = append(env, "LITEFLEET_PPROF="+pprofAddr)
	} else {
		cfg := filepath.Join(dir, "litestream.yml")
		if err := writeLitestreamConfig(cfg, dbs, bucket, proxy.URL(), pprofAddr, tenants); err != nil {
			res.err = err
			return res
		}
		args = []string{b.litestream, "replicate", "-config", cfg}
	}
	b.say("starting %s (S3 endpoint: the counting proxy %s; log: %s)", strings.Join(append([]string{filepath.Base(args[0])}, args[1:]...), " "), proxy.URL(), filepath.Join(dir, sys+".log"))
	t0 := time.Now()
	c, err := startChild(sys, args, env, filepath.Join(dir, sys+".log"), log)
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		res.stopTook, res.exitCode, res.killed = c.stop(b.stopTimeout)
		how := fmt.Sprintf("exit code %d", res.exitCode)
		if res.killed {
			how = fmt.Sprintf("killed after %s", b.stopTimeout)
		}
		b.say("SIGTERM: %s stopped in %s, %s", sys, round(res.stopTook), how)
		log.summary(b.out, "  ")
	}()
	if res.err = b.measure(ctx, res, c, proxy, up, log, pprofAddr, dbs, tenants, t0); res.err != nil {
		b.say("run failed: %v", res.err)
	}
	return res
}

// measure runs the phases of one run against a started replicator.
func (b *bench) measure(ctx context.Context, res *result, c *child, proxy *s3proxy.Proxy, up *uploads, log *procLog,
	pprofAddr, dbs string, tenants []string, t0 time.Time) error {
	n := len(tenants)
	writers := tenants[:min(b.writers, n)]

	// 0. Writers while the fleet starts: the tenants reached last.
	var sw *startWrites
	if k := min(b.startWriters, n-len(writers)); k > 0 {
		sw = b.startWriting(ctx, dbs, lastByName(tenants[len(writers):], k))
		b.say("%d writers while the fleet starts: the last tenants by path, about one commit a second each for %s from %s after the start", k, b.writeFor, b.startDelay)
	}

	// 1. Every tenant's first snapshot: its first L0 upload at the proxy.
	err := b.waitUntil(ctx, c, b.firstTimeout, up.wait, func() bool { return up.firstCount() >= n },
		func() string { return fmt.Sprintf("first snapshots: %s of %s", commaInt(up.firstCount()), commaInt(n)) })
	if err != nil && err != errTimeout {
		return err
	}
	res.startup = proxy.Snapshot()
	firsts := up.firstTimes()
	var ends []time.Duration
	for _, t := range tenants {
		if at, ok := firsts[t]; ok {
			ends = append(ends, at.Sub(t0))
		}
	}
	res.firstGot = len(ends)
	if len(ends) > 0 {
		d := distOf(ends)
		res.firstHalf, res.firstAll = d.p50, d.max
	}
	if res.firstGot < n {
		b.say("first snapshots: only %s of %s tenants within %s", commaInt(res.firstGot), commaInt(n), b.firstTimeout)
	} else {
		b.say("first snapshots: all %s tenants in %s (half in %s)", commaInt(n), round(res.firstAll), round(res.firstHalf))
	}
	b.say("  requests until then, per tenant: %s; heartbeats and host records: %s; %d LTX uploads answered with an error or none",
		perTenant(res.startup.Data, n), kinds(res.startup.Control, 1), up.failedUploads())
	if sw != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sw.done:
		}
		cs, errs := sw.log.take()
		res.writeErrs = append(res.writeErrs, errs...)
		if err := b.drain(ctx, c, up, cs); err != nil {
			return err
		}
		res.startW = distOf(up.latencies(cs))
		b.say("  commits while the fleet started (%s): commit-to-S3 p50 %s, p99 %s, max %s%s", commaInt(res.startW.n),
			latText(res.startW.p50), latText(res.startW.p99), latText(res.startW.max), missingText(res.startW))
	}

	// 2. Idle: litefleet's tenants fall asleep after -sleep-after;
	// Litestream's stay open, idle from their first sync.
	if res.sys == sysLitefleet {
		start := time.Now()
		err := b.waitUntil(ctx, c, b.sleepAfter+3*time.Minute, log.wait, func() bool { return log.inState("sleeping") >= n },
			func() string {
				return fmt.Sprintf("asleep: %s of %s", commaInt(log.inState("sleeping")), commaInt(n))
			})
		if err != nil && err != errTimeout {
			return err
		}
		res.settle, res.asleep, res.asleepAt = time.Since(start), log.inState("sleeping"), time.Since(t0)
		b.say("asleep: %s of %s tenants after %s more; states: %v", commaInt(res.asleep), commaInt(n), round(res.settle), log.states())
	}
	b.say("idle window: %s", b.idle)
	// The tenants asleep as the window opens, and the others: what an idle
	// tenant costs is the sleepers' figure.
	var sleepers, awake []string
	for _, t := range tenants {
		if res.sys == sysLitefleet && log.stateOf(t) == "sleeping" {
			sleepers = append(sleepers, t)
		} else {
			awake = append(awake, t)
		}
	}
	s0, ctl0 := proxy.Snapshot(), up.controlCounts()
	sl0, aw0 := up.tenantCounts(sleepers), up.tenantCounts(awake)
	cpu0, err := cpuTime(c.pid())
	if err != nil {
		return err
	}
	vgw0, _ := cpuTime(b.vgw.Process.Pid)
	w0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.exited:
		return c.errExited()
	case <-time.After(b.idle):
	}
	cpu1, err := cpuTime(c.pid())
	if err != nil {
		return err
	}
	vgw1, _ := cpuTime(b.vgw.Process.Pid)
	res.window = time.Since(w0)
	res.idleReq = proxy.Snapshot().Sub(s0)
	res.idleCPU = 100 * float64(cpu1-cpu0) / float64(res.window)
	res.vgwCPU = 100 * float64(vgw1-vgw0) / float64(res.window)
	if res.idle, err = sample(ctx, c.pid(), pprofAddr); err != nil {
		return err
	}
	b.say("after %s idle: RSS %s (peak %s), %s descriptors, %s threads, %s goroutines; CPU %.1f %% of one core (versitygw %.1f %%)",
		round(res.window), mib(res.idle.rss), mib(res.idle.hwm), commaInt(res.idle.fds), commaInt(res.idle.threads), goroutineText(res.idle.goroutines),
		res.idleCPU, res.vgwCPU)
	b.say("  S3 requests per idle tenant per day: %s", perDay(res.idleReq.Data, n, res.window))
	if res.sys == sysLitefleet {
		res.metrics, res.status = scrapeOnce(ctx, res.addr, "/metrics"), scrapeOnce(ctx, res.addr, "/status")
		b.say("  one scrape of -addr: /metrics %s, /status %s", res.metrics, res.status)
	}
	if res.sys == sysLitefleet && len(awake) > 0 {
		b.say("    of which on the %s tenants asleep as the window opened, per tenant per day: %s", commaInt(len(sleepers)),
			perDay(up.tenantCounts(sleepers).Sub(sl0), max(len(sleepers), 1), res.window))
		b.say("    and on the %s awake, per tenant per day: %s", commaInt(len(awake)), perDay(up.tenantCounts(awake).Sub(aw0), len(awake), res.window))
	}
	b.say("  heartbeats and host records per process per day: %s: %s", perDay(res.idleReq.Control, 1, res.window),
		perDayByName(ctl0, up.controlCounts(), res.window))
	if e := res.idleReq.ClientErrors + res.idleReq.ServerErrors; e > 0 {
		b.say("  %d 4xx and %d 5xx answers in the window", res.idleReq.ClientErrors, res.idleReq.ServerErrors)
	}

	// 3. Writers: commit-to-S3 latency of awake tenants.
	if err := b.writePhase(ctx, res, c, proxy, up, pprofAddr, dbs, writers); err != nil {
		return err
	}

	// 4. Wakes: one write to each of a few tenants that were asleep.
	return b.wakePhase(ctx, res, c, proxy, up, log, dbs, tenants[len(writers):])
}

func (b *bench) writePhase(ctx context.Context, res *result, c *child, proxy *s3proxy.Proxy, up *uploads,
	pprofAddr, dbs string, writers []string) error {
	res.writers = len(writers)
	b.say("%d writers, each with its own connection: one commit each at once, then about one a second for %s", len(writers), b.writeFor)
	conns := make([]*sql.DB, len(writers))
	defer func() {
		for _, db := range conns {
			if db != nil {
				db.Close()
			}
		}
	}()
	for i, t := range writers {
		db, err := openDB(dbPath(dbs, t))
		if err != nil {
			return err
		}
		conns[i] = db
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("open %s: %w", t, err)
		}
	}
	var cl commitLog
	var wg sync.WaitGroup
	for i, t := range writers {
		wg.Go(func() { write(ctx, conns[i], t, &cl) })
	}
	wg.Wait()
	warm, errs := cl.take()
	res.writeErrs = append(res.writeErrs, errs...)
	if err := b.drain(ctx, c, up, warm); err != nil {
		return err
	}
	res.warm = distOf(up.latencies(warm))
	what := "tenants woken at once"
	if res.sys == sysLitestream {
		what = "tenants at once"
	}
	b.say("  first commits (%d %s): p50 %s, p99 %s, max %s%s", res.warm.n, what, latText(res.warm.p50), latText(res.warm.p99), latText(res.warm.max), missingText(res.warm))

	s0, own0 := proxy.Snapshot(), up.tenantCounts(writers)
	wctx, cancel := context.WithTimeout(ctx, b.writeFor)
	defer cancel()
	for i, t := range writers {
		wg.Go(func() {
			// Spread the writers over the second, as independent apps are.
			select {
			case <-wctx.Done():
				return
			case <-time.After(rand.N(time.Second)):
			}
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				write(wctx, conns[i], t, &cl)
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	// Sample the replicator while they write; the goroutine count once,
	// near the end, as it costs the process a stop-the-world.
	tick := time.NewTicker(2 * time.Second)
	counted := false
sampling:
	for {
		select {
		case <-wctx.Done():
			break sampling
		case <-c.exited:
			cancel()
			wg.Wait()
			return c.errExited()
		case <-tick.C:
			withG := ""
			if !counted {
				if dl, _ := wctx.Deadline(); time.Until(dl) < 5*time.Second {
					withG, counted = pprofAddr, true
				}
			}
			if s, err := sample(ctx, c.pid(), withG); err == nil {
				res.writePeak.add(s)
			}
		}
	}
	tick.Stop()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	active, errs := cl.take()
	res.writeErrs = append(res.writeErrs, errs...)
	if err := b.drain(ctx, c, up, active); err != nil {
		return err
	}
	res.writeReq = proxy.Snapshot().Sub(s0)
	res.writeOwn = up.tenantCounts(writers).Sub(own0)
	res.active = distOf(up.latencies(active))
	b.say("  then %s commits: commit-to-S3 p50 %s, p99 %s, max %s%s", commaInt(res.active.n), latText(res.active.p50), latText(res.active.p99), latText(res.active.max), missingText(res.active))
	b.say("  while writing (peak): RSS %s, %s descriptors, %s threads, %s goroutines", mib(res.writePeak.rss), commaInt(res.writePeak.fds),
		commaInt(res.writePeak.threads), goroutineText(res.writePeak.goroutines))
	b.say("  S3 requests on the writers' prefixes, per commit: %s", perTenant(res.writeOwn, max(res.active.n, 1)))
	b.say("  all S3 requests while they wrote: %s; heartbeats and host records: %s", kinds(res.writeReq.Data, 1), kinds(res.writeReq.Control, 1))
	if len(res.writeErrs) > 0 {
		b.say("  %d writes failed, e.g. %v", len(res.writeErrs), res.writeErrs[0])
	}
	return nil
}

func (b *bench) wakePhase(ctx context.Context, res *result, c *child, proxy *s3proxy.Proxy, up *uploads, log *procLog,
	dbs string, others []string) error {
	var picked []string
	for _, t := range others {
		if len(picked) == b.wakes {
			break
		}
		if res.sys == sysLitestream || log.stateOf(t) == "sleeping" {
			picked = append(picked, t)
		}
	}
	if len(picked) == 0 {
		b.say("wakes: no sleeping tenant to write to")
		return nil
	}
	if res.sys == sysLitefleet {
		b.say("wakes: one write to each of %d sleeping tenants, one every second (the connection stays open until the upload)", len(picked))
	} else {
		b.say("writes to idle tenants (Litestream keeps them open): one write to each of %d, one every second", len(picked))
	}
	own0, slept0 := up.tenantCounts(picked), log.sleepCounts(picked)
	var cl commitLog
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i, t := range picked {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.exited:
				return c.errExited()
			case <-tick.C:
			}
		}
		wg.Go(func() {
			db, err := openDB(dbPath(dbs, t))
			if err != nil {
				cl.fail(err)
				return
			}
			defer db.Close()
			var mine commitLog
			write(ctx, db, t, &mine)
			cs, errs := mine.take()
			for _, e := range errs {
				cl.fail(e)
			}
			for _, x := range cs {
				cl.add(x)
				// An application keeps its connection while the change is
				// replicated: close only after the upload (or the timeout).
				_ = b.waitUntil(ctx, c, b.uploadTimeout, up.wait, func() bool { return up.latency(x) != notUploaded }, nil)
			}
		})
	}
	wg.Wait()
	wakes, errs := cl.take()
	res.writeErrs = append(res.writeErrs, errs...)
	res.wake = distOf(up.latencies(wakes))
	b.say("  commit-to-S3 p50 %s, p99 %s, max %s%s", latText(res.wake.p50), latText(res.wake.p99), latText(res.wake.max), missingText(res.wake))
	until := "during the phase"
	if res.sys == sysLitefleet {
		// A wake's cost includes its way back to sleep.
		start := time.Now()
		again := func() int {
			n := 0
			for i, s := range log.sleepCounts(picked) {
				if s > slept0[i] {
					n++
				}
			}
			return n
		}
		err := b.waitUntil(ctx, c, b.sleepAfter+3*time.Minute, log.wait, func() bool { return again() == len(picked) },
			func() string { return fmt.Sprintf("asleep again: %d of %d", again(), len(picked)) })
		if err != nil && err != errTimeout {
			return err
		}
		res.wakeAsleep = again()
		until = fmt.Sprintf("until asleep again (%d of %d, %s after the last upload)", res.wakeAsleep, len(picked), round(time.Since(start)))
	}
	res.wakeReq = up.tenantCounts(picked).Sub(own0)
	b.say("  S3 requests on the woken tenants' prefixes, per wake, %s: %s", until, perTenant(res.wakeReq, max(res.wake.n, 1)))
	return nil
}

// drain waits until every commit has an upload after it, or the upload
// timeout passes.
func (b *bench) drain(ctx context.Context, c *child, up *uploads, cs []commit) error {
	rest := cs
	err := b.waitUntil(ctx, c, b.uploadTimeout, up.wait, func() bool {
		rest = up.pending(rest)
		return len(rest) == 0
	}, nil)
	if err == errTimeout {
		return nil // reported as not uploaded
	}
	return err
}

// waitUntil waits until done() holds, checking it whenever changed()
// fires, and prints progress every ten seconds. It returns errTimeout
// after timeout, and an error if the replicator exits or ctx ends.
func (b *bench) waitUntil(ctx context.Context, c *child, timeout time.Duration, changed func() <-chan struct{}, done func() bool, progress func() string) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	every := time.NewTicker(10 * time.Second)
	defer every.Stop()
	for {
		ch := changed()
		if done() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.exited:
			return c.errExited()
		case <-deadline.C:
			return errTimeout
		case <-every.C:
			if progress != nil {
				b.say("  %s", progress())
			}
		case <-ch:
		}
	}
}

// writeLitestreamConfig writes a litestream.yml with one database per
// tenant, each replicated into its tenant's prefix through the proxy.
func writeLitestreamConfig(path, dbs, bucket, endpoint, addr string, tenants []string) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Generated by bench/fleet: one database per tenant.\naddr: %s\ndbs:\n", addr)
	for _, t := range tenants {
		fmt.Fprintf(&sb, "  - path: %s\n    replica:\n      url: s3://%s/databases/%s\n      endpoint: %s\n      region: us-east-1\n",
			dbPath(dbs, t), bucket, t, endpoint)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}
