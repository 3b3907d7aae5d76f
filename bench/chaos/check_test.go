package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/internal/faultproxy"
)

// twoEpochs is a tenant written on h1 (rows 1-10), then taken over by h2,
// whose copy (restored from the replica) held rows 1-6: h1's rows 7-10
// never reached S3. h2 then wrote rows 11-15.
func twoEpochs() *history {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	h := newHistory("t")
	h.epochs = []*epoch{
		{N: 0, Ident: "h1", FirstID: 1, Base: map[int64]string{}, Start: t0, End: t0.Add(100 * time.Second)},
		{N: 1, Ident: "h2", Gen: 1, FirstID: 11, Base: map[int64]string{}, Start: t0.Add(100 * time.Second)},
	}
	for id := int64(1); id <= 15; id++ {
		ep, ident := 0, "h1"
		if id > 10 {
			ep, ident = 1, "h2"
		}
		h.rows[id] = &row{ID: id, Ident: ident, Epoch: ep, At: t0.Add(time.Duration(id) * 10 * time.Second), Acked: true, Held: true}
	}
	for id := int64(1); id <= 6; id++ {
		h.epochs[1].Base[id] = "h1"
	}
	return h
}

func rowsOf(tags map[int64]string, ids ...int64) map[int64]string {
	out := map[int64]string{}
	for _, id := range ids {
		out[id] = tags[id]
	}
	return out
}

func tagsOf(h *history) map[int64]string {
	out := map[int64]string{}
	for id, r := range h.rows {
		out[id] = r.Ident
	}
	return out
}

// TestMixDetected: a state of h2's history passes; states that hold rows
// h2's copy never had, lack rows it had, have a hole, or carry a wrong tag
// are each caught.
func TestMixDetected(t *testing.T) {
	h := twoEpochs()
	tags := tagsOf(h)
	good := [][]int64{
		{1, 2, 3},                       // early in h1's history
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, // h1's whole history
		{1, 2, 3, 4, 5, 6, 11, 12},      // h2's, from its base
		{1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15},
	}
	for _, ids := range good {
		if p := mixProblems(h, rowsOf(tags, ids...)); len(p) > 0 {
			t.Errorf("%v: a single history flagged: %v", ids, p)
		}
	}
	bad := map[string]struct {
		got  map[int64]string
		want string
	}{
		"h1's late rows in h2's history": {rowsOf(tags, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12), "never had"},
		"h2's base lacking a row":        {rowsOf(tags, 1, 2, 3, 4, 5, 11, 12), "lacks 1 rows"},
		"a hole in h2's rows":            {rowsOf(tags, 1, 2, 3, 4, 5, 6, 11, 13), "a hole"},
		"a hole in h1's rows":            {rowsOf(tags, 1, 2, 4), "a hole"},
		"a row tagged by the other host": {map[int64]string{1: "h1", 2: "h2"}, "tagged h2"},
		"a row never written":            {map[int64]string{1: "h1", 99: "h3"}, "never written"},
	}
	for name, c := range bad {
		p := strings.Join(mixProblems(h, c.got), "; ")
		if !strings.Contains(p, c.want) {
			t.Errorf("%s: got %q, want a problem saying %q", name, p, c.want)
		}
	}
}

// TestLostRowsAndExemption: a held row missing from the restore is lost,
// unless its host was dead to the others when another host took the
// tenant and went on uploading, and the row came at most the grace before
// the death.
func TestLostRowsAndExemption(t *testing.T) {
	h := twoEpochs()
	got := rowsOf(tagsOf(h), 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15)
	if lost := lostRows(h, got); len(lost) != 4 || lost[0] != 7 {
		t.Fatalf("lost = %v, want 7-10 with nobody dead", lost)
	}
	// h1 dead from row 8's time on (t0+80s), h2 took the tenant at
	// t0+100s; grace 15 s: rows 7 (70 s), 8, 9 and 10 are exempt; with
	// grace 5 s row 7 is lost.
	t0 := h.rows[1].At.Add(-10 * time.Second)
	hostOf := map[string]string{"h1": "h1", "h2": "h2"}
	deaths := map[string][]interval{"h1": {{Start: t0.Add(80 * time.Second), End: t0.Add(200 * time.Second)}}}
	took := []claimChange{{At: t0.Add(100 * time.Second), From: "h1", To: "h2"}}
	uploads := func(host string, after time.Time) bool { return host == "h2" }
	exempt(h, hostOf, deaths, took, uploads, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 0 {
		t.Errorf("lost = %v, want none with h1 dead", lost)
	}
	h = twoEpochs()
	exempt(h, hostOf, deaths, took, uploads, 5*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 1 || lost[0] != 7 {
		t.Errorf("lost = %v, want row 7 (before the grace)", lost)
	}
	// The grace follows the host's own word: its last status before the
	// death (t0+75s) said it was 10 s behind, so row 7 (t0+70s) was never
	// acknowledged; had it said it was in sync, row 7 is lost.
	for _, c := range []struct {
		lag  time.Duration
		lost int
	}{{10 * time.Second, 0}, {0, 1}} {
		h = twoEpochs()
		acked := func(ident string, before time.Time) (time.Time, bool) {
			if ident != "h1" || before.Before(t0.Add(75*time.Second)) {
				return time.Time{}, false
			}
			return ackedPoint(t0.Add(75*time.Second), tenantStatus{State: "replicating", Lag: c.lag})
		}
		exempt(h, hostOf, deaths, took, uploads, 5*time.Second, acked)
		if lost := lostRows(h, got); len(lost) != c.lost {
			t.Errorf("last status lag %s: lost = %v, want %d rows", c.lag, lost, c.lost)
		}
	}
	// A move is never an excuse.
	h = twoEpochs()
	h.epochs[0].Moved = true
	exempt(h, hostOf, deaths, took, uploads, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 4 {
		t.Errorf("lost = %v after a move, want 4", lost)
	}
	// Nor a takeover of a live host (clock skew).
	h = twoEpochs()
	exempt(h, hostOf, map[string][]interval{"h3": deaths["h1"]}, took, uploads, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 4 {
		t.Errorf("lost = %v with h1 alive, want 4", lost)
	}
	// A replacement under h1's own name that went on counts as a
	// takeover.
	h = twoEpochs()
	dup := []claimChange{{At: t0.Add(100 * time.Second), From: "h1", To: "h1-dup3"}}
	exempt(h, hostOf, deaths, dup, func(to string, _ time.Time) bool { return to == "h1-dup3" }, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 0 {
		t.Errorf("lost = %v after a replacement took over, want none", lost)
	}
	// Nor a takeover by a host that then uploaded nothing (it could not
	// go on: h1's rows could still have been kept).
	h = twoEpochs()
	exempt(h, hostOf, deaths, took, func(string, time.Time) bool { return false }, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 4 {
		t.Errorf("lost = %v when h2 uploaded nothing, want 4", lost)
	}
}

// TestOverwriteDetected: a key written by two proxies with different
// bodies is caught; the same body twice, one proxy twice, a failed write
// lock.json and the parts of multipart uploads are not; two completions
// are.
func TestOverwriteDetected(t *testing.T) {
	k := "chaos/databases/t/0000/0000000000000005-0000000000000005.ltx"
	ws := []faultproxy.Write{
		{Proxy: "h1", Method: "PUT", Key: k, Hash: "aaa", Status: 200},
		{Proxy: "h2", Method: "PUT", Key: k, Hash: "bbb", Status: 200, Late: true},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/0000/06-06.ltx", Hash: "a", Status: 200},
		{Proxy: "h2", Method: "PUT", Key: "chaos/databases/t/0000/06-06.ltx", Hash: "a", Status: 200},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/0000/07-07.ltx", Hash: "a", Status: 200},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/0000/07-07.ltx", Hash: "b", Status: 200},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/0000/08-08.ltx", Hash: "a", Status: 200},
		{Proxy: "h2", Method: "PUT", Key: "chaos/databases/t/0000/08-08.ltx", Hash: "b", Status: 412},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/lock.json", Hash: "a", Status: 200},
		{Proxy: "h2", Method: "PUT", Key: "chaos/databases/t/lock.json", Hash: "b", Status: 200},
		// One multipart upload per host of 09: parts, creation and abort
		// are not the key's content; only h2 completed.
		{Proxy: "h1", Method: "POST", Key: "chaos/databases/t/0000/09-09.ltx", Query: "uploads=", Hash: "etag:", Status: 200},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/0000/09-09.ltx", Query: "partNumber=1&uploadId=u1", Hash: "p1", Status: 200},
		{Proxy: "h1", Method: "PUT", Key: "chaos/databases/t/0000/09-09.ltx", Query: "partNumber=2&uploadId=u1", Hash: "p2", Status: 200},
		{Proxy: "h2", Method: "PUT", Key: "chaos/databases/t/0000/09-09.ltx", Query: "partNumber=1&uploadId=u2", Hash: "p3", Status: 200},
		{Proxy: "h2", Method: "POST", Key: "chaos/databases/t/0000/09-09.ltx", Query: "uploadId=u2", Hash: "etag:x", Status: 200},
		// Two completions by two hosts with different contents are one.
		{Proxy: "h1", Method: "POST", Key: "chaos/databases/t/0000/0a-0a.ltx", Query: "uploadId=u3", Hash: "etag:y", Status: 200},
		{Proxy: "h2", Method: "POST", Key: "chaos/databases/t/0000/0a-0a.ltx", Query: "uploadId=u4", Hash: "etag:z", Status: 200},
	}
	ow := overwrites(ws, writeKeyPrefix)
	if len(ow) != 2 || ow[1].Key != "chaos/databases/t/0000/0a-0a.ltx" {
		t.Errorf("overwrites = %v, want %s and the two completions of 0a", ow, k)
	}
	ow = ow[:min(len(ow), 1)]
	if len(ow) != 1 || ow[0].Key != k || !strings.Contains(ow[0].String(), "applied late") {
		t.Errorf("overwrites = %v, want only %s", ow, k)
	}
}

// TestRequiredForInSync: a status saying in sync at a time needs the base
// and every row acknowledged on that copy 30 s before; a restore lacking
// one is a violation, one holding them all is not.
func TestRequiredForInSync(t *testing.T) {
	h := twoEpochs()
	at := h.rows[15].At // rows 11, 12 are 30 s older; 13, 14 are not
	req := required(h, "h2", 1, at, 30*time.Second)
	if len(req) != 8 || !req[1] || !req[11] || !req[12] || req[13] || req[7] {
		t.Fatalf("required = %v, want base 1-6 and rows 11-12", req)
	}
	if m := missingFrom(req, rowsOf(tagsOf(h), 1, 2, 3, 4, 5, 6, 11)); len(m) != 1 || m[0] != 12 {
		t.Errorf("missing = %v, want [12]", m)
	}
	if m := missingFrom(req, rowsOf(tagsOf(h), 1, 2, 3, 4, 5, 6, 11, 12)); len(m) != 0 {
		t.Errorf("missing = %v, want none", m)
	}
	// Another copy generation, or a claim too early, needs nothing.
	if req := required(h, "h2", 2, at, 30*time.Second); req != nil {
		t.Errorf("a new copy: required = %v", req)
	}
	if req := required(h, "h2", 1, h.epochs[1].Start.Add(10*time.Second), 30*time.Second); req != nil {
		t.Errorf("within 30 s of the epoch: required = %v", req)
	}
}

// TestIntegrityDetected: a database with a damaged page fails the check.
func TestIntegrityDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	if _, err := createDB(path, "h1", 200, 500); err != nil {
		t.Fatal(err)
	}
	if err := integrity(path); err != nil {
		t.Fatalf("a good database: %v", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Page 3 onwards: the table's b-tree pages, filled with garbage.
	junk := make([]byte, 4096*4)
	for i := range junk {
		junk[i] = byte(i * 7)
	}
	if _, err := f.WriteAt(junk, 4096*2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := integrity(path); err == nil {
		t.Error("a damaged database passed")
	}
}

// TestLiveTakeoverDetected: a takeover logged while the host it names had
// been cut off for less than 30 s is reported; one after a longer
// partition is not.
func TestLiveTakeoverDetected(t *testing.T) {
	h := &harness{work: t.TempDir(), reps: map[string]*replicator{"h1": {}, "h2": {}}, deaths: map[string][]interval{}}
	at := time.Date(2026, 12, 7, 9, 21, 35, 0, time.Local)
	line := at.Format("2006/01/02 15:04:05") + " WARN took over tenant from a dead host: db=t1 from=h1\n"
	if err := os.WriteFile(filepath.Join(h.work, "h2.log"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := h.liveTakeovers(); len(got) != 1 || !strings.Contains(got[0], "h2 took t1 from h1") {
		t.Errorf("h1 never cut off: %v", got)
	}
	h.deaths["h1"] = []interval{{Start: at.Add(-10 * time.Second)}}
	if got := h.liveTakeovers(); len(got) != 1 {
		t.Errorf("h1 cut off 10 s before: %v", got)
	}
	h.deaths["h1"] = []interval{{Start: at.Add(-50 * time.Second)}}
	if got := h.liveTakeovers(); len(got) != 0 {
		t.Errorf("h1 cut off 50 s before: %v", got)
	}
}

// TestPickHolder: the writers go to the process under the claim's host
// that says it replicates the tenant. A replacement started under a
// partitioned host's -host holds nothing while it watches the old
// heartbeat (chaos seed 22: rows written to h3-dup37, which was then
// refused, were counted as held), nor once it exited; once it says it
// replicates, it holds every claim of the name (it adopted them as they
// were, so lock.json still names the old process).
func TestPickHolder(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 40, 0, 0, time.UTC)
	orig := holderCand{Ident: "h3", HasCopy: true, State: "lease lost (retrying)", Holding: true, Started: t0}
	watching := holderCand{Ident: "h3-dup37", HasCopy: true, State: "", Started: t0.Add(10 * time.Minute)}
	cases := []struct {
		name  string
		cands []holderCand
		want  string
	}{
		{"replacement still watching", []holderCand{orig, watching}, "h3"},
		{"replacement refused", []holderCand{orig, func() holderCand { c := watching; c.Exited = true; return c }()}, "h3"},
		{"replacement replicates", []holderCand{orig, func() holderCand { c := watching; c.State = "replicating"; return c }()}, "h3-dup37"},
		{"replacement stopped by the harness", []holderCand{orig, func() holderCand { c := watching; c.State, c.Exited = "replicating", true; return c }()}, "h3"},
		{"replacement without a copy", []holderCand{orig, func() holderCand { c := watching; c.State, c.HasCopy = "sleeping", false; return c }()}, "h3"},
		{"standby whose claim attempt failed", []holderCand{func() holderCand { c := orig; c.Holding = false; return c }()}, ""},
		{"original starting", []holderCand{func() holderCand { c := orig; c.State = "starting"; return c }()}, ""},
		{"original diverged", []holderCand{func() holderCand { c := orig; c.State = "diverged"; return c }()}, ""},
		{"original exited by itself", []holderCand{func() holderCand { c := orig; c.State, c.Exited = "replicating", true; return c }()}, ""},
		{"nothing said yet", []holderCand{func() holderCand { c := orig; c.State = ""; return c }()}, ""},
	}
	for _, c := range cases {
		if got := pickHolder(c.cands); got != c.want {
			t.Errorf("%s: holder %q, want %q", c.name, got, c.want)
		}
	}
}

// TestStandbyLeaseLostHoldsNothing plants chaos seed 33: h1, standby of
// tenant 9c05f27b, said "leased elsewhere", then "lease lost (retrying)"
// when its claim attempt failed (S3 refused); when S3 answered again it
// wrote its claim at 12:35:12.699, found its copy diverged and deleted
// the claim at .816. The writers, reading that claim and h1's last
// /status (2 s old: lease lost), wrote rows 918-920 to h1's copy, which
// was never replicated, and counted them held. A lost lease is holding
// only for a process that said it replicated the tenant.
func TestStandbyLeaseLostHoldsNothing(t *testing.T) {
	const tn = "9c05f27b-0046-454e-8780-bb3ecdfd444c"
	t0 := time.Date(2026, 12, 7, 12, 31, 40, 0, time.UTC)
	polls := func(states ...string) map[string]bool {
		var held map[string]bool
		for _, s := range states {
			held = holding(held, map[string]tenantStatus{tn: {Tenant: tn, State: s}})
		}
		return held
	}
	cand := func(held map[string]bool, state string) []holderCand {
		return []holderCand{{Ident: "h1", HasCopy: true, State: state, Holding: held[tn], Started: t0}}
	}
	cases := []struct {
		name   string
		states []string
		want   string
	}{
		{"standby whose claim attempt failed (seed 33, h1)", []string{"leased elsewhere", "lease lost (retrying)"}, ""},
		{"standby waiting for its heartbeat before claiming (seed 33, h3)", []string{"diverged", "lease lost (retrying)", "lease lost (retrying)"}, ""},
		{"holder whose heartbeat fails", []string{"starting", "replicating", "lease lost (retrying)", "lease lost (retrying)"}, "h1"},
		{"holder asleep whose heartbeat fails", []string{"sleeping", "lease lost (retrying)"}, "h1"},
		{"holder that diverged since", []string{"replicating", "diverged", "lease lost (retrying)"}, ""},
		{"holder that another host took from", []string{"replicating", "leased elsewhere", "lease lost (retrying)"}, ""},
		{"holder replicating again", []string{"replicating", "lease lost (retrying)", "replicating"}, "h1"},
	}
	for _, c := range cases {
		held := polls(c.states...)
		if got := pickHolder(cand(held, c.states[len(c.states)-1])); got != c.want {
			t.Errorf("%s: holder %q, want %q", c.name, got, c.want)
		}
	}
	// A tenant the process no longer lists is not held.
	held := polls("replicating")
	if held = holding(held, map[string]tenantStatus{}); held[tn] {
		t.Errorf("held %v after the tenant left /status, want not held", held)
	}
}

// TestDupTakeoverExempt: rows written to a partitioned host before a
// replacement under its name took its tenants are exempt once the
// replacement uploads (chaos seed 22, h1-dup12: they were counted lost),
// and only then: a replacement refused at its start never became the
// holder, so the partitioned host's rows stay required.
func TestDupTakeoverExempt(t *testing.T) {
	h := twoEpochs()
	got := rowsOf(tagsOf(h), 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15)
	t0 := h.rows[1].At.Add(-10 * time.Second)
	hostOf := map[string]string{"h1": "h1", "h1-dup12": "h1"}
	deaths := map[string][]interval{"h1": {{Start: t0.Add(80 * time.Second)}}}
	// The writers found h1, then (once the replacement said it
	// replicates) h1-dup12 holding the tenant.
	tn := &tenant{name: "t", hist: h}
	tn.sawHolder("h1")
	tn.sawHolder("h1")
	tn.sawHolder("h1-dup12")
	if len(tn.changes) != 1 || tn.changes[0].From != "h1" || tn.changes[0].To != "h1-dup12" {
		t.Fatalf("changes = %+v, want one h1 → h1-dup12", tn.changes)
	}
	tn.changes[0].At = t0.Add(100 * time.Second)
	exempt(h, hostOf, deaths, tn.changes, func(to string, _ time.Time) bool { return to == "h1-dup12" }, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 0 {
		t.Errorf("lost = %v after the replacement took over and uploaded, want none", lost)
	}
	// Refused: the holder never changed.
	h = twoEpochs()
	tn = &tenant{name: "t", hist: h}
	tn.sawHolder("h1")
	exempt(h, hostOf, deaths, tn.changes, func(to string, _ time.Time) bool { return to == "h1-dup12" }, 15*time.Second, nil)
	if lost := lostRows(h, got); len(lost) != 4 {
		t.Errorf("lost = %v with the replacement refused, want 7-10", lost)
	}
	// A move between hosts is not recorded here (the claim's host shows
	// it).
	tn.sawHolder("h2")
	if len(tn.changes) != 0 {
		t.Errorf("changes = %+v, want none for h1 → h2", tn.changes)
	}
}
