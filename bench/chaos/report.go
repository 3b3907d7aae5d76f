package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// verdict is one invariant's result.
type verdict struct {
	N        int
	Name     string
	Pass     bool
	Numbers  string
	Evidence []string
}

// check runs the four checks on the stopped fleet and prints them.
func (h *harness) check(ctx context.Context, faults []fault, synced map[string]bool) *result {
	h.mu.Lock()
	deaths := maps.Clone(h.deaths)
	hostOf := map[string]string{}
	for id, r := range h.reps {
		hostOf[id] = r.host
	}
	writes := slices.Clone(h.writes)
	h.mu.Unlock()
	for _, t := range h.tenants {
		// Did host go on with the tenant's history after a time: a
		// successful LTX upload of it through a process of that host.
		uploaded := func(to string, after time.Time) bool {
			for _, w := range writes {
				if (hostOf[w.Proxy] == to || w.Proxy == to) && w.Method == "PUT" && w.Status/100 == 2 && w.End.After(after) &&
					strings.Contains(w.Key, "/"+t.name+"/") && strings.HasSuffix(w.Key, ".ltx") {
					return true
				}
			}
			return false
		}
		t.mu.Lock()
		acked := func(ident string, before time.Time) (time.Time, bool) {
			if r := h.rep(ident); r != nil {
				return r.ackedBefore(t.name, before)
			}
			return time.Time{}, false
		}
		exempt(t.hist, hostOf, deaths, slices.Clone(t.changes), uploaded, h.cfg.Grace, acked)
		t.mu.Unlock()
	}
	// Claim churn: a host writing a tenant's claim over and over.
	churn := map[string]int{}
	for _, w := range writes {
		if strings.HasSuffix(w.Key, "/lock.json") && w.Method == "PUT" && w.Status/100 == 2 {
			churn[w.Proxy+" "+strings.TrimSuffix(strings.TrimPrefix(w.Key, bucket+"/"+prefix), "/lock.json")]++
		}
	}
	for _, k := range slices.Sorted(maps.Keys(churn)) {
		if churn[k] > 50 {
			h.note("claim churn: %s wrote the claim of %s %d times", strings.Fields(k)[0], strings.Fields(k)[1], churn[k])
		}
	}
	for _, l := range h.liveTakeovers() {
		h.note("takeover of a live host: %s", l)
	}
	vs := []verdict{h.checkRestorable(ctx), h.checkHistories(ctx), h.checkStatuses(), h.checkIntegrity()}

	var b strings.Builder
	fmt.Fprintf(&b, "\nchaos seed=%d duration=%s hosts=%d tenants=%d work=%s\n", h.cfg.Seed, h.cfg.Duration, h.cfg.Hosts, h.cfg.Tenants, h.work)
	fmt.Fprintf(&b, "faults as applied:\n")
	h.mu.Lock()
	for _, s := range h.schedule {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	notes := slices.Clone(h.notes)
	h.mu.Unlock()
	var unsynced []string
	for _, t := range h.tenants {
		if !synced[t.name] {
			unsynced = append(unsynced, t.name)
		}
	}
	if len(unsynced) > 0 {
		notes = append(notes, fmt.Sprintf("%d tenants did not hold every row of their last epoch within %s of the heal: %s", len(unsynced), h.cfg.Settle, strings.Join(unsynced, " ")))
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	res := &result{Work: h.work}
	for _, v := range vs {
		word := "PASS"
		if v.Pass {
			res.Passed++
		} else {
			res.Failed++
			word = "FAIL"
		}
		fmt.Fprintf(&b, "%s %d. %s: %s\n", word, v.N, v.Name, v.Numbers)
		for i, e := range v.Evidence {
			if i == 20 {
				fmt.Fprintf(&b, "     … %d more (report.txt)\n", len(v.Evidence)-20)
				break
			}
			fmt.Fprintf(&b, "     %s\n", e)
		}
	}
	kinds := map[string]int{}
	for _, f := range faults {
		kinds[f.Kind]++
	}
	var ks []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		ks = append(ks, fmt.Sprintf("%s:%d", k, kinds[k]))
	}
	res.Summary = fmt.Sprintf("chaos seed=%d duration=%s faults=%s invariants: %d passed, %d failed", h.cfg.Seed, h.cfg.Duration, strings.Join(ks, ","), res.Passed, res.Failed)
	fmt.Fprintln(&b, res.Summary)
	fmt.Fprint(h.out, b.String())

	// The whole evidence, untruncated, beside the logs.
	var full strings.Builder
	full.WriteString(b.String())
	for _, v := range vs {
		fmt.Fprintf(&full, "\n== %d. %s (%d lines of evidence)\n", v.N, v.Name, len(v.Evidence))
		for _, e := range v.Evidence {
			fmt.Fprintf(&full, "%s\n", e)
		}
	}
	full.WriteString("\n== histories\n")
	for _, t := range h.tenants {
		t.mu.Lock()
		fmt.Fprintf(&full, "%s:\n", t.name)
		for _, e := range t.hist.epochs {
			fmt.Fprintf(&full, "  epoch %d on %s (copy %d) from row %d at %s, base %d rows, moved %t\n", e.N, e.Ident, e.Gen, e.FirstID, e.Start.Format("15:04:05"), len(e.Base), e.Moved)
		}
		t.mu.Unlock()
	}
	_ = os.WriteFile(filepath.Join(h.work, "report.txt"), []byte(full.String()), 0o644)
	return res
}

// checkRestorable is invariant 1.
func (h *harness) checkRestorable(ctx context.Context) verdict {
	v := verdict{N: 1, Name: "every acknowledged row of the holder is restorable (litefleet restore, litestream restore)", Pass: true}
	var held, exempted, unsure, failed, lost int
	for _, t := range h.tenants {
		for _, ls := range []bool{false, true} {
			tool := map[bool]string{false: "litefleet restore", true: "litestream restore"}[ls]
			got, err := h.restoreRows(ctx, t.name, 0, ls)
			if err != nil {
				v.Pass = false
				v.Evidence = append(v.Evidence, fmt.Sprintf("%s %s: %v", t.name, tool, err))
				continue
			}
			t.mu.Lock()
			miss := lostRows(t.hist, got)
			if !ls {
				for _, r := range t.hist.rows {
					switch {
					case !r.Acked:
						failed++
					case r.Exempt != "":
						exempted++
					case !r.Held:
						unsure++
					default:
						held++
					}
				}
			}
			if len(miss) > 0 {
				v.Pass = false
				lost += len(miss)
				byIdent := map[string][]int64{}
				for _, id := range miss {
					r := t.hist.rows[id]
					byIdent[fmt.Sprintf("%s epoch %d", r.Ident, r.Epoch)] = append(byIdent[fmt.Sprintf("%s epoch %d", r.Ident, r.Epoch)], id)
				}
				for _, k := range slices.Sorted(maps.Keys(byIdent)) {
					ids := byIdent[k]
					r := t.hist.rows[ids[0]]
					v.Evidence = append(v.Evidence, fmt.Sprintf("%s %s: lacks %d acknowledged rows written to %s (ids %s; first acked %s)",
						t.name, tool, len(ids), k, idList(ids), r.At.Format("15:04:05")))
				}
			}
			t.mu.Unlock()
		}
	}
	v.Numbers = fmt.Sprintf("%d held rows over %d tenants, %d lost; not counted: %d exempt (written while their host was dead to the others, then taken over), %d unsure (the claim moved during the write), %d whose commit failed",
		held, len(h.tenants), lost, exempted, unsure, failed)
	return v
}

// checkHistories is invariant 2: sampled restores are each one history,
// and no LTX key was written by two replicators with different bodies.
func (h *harness) checkHistories(ctx context.Context) verdict {
	v := verdict{N: 2, Name: "no restore mixes two hosts' histories; no host overwrote another's object", Pass: true}
	restores, mixed, failed, skipped := 0, 0, 0, 0
	for _, t := range h.tenants {
		txids, err := h.listTXIDs(ctx, t.name)
		if err != nil {
			v.Pass = false
			v.Evidence = append(v.Evidence, err.Error())
			continue
		}
		sample := sampleTXIDs(txids, 6)
		for i, txid := range append(sample, 0) {
			for _, ls := range []bool{false, true} {
				if ls && i%2 == 1 {
					continue // litestream on every other sample: it is slower
				}
				got, err := h.restoreRows(ctx, t.name, txid, ls)
				tool := map[bool]string{false: "litefleet", true: "litestream"}[ls]
				at := "latest"
				if txid > 0 {
					at = fmt.Sprintf("TXID %016x", txid)
				}
				if err != nil && txid > 0 && notRestorePoint(err) {
					// The TXID ends a file left beside a compaction of
					// the files before it: both tools refuse it alike.
					skipped++
					continue
				}
				if err != nil {
					v.Pass = false
					failed++
					v.Evidence = append(v.Evidence, fmt.Sprintf("%s %s restore at %s: %v", t.name, tool, at, err))
					continue
				}
				restores++
				t.mu.Lock()
				probs := mixProblems(t.hist, got)
				t.mu.Unlock()
				if len(probs) > 0 {
					mixed++
				}
				for _, p := range probs {
					v.Pass = false
					v.Evidence = append(v.Evidence, fmt.Sprintf("%s %s restore at %s (%d rows): %s", t.name, tool, at, len(got), p))
				}
			}
		}
	}
	h.mu.Lock()
	writes := slices.Clone(h.writes)
	h.mu.Unlock()
	ow := overwrites(writes, writeKeyPrefix)
	puts, late, stripped := 0, 0, 0
	for _, w := range writes {
		if w.Method == "PUT" && strings.HasSuffix(w.Key, ".ltx") {
			puts++
			if w.Late {
				late++
			}
		}
		if w.Stripped {
			stripped++
		}
	}
	for _, o := range ow {
		v.Pass = false
		v.Evidence = append(v.Evidence, "overwritten: "+o.String())
	}
	v.Numbers = fmt.Sprintf("%d restores at sampled TXIDs checked (%d sampled TXIDs no restore point), %d mixed, %d failed; %d LTX PUTs logged at the proxies (%d applied late, %d writes with conditions stripped), %d keys written by two hosts with different bodies",
		restores, skipped, mixed, failed, puts, late, stripped, len(ow))
	return v
}

// sampleTXIDs picks up to n TXIDs spread over the list, its last one
// included.
func sampleTXIDs(txids []uint64, n int) []uint64 {
	if len(txids) <= n {
		return txids
	}
	var out []uint64
	for i := range n {
		out = append(out, txids[(len(txids)-1)*i/(n-1)])
	}
	return slices.Compact(out)
}

// checkStatuses is invariant 3, from the claims checked during the run.
func (h *harness) checkStatuses() verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.claims
	v := verdict{N: 3, Name: "no status said in sync while the replica lacked a row acknowledged 30 s before", Pass: c.violationCount == 0}
	var src []string
	for _, k := range slices.Sorted(maps.Keys(c.bySource)) {
		src = append(src, fmt.Sprintf("%s %d", k, c.bySource[k]))
	}
	v.Numbers = fmt.Sprintf("%d in-sync statuses seen (%s), %d checked against a restore of S3, %d wrong; %d dropped unchecked (checker busy)",
		c.seen, strings.Join(src, ", "), c.checked, c.violationCount, c.dropped)
	v.Evidence = slices.Clone(c.violations)
	return v
}

// checkIntegrity is invariant 4, over every copy in every slot's folder.
func (h *harness) checkIntegrity() verdict {
	v := verdict{N: 4, Name: "every local database passes PRAGMA integrity_check", Pass: true}
	n := 0
	h.mu.Lock()
	var dirs []string
	for _, r := range h.reps {
		dirs = append(dirs, r.dir)
	}
	h.mu.Unlock()
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.db"))
		for _, f := range files {
			n++
			if err := integrity(f); err != nil {
				v.Pass = false
				v.Evidence = append(v.Evidence, fmt.Sprintf("%s: %v", f, err))
			}
		}
	}
	v.Numbers = fmt.Sprintf("%d databases checked, %d failed", n, len(v.Evidence))
	return v
}

// notRestorePoint says both tools refused a TXID as no restore point.
func notRestorePoint(err error) bool {
	s := err.Error()
	return strings.Contains(s, "is not a restore point") || strings.Contains(s, "no matching backup files available")
}
