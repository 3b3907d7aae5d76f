package replication

import (
	"os"
	"slices"
	"time"

	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/verify"
)

// Continuous verification (-verify-every): the host proves its own
// tenants' replicas restore to what it replicated, one tenant at a time,
// spread evenly over the period, from a goroutine of its own that takes
// no job slot and no tenant's lock: replication never waits for it. Each
// tenant's verdict and time go into the host record (ls, inspect, the UI)
// and the status (/metrics); a failed one is an ERROR line naming it.

// verifyLoop verifies, every VerifyEvery / n, the next tenant of a round:
// the n tenants this host held when the round began, verified longest ago
// (or never) first. One walk of the fleet a round, not one a tenant: at
// 100,000 tenants and a day's period a tenant's turn comes every 0.9 s.
func (e *Engine) verifyLoop() {
	defer e.wg.Done()
	var round []*tenant
	var wait time.Duration
	for {
		if len(round) == 0 {
			round = e.verifyRound()
			wait = e.opt.VerifyEvery
			if n := len(round); n > 0 {
				wait /= time.Duration(n)
			} else {
				// None yet (the tenants are starting): look again soon,
				// not a whole period later.
				wait = min(wait, e.opt.Sweep)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-e.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if len(round) == 0 {
			continue
		}
		t := round[0]
		round = round[1:]
		e.mu.Lock()
		ok := t.verifiable()
		e.mu.Unlock()
		if ok {
			e.verifyTenant(t)
		}
	}
}

// verifiable: t is replicated by this host and has something in S3. The
// engine's lock is held.
func (t *tenant) verifiable() bool {
	return t.wanted && t.replTXID != 0 && (t.state == StateReplicating || t.state == StateSleeping)
}

// verifyRound lists the tenants to verify in the next round, verified
// longest ago (or never) first.
func (e *Engine) verifyRound() []*tenant {
	type entry struct {
		t  *tenant
		at time.Time
	}
	e.mu.Lock()
	var list []entry
	for _, t := range e.byPath {
		if t.verifiable() {
			list = append(list, entry{t, t.verifiedAt})
		}
	}
	e.mu.Unlock()
	slices.SortFunc(list, func(a, b entry) int { return a.at.Compare(b.at) })
	out := make([]*tenant, len(list))
	for i := range list {
		out[i] = list[i].t
	}
	return out
}

// verifyTenant verifies one tenant against this host's own knowledge of
// it: the TXID S3 acknowledged and the database's checksum there.
func (e *Engine) verifyTenant(t *tenant) {
	e.mu.Lock()
	name, conn, repl, path, asleep := t.name, t.target.Conn, t.replTXID, t.path, t.run == nil
	txid, sum, known := t.checksum()
	e.mu.Unlock()
	if !known && asleep {
		// Asleep since this process started: its page table, saved beside
		// Litestream's state, knows the checksum (a file, not the database).
		if txid, sum, known = loadPageTable(path).checksum(); known {
			e.mu.Lock()
			if t.run == nil && !t.digestOK {
				t.digestTXID, t.digest, t.digestOK = txid, sum, true
			}
			e.mu.Unlock()
		}
	}
	exp := &verify.Expected{Host: e.opt.Host, TXID: repl, Live: true}
	if known && uint64(txid) == repl {
		exp.Checksum = sum.String()
	}
	r, err := e.runVerify(name, conn, exp)
	if e.ctx.Err() != nil {
		return
	}
	if err != nil {
		e.log.Warn("verify could not run", "db", name, "error", err)
		r = &verify.Report{Tenant: name, Verdict: verify.Unverifiable, Reason: err.Error()}
	}
	e.mu.Lock()
	t.verifiedAt, t.verdict = e.opt.Now(), r.Verdict
	if verify.Failed(r.Verdict) {
		t.verifyFailures++
	}
	e.recDirty[t] = true // the host record says it at the next beat
	e.mu.Unlock()
	switch {
	case verify.Failed(r.Verdict):
		e.log.Error("verify failed", "db", name, "verdict", r.Verdict, "txid", r.TXIDHex, "reason", r.Reason)
	default:
		e.log.Debug("verify", "db", name, "verdict", r.Verdict, "txid", r.TXIDHex, "ms", r.DurationMS)
	}
}

func (e *Engine) runVerify(name string, conn s3conn.Conn, exp *verify.Expected) (*verify.Report, error) {
	client, err := e.client(e.ctx, conn)
	if err != nil {
		return nil, err
	}
	return verify.Tenant(e.ctx, client, verify.Options{Conn: conn, Expected: exp, TempDir: os.TempDir(), Now: e.opt.Now, Bandwidth: e.verifyCap}, name)
}
