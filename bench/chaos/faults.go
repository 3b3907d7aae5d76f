package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/litefleet/litefleet/internal/faultproxy"
)

// The fault kinds.
const (
	fBlackHole = "blackhole" // a host's link accepts and never answers
	fRefuse    = "refuse"    // a host's connections are refused
	fSlow      = "slow"      // latency, and LTX writes applied 20-80 s late
	fStop      = "stop"      // SIGSTOP, SIGCONT later
	fKill      = "kill"      // SIGKILL, restarted later
	fSkew      = "skew"      // the Date a host sees is ±120 s off
	fNoCond    = "nocond"    // the server ignores If-Match / If-None-Match (every host)
	fDupHost   = "duphost"   // a second process with a partitioned host's -host name
	fMove      = "move"      // a tenant moved between hosts
	fFailover  = "failover"  // a host partitioned and its tenants restored onto their other copies
)

const allFaults = "blackhole,refuse,slow,stop,kill,skew,nocond,duphost,move,failover"

func parseKinds(s string) ([]string, error) {
	known := strings.Split(allFaults, ",")
	var out []string
	for k := range strings.SplitSeq(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(known, k) {
			return nil, fmt.Errorf("-faults: unknown kind %q (known: %s)", k, allFaults)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-faults: give at least one of %s", allFaults)
	}
	return out, nil
}

// fault is one scheduled fault.
type fault struct {
	ID     int
	At     time.Duration // since the faults began
	Kind   string
	Host   int // index of the target host
	Tenant int // for move
	For    time.Duration
	Skew   time.Duration
	Delay  time.Duration // slow: latency
	LateBy time.Duration // slow: how late writes land
}

func (f fault) String() string {
	s := fmt.Sprintf("+%s %s", f.At.Round(time.Second), f.Kind)
	switch f.Kind {
	case fMove:
		return s + fmt.Sprintf(" tenant#%d", f.Tenant)
	case fSkew:
		s += fmt.Sprintf(" h%d by %+ds", f.Host+1, int(f.Skew.Seconds()))
	case fSlow:
		s += fmt.Sprintf(" h%d latency %s late-by %s", f.Host+1, f.Delay, f.LateBy.Round(time.Second))
	case fNoCond:
	default:
		s += fmt.Sprintf(" h%d", f.Host+1)
	}
	return s + fmt.Sprintf(" for %s", f.For.Round(time.Second))
}

// schedule draws the faults of a run from the seed alone: the same seed
// gives the same schedule (what happens under it depends on timing).
func schedule(seed uint64, d time.Duration, hosts, tenants int, kinds []string) []fault {
	rnd := seedRand(seed, 1)
	var out []fault
	at := 15 * time.Second
	for id := 1; ; id++ {
		at += time.Duration(8+rnd.IntN(20)) * time.Second
		if at > d-20*time.Second {
			break
		}
		f := fault{ID: id, At: at, Kind: kinds[rnd.IntN(len(kinds))], Host: rnd.IntN(hosts), Tenant: rnd.IntN(tenants)}
		f.For = time.Duration(20+rnd.IntN(70)) * time.Second
		switch f.Kind {
		case fSkew:
			f.Skew = 120 * time.Second
			if rnd.IntN(2) == 0 {
				f.Skew = -f.Skew
			}
			f.For = time.Duration(60+rnd.IntN(60)) * time.Second
		case fSlow:
			f.Delay = time.Duration(200+rnd.IntN(1800)) * time.Millisecond
			f.LateBy = time.Duration(20+rnd.IntN(60)) * time.Second
		case fFailover:
			f.For = time.Duration(50+rnd.IntN(60)) * time.Second
		case fDupHost:
			// 45 s partitioned, up to 40 s of watching, 30 s more
			// partitioned, then both under one name.
			f.For = 150 * time.Second
		case fKill:
			f.For = time.Duration(2+rnd.IntN(30)) * time.Second
		case fMove:
			f.For = 0
		}
		// Never past the end: the run heals at d.
		f.For = min(f.For, d-at)
		out = append(out, f)
	}
	return out
}

// inject runs the schedule until ctx ends, then heals every fault.
func (h *harness) inject(ctx context.Context, faults []fault) {
	began := time.Now()
	var heals []func()
	done := make(chan func(), len(faults))
	for _, f := range faults {
		// Heal what comes due while waiting for the next fault.
		next := time.NewTimer(time.Until(began.Add(f.At)))
		tick := time.NewTicker(time.Second)
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case fn := <-done:
				fn()
			case <-next.C:
				break wait
			case <-tick.C:
				h.healQueued()
			}
		}
		next.Stop()
		tick.Stop()
		if ctx.Err() != nil {
			break
		}
		heal := h.apply(ctx, f)
		if heal == nil {
			continue
		}
		heals = append(heals, heal)
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(f.For):
				done <- heal
			}
		}()
	}
	// Heal the rest as they come due, until the end.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case fn := <-done:
			fn()
		case <-tick.C:
			h.healQueued()
		case <-ctx.Done():
		}
	}
	h.healQueued()
	for _, fn := range heals {
		fn()
	}
}

// apply starts a fault and returns its heal (idempotent), or nil when it
// was skipped.
func (h *harness) apply(ctx context.Context, f fault) func() {
	idents := h.baseIdents()
	r := h.rep(idents[f.Host%len(idents)])
	proxyFault := func(pf faultproxy.Faults, death bool) func() {
		r.mu.Lock()
		r.active[f.ID] = pf
		r.mu.Unlock()
		if err := r.applyFaults(); err != nil {
			h.note("fault %s: %v", f, err)
		}
		if death {
			h.death(r.ident, true)
		}
		return once(func() {
			r.mu.Lock()
			delete(r.active, f.ID)
			r.mu.Unlock()
			if err := r.applyFaults(); err != nil {
				h.note("heal %s: %v", f, err)
			}
			if death {
				h.death(r.ident, false)
			}
			h.logFault("healed: %s", f)
		})
	}
	var heal func()
	switch f.Kind {
	case fBlackHole:
		heal = proxyFault(faultproxy.Faults{Mode: faultproxy.BlackHole}, true)
	case fRefuse:
		heal = proxyFault(faultproxy.Faults{Mode: faultproxy.Refuse}, true)
	case fSlow:
		heal = proxyFault(faultproxy.Faults{Latency: f.Delay, LateP: 0.3, LateBy: f.LateBy}, false)
	case fSkew:
		heal = proxyFault(faultproxy.Faults{DateSkew: f.Skew}, false)
		// The skewed host gets current copies of the tenants it stands
		// by for, and their writers idle a while: if it takes them from
		// their live holders, it can go on with their histories.
		for _, t := range h.tenants {
			if slices.Contains(t.idents, r.ident) {
				standby := r.ident
				select {
				case t.ops <- func(ctx context.Context, w *writer) { h.refreshStandby(ctx, w, standby, 25*time.Second) }:
				default:
				}
			}
		}
	case fNoCond:
		var heals []func()
		for _, id := range idents {
			rr := h.rep(id)
			rr.mu.Lock()
			rr.active[f.ID] = faultproxy.Faults{StripConditional: true}
			rr.mu.Unlock()
			_ = rr.applyFaults()
			heals = append(heals, func() {
				rr.mu.Lock()
				delete(rr.active, f.ID)
				rr.mu.Unlock()
				_ = rr.applyFaults()
			})
		}
		heal = once(func() {
			for _, fn := range heals {
				fn()
			}
			h.logFault("healed: %s", f)
		})
	case fStop:
		r.mu.Lock()
		busy := r.stopped || r.killed
		r.mu.Unlock()
		if busy || !r.running() {
			h.logFault("skipped (already stopped or killed): %s", f)
			return nil
		}
		r.signal(syscall.SIGSTOP)
		h.death(r.ident, true)
		heal = once(func() {
			r.signal(syscall.SIGCONT)
			h.death(r.ident, false)
			h.logFault("healed: %s", f)
		})
	case fKill:
		r.mu.Lock()
		busy := r.stopped || r.killed
		r.mu.Unlock()
		if busy || !r.running() {
			h.logFault("skipped (already stopped or killed): %s", f)
			return nil
		}
		r.kill()
		h.death(r.ident, true)
		heal = once(func() {
			if err := h.start(r); err != nil {
				h.note("restart %s: %v", r.ident, err)
			}
			h.death(r.ident, false)
			h.logFault("healed (restarted): %s", f)
		})
	case fDupHost:
		heal = h.dupHost(ctx, f, r)
	case fFailover:
		partition := proxyFault(faultproxy.Faults{Mode: faultproxy.BlackHole}, true)
		// The operator restores the partitioned host's tenants onto
		// their other copies a few seconds in.
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			for _, t := range h.tenants {
				if host, err := h.holderHost(ctx, t.name); err == nil && host == r.host {
					from := r.ident
					select {
					case t.ops <- func(ctx context.Context, w *writer) { h.failover(ctx, w, from) }:
					default:
					}
				}
			}
		}()
		heal = partition
	case fMove:
		t := h.tenants[f.Tenant%len(h.tenants)]
		select {
		case t.ops <- func(ctx context.Context, w *writer) { h.move(ctx, w) }:
		default:
		}
		h.logFault("%s (%s)", f, t.name)
		return nil
	}
	h.logFault("%s", f)
	return heal
}

// dupHost plays an operator who counts a partitioned host dead and starts
// its replacement under the same -host name (issue 17, case 4): the host
// is black-holed; 45 s later (its heartbeat stale) a second process starts
// under its name over restores of the tenants it holds. The replacement
// watches the old heartbeat for 40 s before it takes the name and adopts
// the claims; the writers move to it only once it says it replicates
// their tenant (holder), not when it starts: until then the claim is the
// partitioned host's. 30 s after the replacement took the name (or 60 s
// after it started, if it did not) the partition heals, and both run
// under one name until the fault ends. Then the writers leave the
// replacement, it is stopped (SIGTERM), its tenants are restored onto the
// host again and the writers come back to it.
func (h *harness) dupHost(ctx context.Context, f fault, r *replicator) func() {
	ident := fmt.Sprintf("%s-dup%d", r.ident, f.ID)
	r.mu.Lock()
	r.active[f.ID] = faultproxy.Faults{Mode: faultproxy.BlackHole}
	r.mu.Unlock()
	_ = r.applyFaults()
	h.death(r.ident, true)
	healHost := once(func() {
		r.mu.Lock()
		delete(r.active, f.ID)
		r.mu.Unlock()
		_ = r.applyFaults()
		h.death(r.ident, false)
		h.logFault("duphost: %s's partition healed", r.ident)
	})
	var mu sync.Mutex
	var d *replicator
	var tookName bool // the replacement took the name: the original is fenced for good
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-stopped:
			return
		case <-time.After(45 * time.Second):
		}
		mu.Lock()
		var err error
		if d, err = h.newReplicator(ident, r.host, h.cfg.Seed+uint64(f.ID)); err != nil {
			mu.Unlock()
			h.note("duphost: %v", err)
			return
		}
		for _, t := range h.tenants {
			if host, err := h.holderHost(ctx, t.name); err == nil && host == r.host {
				if err := h.restoreOnto(ctx, t, d); err != nil {
					h.say("duphost: %v", err)
					continue
				}
				t.bumpGen(ident)
			}
		}
		h.mu.Lock()
		h.dupSpans[r.host] = append(h.dupSpans[r.host], interval{Start: time.Now()})
		span := len(h.dupSpans[r.host]) - 1
		h.mu.Unlock()
		err = h.start(d)
		dup := d
		mu.Unlock()
		if err != nil {
			h.note("duphost: %v", err)
			return
		}
		h.logFault("duphost: %s started under -host %s while %s is partitioned", ident, r.host, r.ident)
		took := h.waitTookName(ctx, dup, stopped, 60*time.Second)
		mu.Lock()
		tookName = took
		mu.Unlock()
		var after time.Duration
		switch {
		case took:
			h.logFault("duphost: %s took the name %s and replicates its tenants; the writers follow the claims", ident, r.host)
			after = 30 * time.Second
		case !dup.running():
			h.mu.Lock()
			h.dupSpans[r.host][span].End = time.Now()
			h.mu.Unlock()
			h.logFault("duphost: %s under -host %s refused at start: %s", ident, r.host, lastLogLine(filepath.Join(h.work, ident+".log")))
		default:
			h.logFault("duphost: %s under -host %s replicates nothing 60s after its start", ident, r.host)
		}
		select {
		case <-ctx.Done():
		case <-stopped:
		case <-time.After(after):
			// The heal runs on the injector's goroutine; this one only
			// lifts the black hole, which the heal does again harmlessly.
			h.healSoon(healHost)
		}
	}()
	return once(func() {
		close(stopped)
		mu.Lock()
		defer mu.Unlock()
		h.healQueued()
		healHost()
		if d == nil {
			h.logFault("healed: %s", f)
			return
		}
		// The writers leave the replacement before it stops.
		h.mu.Lock()
		h.hostIdent[r.host] = ""
		h.mu.Unlock()
		time.Sleep(5 * time.Second)
		clean := d.stop(60 * time.Second)
		h.mu.Lock()
		for i := range h.dupSpans[r.host] {
			if h.dupSpans[r.host][i].End.IsZero() {
				h.dupSpans[r.host][i].End = time.Now()
			}
		}
		h.mu.Unlock()
		// A process whose name was taken is fenced for good (it never
		// writes again under a name another process used): the operator
		// restarts it once the replacement is gone, before giving it the
		// replacement's tenants. The slot counts as killed meanwhile, so
		// that the supervisor does not take the stop for an exit.
		restart := tookName && r.running()
		if restart {
			r.mu.Lock()
			r.killed = true
			r.mu.Unlock()
			if !r.stop(60 * time.Second) {
				h.note("duphost: %s did not exit within 60s of SIGTERM (killed)", r.ident)
			}
		}
		for _, t := range h.tenants {
			t.mu.Lock()
			n := len(t.hist.epochs)
			onDup := n > 0 && t.hist.epochs[n-1].Ident == ident
			t.mu.Unlock()
			if !onDup {
				continue
			}
			if err := h.restoreOnto(ctx, t, r); err != nil {
				h.say("duphost: back onto %s: %v", r.ident, err)
				continue
			}
			t.bumpGen(r.ident)
		}
		if restart {
			if err := h.start(r); err != nil {
				h.note("duphost: restart %s: %v", r.ident, err)
			}
		}
		h.mu.Lock()
		h.hostIdent[r.host] = r.ident
		h.mu.Unlock()
		h.logFault("healed: %s (%s stopped, clean exit %t; its tenants restored onto %s; %s restarted: %t)", f, ident, clean, r.ident, r.ident, restart)
	})
}

// waitTookName waits until the replacement d says in /status that it
// replicates a tenant (it took the host name and adopted the claims), it
// exits, the fault ends, or timeout passes; it reports whether it did.
func (h *harness) waitTookName(ctx context.Context, d *replicator, stopped <-chan struct{}, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && d.running() {
		if st, err := d.pollStatus(ctx); err == nil {
			for _, s := range st {
				if s.State == "replicating" || s.State == "sleeping" {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-stopped:
			return false
		case <-time.After(time.Second):
		}
	}
	return false
}

// healSoon queues a heal for the injector's goroutine, which runs every
// heal: the heals share its state unlocked.
func (h *harness) healSoon(fn func()) {
	h.mu.Lock()
	h.pending = append(h.pending, fn)
	h.mu.Unlock()
}

// healQueued runs the queued heals (on the injector's goroutine).
func (h *harness) healQueued() {
	h.mu.Lock()
	q := h.pending
	h.pending = nil
	h.mu.Unlock()
	for _, fn := range q {
		fn()
	}
}

// lastLogLine is the last line of a replicator's log.
func lastLogLine(path string) string {
	b, _ := os.ReadFile(path)
	return lastLine(string(b))
}

// death records when a slot became dead to the others, and when it came
// back (a fault on it ended; overlapping faults count as one).
func (h *harness) death(ident string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ds := h.deaths[ident]
	now := time.Now()
	if on {
		if n := len(ds); n > 0 && ds[n-1].End.IsZero() {
			return
		}
		h.deaths[ident] = append(ds, interval{Start: now})
		return
	}
	if n := len(ds); n > 0 && ds[n-1].End.IsZero() {
		// Another death fault may still hold it; the interval ends
		// when the last one does, which the slot's state tells.
		r := h.reps[ident]
		r.mu.Lock()
		still := r.stopped || r.killed
		for _, a := range r.active {
			still = still || a.Mode != faultproxy.Pass
		}
		r.mu.Unlock()
		if !still {
			ds[n-1].End = now
		}
	}
}

func (h *harness) logFault(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.say("fault %s", msg)
	h.mu.Lock()
	h.schedule = append(h.schedule, fmt.Sprintf("%s %s", time.Now().Format("15:04:05"), msg))
	h.mu.Unlock()
}

// baseIdents are the slots h1..hN, without duplicates.
func (h *harness) baseIdents() []string {
	out := make([]string, h.cfg.Hosts)
	for i := range out {
		out[i] = fmt.Sprintf("h%d", i+1)
	}
	return out
}

func once(fn func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			fn()
		}
	}
}
