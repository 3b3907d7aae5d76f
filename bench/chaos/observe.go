package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/litefleet/litefleet/hosts"
)

// claimStats counts what invariant 3 saw.
type claimStats struct {
	seen, checked, restores, dropped int
	bySource                         map[string]int
	violations                       []string
	violationCount                   int
}

// observe polls every status a user could read until ctx ends: each
// replicator's /status every 2 s, the host records every 6 s, `ls -json`
// every 20 s; each "in sync" (lag 0) is a claim checked against S3.
func (h *harness) observe(ctx context.Context) {
	claims := make(chan claim, 512)
	var wg sync.WaitGroup
	wg.Go(func() { h.checkClaims(ctx, claims) })
	send := func(c claim) {
		select {
		case claims <- c:
		default:
			h.mu.Lock()
			h.claims.dropped++
			h.mu.Unlock()
		}
	}
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for ctx.Err() == nil {
			h.mu.Lock()
			var reps []*replicator
			for _, r := range h.reps {
				reps = append(reps, r)
			}
			h.mu.Unlock()
			h.supervise()
			for _, r := range reps {
				r.mu.Lock()
				skip := r.stopped || r.killed
				r.mu.Unlock()
				if skip || !r.running() {
					continue
				}
				at := time.Now()
				st, err := r.pollStatus(ctx)
				if err != nil {
					continue
				}
				for _, s := range st {
					if (s.State == "replicating" || s.State == "sleeping") && s.LagTXIDs == 0 && s.Lag == 0 {
						send(claim{At: at, Source: "/status", Ident: r.ident, Tenant: s.Tenant,
							Detail: fmt.Sprintf("state %s, local %d = replicated %d, lag 0", s.State, s.LocalTXID, s.ReplicatedTXID)})
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(6 * time.Second)
		defer tick.Stop()
		seen := map[string]time.Time{} // a record read again says nothing new
		for ctx.Err() == nil {
			for _, host := range h.baseIdents() {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				rec, err := hosts.ReadRecord(rctx, h.api, bucket, host)
				cancel()
				if err != nil || rec == nil || rec.At.Equal(seen[host]) {
					continue
				}
				seen[host] = rec.At
				// The record names the process that wrote it: two may
				// run under one -host.
				h.mu.Lock()
				ident, ok := h.pids[rec.PID]
				h.mu.Unlock()
				if !ok {
					continue
				}
				for _, t := range rec.Tenants {
					if (t.State == "replicating" || t.State == "sleeping") && t.Local == t.Replicated && t.LagMillis == 0 && t.Replicated > 0 {
						send(claim{At: rec.At, Source: "host record", Ident: ident, Tenant: t.Name,
							Detail: fmt.Sprintf("record of %s at %s: %s, local %d = replicated %d", host, rec.At.Format("15:04:05"), t.State, t.Local, t.Replicated)})
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})
	wg.Go(func() {
		// The claims' holders (and the process under a host name that
		// holds them), for the exemptions of invariant 1.
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for ctx.Err() == nil {
			for _, t := range h.tenants {
				_, _ = h.holder(ctx, t)
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Second)
		defer tick.Stop()
		for ctx.Err() == nil {
			at := time.Now()
			for _, c := range h.lsClaims(ctx) {
				c.At = at
				send(c)
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})
	wg.Wait()
}

// lsClaims runs `litefleet ls -json` over the bucket and returns its
// tenants said to be in sync.
func (h *harness) lsClaims(ctx context.Context) []claim {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.cfg.Litefleet, "ls", "-bucket", bucket, "-endpoint", h.s3.Endpoint, "-json", "-no-cache")
	cmd.Env = h.env(false)
	b, err := cmd.Output()
	if len(b) == 0 && err != nil {
		return nil
	}
	var doc struct {
		Tenants []struct {
			Tenant   string `json:"tenant"`
			Status   string `json:"status"`
			Host     string `json:"host"`
			LagTXIDs uint64 `json:"lag_txids"`
		} `json:"tenants"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil
	}
	var out []claim
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range doc.Tenants {
		if t.Status == "in sync" && t.Host != "" && h.hostIdent[t.Host] == t.Host && !h.dupRanLocked(t.Host, time.Now().Add(-time.Minute)) {
			out = append(out, claim{Source: "ls -json", Ident: h.hostIdent[t.Host], Tenant: t.Tenant, Detail: "ls -json: in sync, host " + t.Host})
		}
	}
	return out
}

// checkClaims checks each claim: the rows the replica must hold (see
// required) against a restore of the replica made after the claim. S3
// only grows along one history, so a row missing then was missing at the
// claim.
func (h *harness) checkClaims(ctx context.Context, claims <-chan claim) {
	lastReport := map[string]time.Time{}
	for {
		var c claim
		select {
		case <-ctx.Done():
			return
		case c = <-claims:
		}
		t := h.tenant(c.Tenant)
		if t == nil || c.Ident == "" {
			continue
		}
		gen := t.copyGen(c.Ident)
		t.mu.Lock()
		req := required(t.hist, c.Ident, gen, c.At, h.cfg.Window)
		for id := range req {
			if t.confirmed[id] {
				delete(req, id)
			}
		}
		t.mu.Unlock()
		h.mu.Lock()
		h.claims.seen++
		if h.claims.bySource == nil {
			h.claims.bySource = map[string]int{}
		}
		h.claims.bySource[c.Source]++
		h.mu.Unlock()
		if len(req) == 0 {
			continue
		}
		// One restore per tenant every 5 s at most; it must begin after
		// the claim.
		if wait := time.Until(t.lastRestore.Add(5 * time.Second)); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		t.lastRestore = time.Now()
		got, err := h.restoreRows(ctx, t.name, 0, false)
		if err != nil {
			continue
		}
		t.mu.Lock()
		for id := range got {
			t.confirmed[id] = true
		}
		t.mu.Unlock()
		missing := missingFrom(req, got)
		h.mu.Lock()
		h.claims.checked++
		h.claims.restores++
		if len(missing) > 0 {
			h.claims.violationCount++
			key := c.Tenant + "|" + c.Ident + "|" + c.Source
			if time.Since(lastReport[key]) > 30*time.Second {
				lastReport[key] = time.Now()
				t.mu.Lock()
				oldest := c.At.Sub(t.hist.rows[missing[0]].At).Round(time.Second)
				t.mu.Unlock()
				v := fmt.Sprintf("%s %s on %s said in sync at %s (%s), and S3 at %s lacked %d rows acknowledged on that copy at least %s before (ids %s; the oldest %s before)",
					c.Tenant, c.Source, c.Ident, c.At.Format("15:04:05"), c.Detail, t.lastRestore.Format("15:04:05"), len(missing), h.cfg.Window, idList(missing), oldest)
				h.claims.violations = append(h.claims.violations, v)
				h.mu.Unlock()
				h.say("INVARIANT 3 VIOLATED: %s", v)
				continue
			}
		}
		h.mu.Unlock()
	}
}

func (h *harness) tenant(name string) *tenant {
	for _, t := range h.tenants {
		if t.name == name {
			return t
		}
	}
	return nil
}

// supervise starts again, 5 s after it was noticed, a managed replicator
// that exited by itself (not killed by a fault), as systemd's
// Restart=always would; each exit is noted with the last line it logged.
func (h *harness) supervise() {
	for _, id := range h.baseIdents() {
		r := h.rep(id)
		r.mu.Lock()
		exited := r.managed && r.cmd != nil && !r.killed
		if exited {
			select {
			case <-r.done:
			default:
				exited = false
			}
		}
		seen := r.exitSeen
		r.mu.Unlock()
		if !exited {
			continue
		}
		if seen.IsZero() {
			r.mu.Lock()
			r.exitSeen = time.Now()
			r.mu.Unlock()
			h.death(id, true)
			h.note("%s exited by itself: %s", id, lastLogLine(filepath.Join(h.work, id+".log")))
			continue
		}
		if time.Since(seen) >= 5*time.Second {
			r.mu.Lock()
			r.exitSeen = time.Time{}
			r.mu.Unlock()
			if err := h.start(r); err != nil {
				h.note("restart %s: %v", id, err)
			}
			h.death(id, false)
		}
	}
}

// liveTakeovers scans the replicators' logs for takeovers of a host that
// no fault had made dead to the others for the 30 s before (a host is
// dead after 40 s without a heartbeat): what clock skew or a stale
// listing does (issue 17, cases 1 and 4).
func (h *harness) liveTakeovers() []string {
	rx := regexp.MustCompile(`^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) .*took over tenant from a dead host: db=(\S+) from=(\S+)`)
	h.mu.Lock()
	deaths := maps.Clone(h.deaths)
	var idents []string
	for id := range h.reps {
		idents = append(idents, id)
	}
	h.mu.Unlock()
	slices.Sort(idents)
	var out []string
	for _, id := range idents {
		b, _ := os.ReadFile(filepath.Join(h.work, id+".log"))
		for _, line := range strings.Split(string(b), "\n") {
			m := rx.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			at, err := time.ParseInLocation("2006/01/02 15:04:05", m[1], time.Local)
			if err != nil {
				continue
			}
			dead := false
			for _, d := range deaths[m[3]] {
				if d.Start.Before(at.Add(-30*time.Second)) && (d.End.IsZero() || d.End.After(at.Add(-10*time.Second))) {
					dead = true
				}
			}
			if !dead {
				out = append(out, fmt.Sprintf("%s took %s from %s at %s, but no fault had cut %s off for the 30 s before", id, m[2], m[3], m[1][11:], m[3]))
			}
		}
	}
	return out
}

// dupRanLocked says whether a second process ran under host since a
// time: ls names hosts, not processes. h.mu is held.
func (h *harness) dupRanLocked(host string, since time.Time) bool {
	for _, d := range h.dupSpans[host] {
		if d.End.IsZero() || d.End.After(since) {
			return true
		}
	}
	return false
}
