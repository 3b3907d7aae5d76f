package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/litefleet/litefleet/internal/faultproxy"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/s3conn"
)

// result is a run's verdict.
type result struct {
	Passed, Failed int
	Summary        string // the one-line summary
	Work           string
}

// run runs the harness once: setup, faults for cfg.Duration, heal,
// settle, checks. It returns an error only when the run could not be
// made; invariant failures are in the result.
func run(ctx context.Context, cfg config, out io.Writer) (*result, error) {
	kinds, err := parseKinds(cfg.Faults)
	if err != nil {
		return nil, err
	}
	h := &harness{cfg: cfg, out: out, began: time.Now(), reps: map[string]*replicator{}, hostIdent: map[string]string{},
		deaths: map[string][]interval{}, pids: map[int]string{}, dupSpans: map[string][]interval{}}
	h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := h.prepare(); err != nil {
		return nil, err
	}
	if _, err := s3conn.AdoptCABundle(); err != nil {
		return nil, err
	}
	if err := h.startS3(); err != nil {
		h.stopS3()
		return nil, err
	}
	defer h.stopS3()
	if h.writesLog, err = os.Create(filepath.Join(h.work, "writes.tsv")); err != nil {
		return nil, err
	}
	defer h.writesLog.Close()
	defer h.killAll()

	faults := schedule(cfg.Seed, cfg.Duration, cfg.Hosts, cfg.Tenants, kinds)
	h.say("chaos seed=%d duration=%s hosts=%d tenants=%d work=%s", cfg.Seed, cfg.Duration, cfg.Hosts, cfg.Tenants, h.work)
	h.say("schedule (%d faults):", len(faults))
	for _, f := range faults {
		h.say("  %s", f)
	}
	if err := h.setup(ctx); err != nil {
		return nil, err
	}

	// The run: writers, observers, faults.
	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	defer stopRun()
	writeCtx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	var writers, obs sync.WaitGroup
	for i, t := range h.tenants {
		w := &writer{h: h, t: t, rnd: seedRand(cfg.Seed, uint64(100+i))}
		writers.Go(func() { w.run(writeCtx) })
	}
	obs.Go(func() { h.observe(obsCtx) })
	h.inject(runCtx, faults) // returns at the end, every fault healed
	h.say("faults over: every fault healed; stopping the writers")
	stopWriters()
	writers.Wait()
	for _, id := range h.baseIdents() {
		if r := h.rep(id); !r.running() {
			h.note("%s was not running after the heal: started again", id)
			_ = h.start(r)
		}
	}
	synced := h.settle(ctx)
	stopObs()
	obs.Wait()
	h.say("stopping the replicators (SIGTERM)")
	for _, id := range h.baseIdents() {
		r := h.rep(id)
		r.mu.Lock()
		r.managed = false
		r.mu.Unlock()
	}
	var stops sync.WaitGroup
	h.mu.Lock()
	for _, r := range h.reps {
		stops.Go(func() {
			if !r.stop(60 * time.Second) {
				h.note("%s did not exit within 60s of SIGTERM (killed)", r.ident)
			}
		})
	}
	h.mu.Unlock()
	stops.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res := h.check(context.Background(), faults, synced)
	return res, nil
}

// prepare finds the tools and makes the work folder.
func (h *harness) prepare() error {
	var err error
	if h.vgwBin, err = s3test.FindTool("versitygw"); err != nil {
		return fmt.Errorf("%w: run `make tools`", err)
	}
	if h.lsBin, err = s3test.FindTool("litestream"); err != nil {
		return fmt.Errorf("%w: run `make tools`", err)
	}
	if _, err := os.Stat(h.cfg.Litefleet); err != nil {
		h.say("building %s (make build)", h.cfg.Litefleet)
		build := exec.Command("go", "build", "-o", h.cfg.Litefleet, "./cmd/litefleet")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Dir = repoRoot()
		if b, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build litefleet: %w\n%s", err, b)
		}
	}
	if h.cfg.Litefleet, err = filepath.Abs(h.cfg.Litefleet); err != nil {
		return err
	}
	h.work = h.cfg.Work
	if h.work == "" {
		h.work = filepath.Join(repoRoot(), "bench", "results", fmt.Sprintf("chaos-%d-%s", h.cfg.Seed, time.Now().UTC().Format("20060102-150405")))
	}
	if h.work, err = filepath.Abs(h.work); err != nil {
		return err
	}
	return os.MkdirAll(h.work, 0o755)
}

// repoRoot is the folder holding go.mod, from the working directory up.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// setup creates the slots, the tenants' first copies, starts the
// replicators, waits for the first uploads, and restores each tenant onto
// its second slot.
func (h *harness) setup(ctx context.Context) error {
	for i, id := range h.baseIdents() {
		r, err := h.newReplicator(id, id, h.cfg.Seed+uint64(i))
		if err != nil {
			return err
		}
		h.hostIdent[id] = id
		r.managed = true
	}
	rnd := seedRand(h.cfg.Seed, 2)
	idents := h.baseIdents()
	for i := range h.cfg.Tenants {
		name := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rnd.Uint32(), rnd.IntN(1<<16), rnd.IntN(1<<12), rnd.IntN(1<<12), rnd.Uint64()&(1<<48-1))
		t := &tenant{name: name, big: i == 0 && h.cfg.BigMB > 0, idents: []string{idents[i%len(idents)], idents[(i+1)%len(idents)]},
			hist: newHistory(name), gen: map[string]int{}, ops: make(chan func(context.Context, *writer), 4), confirmed: map[int64]bool{}}
		n, size := 5, 200
		if t.big {
			size = 8000
			n = h.cfg.BigMB << 20 / size
			// Its first host's uplink is slow: the first snapshot takes
			// longer than a host is given to finish a write.
			r := h.rep(t.idents[0])
			r.base = faultproxy.Faults{Bandwidth: h.cfg.Bandwidth}
			_ = r.applyFaults()
		}
		seed, err := createDB(filepath.Join(h.rep(t.idents[0]).dir, name+".db"), t.idents[0], n, size)
		if err != nil {
			return err
		}
		now := time.Now()
		t.hist.epochs = []*epoch{{N: 0, Ident: t.idents[0], FirstID: 1, Base: map[int64]string{}, Start: now}}
		for id := range seed {
			t.hist.rows[id] = &row{ID: id, Ident: t.idents[0], Epoch: 0, At: now, Acked: true, Held: true}
		}
		t.nextID = int64(n) + 1
		h.tenants = append(h.tenants, t)
		h.say("tenant %s: %d rows on %s, standby %s%s", name, n, t.idents[0], t.idents[1], map[bool]string{true: fmt.Sprintf(" (the bigger one, %d MB, its host's uplink %d KB/s)", h.cfg.BigMB, h.cfg.Bandwidth>>10)}[t.big])
	}
	for _, id := range idents {
		if err := h.start(h.rep(id)); err != nil {
			return err
		}
	}
	// The first uploads: a claim by the first host and an LTX file.
	deadline := time.Now().Add(90 * time.Second)
	pending := slices.Clone(h.tenants)
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		pending = slices.DeleteFunc(pending, func(t *tenant) bool {
			host, _ := h.holderHost(ctx, t.name)
			txids, _ := h.listTXIDs(ctx, t.name)
			return host == t.idents[0] && len(txids) > 0
		})
		time.Sleep(time.Second)
	}
	for _, t := range pending {
		h.note("setup: %s not replicated by %s within 90s of the start; no standby copy made", t.name, t.idents[0])
	}
	for _, t := range h.tenants {
		if slices.Contains(pending, t) {
			t.idents = t.idents[:1]
			continue
		}
		if err := h.restoreOnto(ctx, t, h.rep(t.idents[1])); err != nil {
			return err
		}
		t.gen[t.idents[1]] = 1
	}
	h.say("setup done: %d tenants, each on two hosts", len(h.tenants))
	return ctx.Err()
}

// settle waits until every tenant's replica holds every acknowledged row
// of its last epoch, or cfg.Settle passes; it returns the tenants that did.
func (h *harness) settle(ctx context.Context) map[string]bool {
	h.say("settling: up to %s for every acknowledged row to reach S3", h.cfg.Settle)
	synced := map[string]bool{}
	missing := map[string]int{}
	deadline := time.Now().Add(h.cfg.Settle)
	for ctx.Err() == nil {
		for _, t := range h.tenants {
			if synced[t.name] {
				continue
			}
			want := map[int64]bool{}
			t.mu.Lock()
			last := len(t.hist.epochs) - 1
			for _, r := range t.hist.rows {
				if r.Acked && r.Epoch == last {
					want[r.ID] = true
				}
			}
			t.mu.Unlock()
			got, err := h.restoreRows(ctx, t.name, 0, false)
			missing[t.name] = len(missingFrom(want, got))
			if err == nil && missing[t.name] == 0 {
				synced[t.name] = true
			}
		}
		if len(synced) == len(h.tenants) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	h.say("settled: %d of %d tenants hold every acknowledged row of their last epoch", len(synced), len(h.tenants))
	for _, t := range h.tenants {
		if !synced[t.name] {
			h.say("  %s: its replica lacks %d acknowledged rows of its last epoch", t.name, missing[t.name])
		}
	}
	return synced
}

// killAll kills whatever replicator still runs and closes the proxies
// (the end of a run, or an error or signal on the way).
func (h *harness) killAll() {
	h.mu.Lock()
	reps := slices.Collect(maps.Values(h.reps))
	h.mu.Unlock()
	for _, r := range reps {
		if r.running() {
			r.signal(syscall.SIGCONT)
			r.kill()
		}
		_ = r.proxy.Close()
	}
}

// integrity runs PRAGMA integrity_check on a database file.
func integrity(path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(`PRAGMA integrity_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		msgs = append(msgs, s)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return fmt.Errorf("integrity_check: %s", strings.Join(msgs, "; "))
	}
	return nil
}
