package main

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/litefleet/litefleet/internal/faultproxy"
)

// row is one row the writers tried to commit. Rows are tagged in the
// database with the identity (replicator process and folder) whose copy
// they were written to, so that a restore says whose history it holds.
type row struct {
	ID    int64
	Ident string // the replicator whose copy it was written to
	Epoch int    // index into history.epochs
	At    time.Time
	// Acked: the commit returned without error. Held: the claim named
	// that replicator's host just before and just after the write.
	Acked, Held bool
	// Exempt says why an acknowledged row may be lost (its holder was
	// partitioned or killed and another host took the tenant).
	Exempt string
}

// epoch is a run of writes to one copy of a tenant: one replicator's
// folder, from one restore of it (Gen) on.
type epoch struct {
	N       int
	Ident   string
	Gen     int
	FirstID int64
	// Base is what the copy held when the writer first opened it in this
	// epoch: every restore of a state of this epoch holds exactly these
	// rows below FirstID.
	Base  map[int64]string
	Start time.Time
	End   time.Time // when the next epoch started; zero for the last
	// Moved says the harness moved the tenant away (after its replica
	// held every row); otherwise another host took it.
	Moved bool
}

// history is what the writers did to one tenant.
type history struct {
	tenant string
	rows   map[int64]*row
	epochs []*epoch
}

func newHistory(tenant string) *history {
	return &history{tenant: tenant, rows: map[int64]*row{}}
}

// sortedRows returns the rows in id order.
func (h *history) sortedRows() []*row {
	out := slices.Collect(maps.Values(h.rows))
	slices.SortFunc(out, func(a, b *row) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// mixProblems checks that a restored state (row id → tag) is one
// history's state: every row was written with that tag, and the state is
// the state of one copy at one moment: the newest epoch present (k) holds
// exactly its base below its first id and a prefix of its acknowledged
// rows above. Anything else mixes histories: rows one copy never had
// beside rows of another, or a hole.
func mixProblems(h *history, got map[int64]string) []string {
	var probs []string
	k := -1
	ids := slices.Sorted(maps.Keys(got))
	for _, id := range ids {
		r := h.rows[id]
		if r == nil {
			probs = append(probs, fmt.Sprintf("row %d (tag %s) was never written", id, got[id]))
			continue
		}
		if got[id] != r.Ident {
			probs = append(probs, fmt.Sprintf("row %d is tagged %s but was written through %s", id, got[id], r.Ident))
		}
		k = max(k, r.Epoch)
	}
	if k < 0 {
		return probs
	}
	e := h.epochs[k]
	var extra, missing []int64
	for _, id := range ids {
		if id < e.FirstID {
			if _, ok := e.Base[id]; !ok {
				extra = append(extra, id)
			}
		}
	}
	for id := range e.Base {
		if _, ok := got[id]; !ok {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	if len(extra) > 0 {
		probs = append(probs, fmt.Sprintf("holds %d rows that %s's copy never had when epoch %d began (%s): another history's rows",
			len(extra), e.Ident, e.N, idList(extra)))
	}
	if len(missing) > 0 {
		probs = append(probs, fmt.Sprintf("lacks %d rows that %s's copy held when epoch %d began (%s)", len(missing), e.Ident, e.N, idList(missing)))
	}
	// Within the epoch, a restore is a prefix of its acknowledged rows.
	var gapAt int64 = -1
	for _, r := range h.sortedRows() {
		if r.Epoch != k || !r.Acked {
			continue
		}
		_, present := got[r.ID]
		if !present && gapAt < 0 {
			gapAt = r.ID
		}
		if present && gapAt >= 0 {
			probs = append(probs, fmt.Sprintf("holds row %d of epoch %d but not row %d before it: a hole", r.ID, k, gapAt))
			break
		}
	}
	return probs
}

// lostRows returns the acknowledged, held rows that a restore lacks and
// that no exemption covers.
func lostRows(h *history, got map[int64]string) []int64 {
	var lost []int64
	for _, r := range h.sortedRows() {
		if !r.Acked || !r.Held || r.Exempt != "" {
			continue
		}
		if _, ok := got[r.ID]; !ok {
			lost = append(lost, r.ID)
		}
	}
	return lost
}

// interval is a fault that made a replicator dead to others (black hole,
// refused connections, SIGSTOP, SIGKILL): from Start until End (zero:
// still on).
type interval struct{ Start, End time.Time }

// claimChange is a tenant's claim seen naming another host than before
// (From → To, "" before the first claim), or a dead slot replaced by a
// second process under its -host name (From and To name the slots).
type claimChange struct {
	At       time.Time
	From, To string
}

// exempt marks the rows that may be lost: acknowledged on a copy whose
// replicator was dead to the others (deaths) from grace before the death
// until another host took the tenant (a claim change from its host, during
// the death or within 30 s after it) and then uploaded its history
// (uploaded). Asynchronous replication cannot keep what was committed and
// not yet uploaded when a host died and another went on. Rows of a copy
// that was taken while its replicator was alive, or by a host that then
// uploaded nothing, or moved by the harness, are never exempt.
//
// The grace follows what the host itself said: acked, when not nil, gives
// the moment up to which the host's last status before the death said its
// replica held every change of the tenant (its time less its lag). A host
// that had said it was 70 s behind (a big snapshot over a slow link) had
// not acknowledged its last 70 s: those rows may be lost with it. Rows it
// had said were in S3 never are.
func exempt(h *history, hostOf map[string]string, deaths map[string][]interval, changes []claimChange,
	uploaded func(host string, after time.Time) bool, grace time.Duration,
	acked func(ident string, before time.Time) (time.Time, bool)) {
	for i, e := range h.epochs {
		if e.Moved {
			continue
		}
		host := hostOf[e.Ident]
		for _, d := range deaths[e.Ident] {
			for _, c := range changes {
				if (c.From != host && c.From != e.Ident) || c.To == "" || c.To == host || c.To == e.Ident || c.At.Before(d.Start) {
					continue
				}
				if !d.End.IsZero() && c.At.After(d.End.Add(30*time.Second)) {
					continue
				}
				if !uploaded(c.To, c.At) {
					continue
				}
				from, why := d.Start.Add(-grace), ""
				if acked != nil {
					if at, ok := acked(e.Ident, d.Start); ok && at.Before(from) {
						from, why = at, fmt.Sprintf(" (its last status had acknowledged changes up to %s only)", at.Format("15:04:05"))
					}
				}
				for _, r := range h.rows {
					if r.Epoch == i && !r.At.Before(from) && !r.At.After(c.At) && r.Exempt == "" {
						r.Exempt = fmt.Sprintf("%s was dead to the others from %s and %s took the tenant at %s%s", e.Ident,
							d.Start.Format("15:04:05"), c.To, c.At.Format("15:04:05"), why)
					}
				}
				break
			}
		}
	}
}

// overwrite is an object key written by two replicators with different
// bodies.
type overwrite struct {
	Key    string
	Writes []faultproxy.Write
}

func (o overwrite) String() string {
	var parts []string
	for _, w := range o.Writes {
		late := ""
		if w.Late {
			late = " (applied late)"
		}
		parts = append(parts, fmt.Sprintf("%s at %s %s%s %.12s", w.Proxy, w.End.Format("15:04:05.000"), w.Method, late, w.Hash))
	}
	return o.Key + ": " + strings.Join(parts, "; ")
}

// writesObject reports whether a write puts an object's content under its
// key: a PUT, or the completion of a multipart upload. A part (a PUT with
// partNumber and uploadId) or the creation of an upload (POST ?uploads)
// is not the key's content until completed, and an abandoned one never is:
// counted as writes, the parts of one upload looked like overwrites (seed 35).
func writesObject(w faultproxy.Write) bool {
	q, err := url.ParseQuery(w.Query)
	if err != nil {
		return true // unknown: counted, never hidden
	}
	switch w.Method {
	case "PUT":
		return !q.Has("partNumber") && !q.Has("uploadId")
	case "POST":
		return q.Has("uploadId") && !q.Has("uploads")
	}
	return false
}

// overwrites finds the keys under prefix written successfully by two
// replicators with different contents: one host overwrote another's
// object. Claims (lock.json) change hands by design and are left out.
func overwrites(writes []faultproxy.Write, prefix string) []overwrite {
	byKey := map[string][]faultproxy.Write{}
	for _, w := range writes {
		if w.Status < 200 || w.Status > 299 || !strings.HasPrefix(w.Key, prefix) || !strings.HasSuffix(w.Key, ".ltx") {
			continue
		}
		if !writesObject(w) {
			continue
		}
		byKey[w.Key] = append(byKey[w.Key], w)
	}
	var out []overwrite
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		ws := byKey[key]
		proxies, hashes := map[string]bool{}, map[string]bool{}
		for _, w := range ws {
			proxies[w.Proxy] = true
			hashes[w.Hash] = true
		}
		if len(proxies) > 1 && len(hashes) > 1 {
			out = append(out, overwrite{Key: key, Writes: ws})
		}
	}
	return out
}

// claim is a status that said a tenant was in sync (or lag 0) at a time.
type claim struct {
	At     time.Time
	Source string // "/status", "host record", "ls -json"
	Ident  string // the replicator it is about
	Tenant string
	Detail string
}

// required returns the rows that a replicator's replica must hold if its
// status says in sync at time at: what its copy held when its newest epoch
// began (before at−window), and the rows acknowledged on that copy up to
// at−window.
func required(h *history, ident string, gen int, at time.Time, window time.Duration) map[int64]bool {
	cut := at.Add(-window)
	var e *epoch
	for _, ep := range h.epochs {
		if ep.Ident == ident && ep.Gen == gen && ep.Start.Before(cut) {
			e = ep
		}
	}
	if e == nil {
		return nil
	}
	req := map[int64]bool{}
	for id := range e.Base {
		req[id] = true
	}
	for _, r := range h.rows {
		if r.Epoch == e.N && r.Acked && !r.At.After(cut) {
			req[r.ID] = true
		}
	}
	return req
}

// missingFrom returns the ids of req absent from got, sorted.
func missingFrom(req map[int64]bool, got map[int64]string) []int64 {
	var out []int64
	for id := range req {
		if _, ok := got[id]; !ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// idList prints at most 8 ids.
func idList(ids []int64) string {
	var s []string
	for i, id := range ids {
		if i == 8 {
			s = append(s, fmt.Sprintf("… %d more", len(ids)-8))
			break
		}
		s = append(s, fmt.Sprint(id))
	}
	return strings.Join(s, " ")
}
