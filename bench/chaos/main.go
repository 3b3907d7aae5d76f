// Command chaos is a Jepsen-style fault harness for litefleet's lease
// protocol (issue 17): it starts versitygw on 127.0.0.1, three or more
// `litefleet replicate` hosts, each behind its own fault proxy
// (internal/faultproxy), over overlapping copies of a small fleet (every
// tenant's database in two hosts' folders, the second a restore of the
// first), and application processes that write to the copy of whichever
// host holds the tenant, recording every acknowledged row. From a seeded
// PRNG it injects partitions (black hole, refused connections), slow links
// with writes applied late, SIGSTOP/SIGCONT and SIGKILL of replicators,
// Date skew, a server that ignores conditional writes, two processes with
// one -host, tenants moved between hosts, and one bigger tenant on a slow
// link. At the end it heals everything, lets the fleet sync, and checks:
//
//  1. every acknowledged row of the tenant's holder is restorable, by
//     litefleet restore and litestream restore;
//  2. no restore, at any sampled TXID, mixes two hosts' histories, and no
//     host overwrote an LTX object another host wrote;
//  3. no status (/status, host record, ls -json) said in sync while the
//     replica lacked a row acknowledged more than 30 s before;
//  4. every local database passes PRAGMA integrity_check.
//
// Run it with `make chaos` (CHAOS_ARGS passes flags), or
//
//	make build && go run ./bench/chaos -seed 7 -duration 10m
//
// It exits 1 when an invariant fails. The work folder (default
// bench/results/chaos-SEED-TIME) keeps every replicator's log, the fault
// schedule, every write each proxy forwarded (writes.tsv) and the
// evidence of each failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	appMain()
	cfg := defaultConfig()
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the fault schedule and the writers")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long faults are injected")
	flag.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "replicator hosts (at least 3)")
	flag.IntVar(&cfg.Tenants, "tenants", cfg.Tenants, "tenants; each has a copy on two hosts")
	flag.IntVar(&cfg.BigMB, "big-mb", cfg.BigMB, "size of the bigger tenant in MB (0: none)")
	flag.IntVar(&cfg.Bandwidth, "bandwidth", cfg.Bandwidth, "bytes per second of the bigger tenant's first host's uplink")
	flag.DurationVar(&cfg.Settle, "settle", cfg.Settle, "how long the healed fleet is given to sync before the checks")
	flag.DurationVar(&cfg.SleepAfter, "sleep-after", cfg.SleepAfter, "replicate -sleep-after")
	flag.StringVar(&cfg.Faults, "faults", cfg.Faults, "fault kinds to inject, comma-separated")
	flag.StringVar(&cfg.Litefleet, "litefleet", cfg.Litefleet, "the litefleet binary (make build)")
	flag.StringVar(&cfg.Work, "work", "", "work folder (default bench/results/chaos-SEED-TIME)")
	flag.Parse()
	if err := cfg.check(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	res, err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if res.Failed > 0 {
		os.Exit(1)
	}
}

// config is one run's parameters.
type config struct {
	Seed       uint64
	Duration   time.Duration
	Hosts      int
	Tenants    int
	BigMB      int
	Bandwidth  int
	Settle     time.Duration
	SleepAfter time.Duration
	Faults     string
	Litefleet  string
	Work       string
	// Window is how long a replica may lack an acknowledged row while a
	// status says in sync (invariant 3).
	Window time.Duration
	// Grace is how long before a host died its unreplicated rows may be
	// lost to the host that takes its tenant over.
	Grace time.Duration
}

func defaultConfig() config {
	return config{
		Seed: 1, Duration: 10 * time.Minute, Hosts: 3, Tenants: 6, BigMB: 12, Bandwidth: 200 << 10,
		Settle: 2 * time.Minute, SleepAfter: 20 * time.Second, Faults: allFaults,
		Litefleet: "bin/litefleet", Window: 30 * time.Second, Grace: 15 * time.Second,
	}
}

func (c config) check() error {
	switch {
	case c.Hosts < 3:
		return fmt.Errorf("-hosts %d: give at least 3", c.Hosts)
	case c.Tenants < 1:
		return fmt.Errorf("-tenants %d: give at least 1", c.Tenants)
	case c.Duration < 30*time.Second:
		return fmt.Errorf("-duration %s: give at least 30s", c.Duration)
	}
	_, err := parseKinds(c.Faults)
	return err
}
