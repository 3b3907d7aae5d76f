package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tenant is one tenant of the fleet: its database has a copy in the
// folders of two slots (hosts), and one writer.
type tenant struct {
	name   string
	big    bool
	idents []string // the slots with a copy, first the one that created it

	mu     sync.Mutex
	hist   *history
	nextID int64
	gen    map[string]int // slot → generation of its copy (a restore onto it makes a new one)
	// requests from the fault schedule, run by the writer between batches
	ops chan func(ctx context.Context, w *writer)

	// changes are the claim's holders as seen (every read of lock.json).
	changes    []claimChange
	lastClaim  string
	lastHolder string // the slot the writers last found holding it

	// confirmed rows were seen in a restore of the replica (invariant 3).
	confirmed   map[int64]bool
	lastRestore time.Time
}

func (t *tenant) path(r *replicator) string { return filepath.Join(r.dir, t.name+".db") }

// copyGen is the generation of the slot's copy.
func (t *tenant) copyGen(ident string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen[ident]
}

func (t *tenant) bumpGen(ident string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen[ident]++
}

// createDB makes the tenant's first copy with n seed rows (of size bytes
// each), tagged with the slot that creates it: epoch 0 of its history.
func createDB(path, ident string, n, size int) (map[int64]string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(wal)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, host TEXT NOT NULL, val BLOB NOT NULL)`); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	rows := map[int64]string{}
	tx, err := db.Begin()
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		val := noise(uint64(i), size)
		if _, err := tx.Exec(`INSERT INTO t (id, host, val) VALUES (?, ?, ?)`, i, ident, val); err != nil {
			_ = tx.Rollback()
			return nil, err
		}
		rows[int64(i)] = ident
	}
	return rows, tx.Commit()
}

// readRows reads a restored database's rows (id → tag).
func readRows(path string) (map[int64]string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return readTags(context.Background(), db)
}

// writer is a tenant's application: a process that opens the copy of the
// slot holding the tenant, writes a few rows, sometimes closes, and
// records each row with the holder before and after.
type writer struct {
	h      *harness
	t      *tenant
	rnd    *rand.Rand
	app    *app
	openOn string // slot whose copy the connection is open on
	openG  int
}

func (w *writer) restartApp() error {
	if w.app != nil {
		w.app.quit()
	}
	w.openOn = ""
	a, err := startApp()
	if err != nil {
		return err
	}
	w.app = a
	return nil
}

func (w *writer) closeConn() {
	if w.app != nil && w.openOn != "" {
		if _, err := w.app.do("close", 15*time.Second); err != nil {
			_ = w.restartApp()
		}
	}
	w.openOn = ""
}

// run writes until ctx ends.
func (w *writer) run(ctx context.Context) {
	defer func() {
		w.closeConn()
		if w.app != nil {
			w.app.quit()
		}
	}()
	if err := w.restartApp(); err != nil {
		w.h.note("writer of %s: %v", w.t.name, err)
		return
	}
	for ctx.Err() == nil {
		select {
		case op := <-w.t.ops:
			w.closeConn()
			op(ctx, w)
			continue
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(200+w.rnd.IntN(600)) * time.Millisecond):
		}
		w.batch(ctx)
	}
}

// batch writes 1-4 rows to the holder's copy.
func (w *writer) batch(ctx context.Context) {
	h, t := w.h, w.t
	before, err := h.holder(ctx, t)
	if err != nil || before == "" {
		w.closeConn()
		return
	}
	r := h.rep(before)
	gen := t.copyGen(before)
	if w.openOn != before || w.openG != gen {
		w.closeConn()
		if _, err := w.app.do("open "+t.path(r), 15*time.Second); err != nil {
			_ = w.restartApp()
			return
		}
		w.openOn, w.openG = before, gen
	}
	// A new epoch when the writes move to another copy, or to a new
	// restore of the same one: what it holds now is its base.
	t.mu.Lock()
	eps := t.hist.epochs
	newEpoch := len(eps) == 0 || eps[len(eps)-1].Ident != before || eps[len(eps)-1].Gen != gen
	t.mu.Unlock()
	if newEpoch {
		ans, err := w.app.do("ids", 30*time.Second)
		if err != nil {
			_ = w.restartApp()
			return
		}
		t.mu.Lock()
		now := time.Now()
		if n := len(t.hist.epochs); n > 0 && t.hist.epochs[n-1].End.IsZero() {
			t.hist.epochs[n-1].End = now
		}
		t.hist.epochs = append(t.hist.epochs, &epoch{N: len(t.hist.epochs), Ident: before, Gen: gen, FirstID: t.nextID, Base: parseTags(ans), Start: now})
		t.mu.Unlock()
	}
	var rows []*row
	n := 1 + w.rnd.IntN(4)
	size := 100 + w.rnd.IntN(400)
	if t.big {
		size = 4000 + w.rnd.IntN(8000)
	}
	for range n {
		t.mu.Lock()
		id := t.nextID
		t.nextID++
		ep := len(t.hist.epochs) - 1
		rw := &row{ID: id, Ident: before, Epoch: ep}
		t.hist.rows[id] = rw
		t.mu.Unlock()
		_, err := w.app.do("insert "+strconv.FormatInt(id, 10)+" "+before+" "+strconv.Itoa(size), 20*time.Second)
		t.mu.Lock()
		rw.At = time.Now()
		rw.Acked = err == nil
		t.mu.Unlock()
		if err != nil {
			_ = w.restartApp()
			break
		}
		rows = append(rows, rw)
	}
	if w.rnd.IntN(2) == 0 {
		w.closeConn()
	}
	after, err := h.holder(ctx, t)
	held := err == nil && after == before
	t.mu.Lock()
	for _, rw := range rows {
		rw.Held = held
	}
	t.mu.Unlock()
}

// move moves the tenant from the slot holding it to its other copy, as an
// operator does: the application pauses, the replica is checked to hold
// every acknowledged row, the old copy is removed (its replicator
// releases the claim), the replica is restored onto the other slot, and
// later onto the old slot again as the standby.
func (h *harness) move(ctx context.Context, w *writer) {
	t := w.t
	from, err := h.holder(ctx, t)
	if err != nil || from == "" {
		h.say("move %s: no holder now; skipped", t.name)
		return
	}
	if !slices.Contains(t.idents, from) {
		h.say("move %s: held by %s, not one of its copies; skipped", t.name, from)
		return
	}
	to := ""
	for _, id := range t.idents {
		if id != from {
			to = id
		}
	}
	if to == "" || h.rep(to) == nil {
		return
	}
	// Every acknowledged row of the current epoch must be in S3 first.
	want := map[int64]bool{}
	t.mu.Lock()
	for _, r := range t.hist.rows {
		if r.Acked && r.Ident == from && len(t.hist.epochs) > 0 && r.Epoch == len(t.hist.epochs)-1 {
			want[r.ID] = true
		}
	}
	t.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := h.restoreRows(ctx, t.name, 0, false)
		if err == nil && len(missingFrom(want, got)) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			h.say("move %s %s→%s: aborted, the replica still lacks %d acknowledged rows after 60s", t.name, from, to, len(missingFrom(want, got)))
			return
		}
		time.Sleep(3 * time.Second)
	}
	fr := h.rep(from)
	for _, suf := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(t.path(fr) + suf)
	}
	t.mu.Lock()
	if n := len(t.hist.epochs); n > 0 {
		t.hist.epochs[n-1].Moved = true
	}
	t.mu.Unlock()
	if err := h.restoreOnto(ctx, t, h.rep(to)); err != nil {
		h.note("move %s %s→%s: %v", t.name, from, to, err)
		return
	}
	t.bumpGen(to)
	h.say("moved %s %s→%s", t.name, from, to)
	// The old slot becomes the standby once the new one holds the claim.
	go func() {
		deadline := time.Now().Add(90 * time.Second)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if host, err := h.holderHost(ctx, t.name); err == nil && host == h.rep(to).host {
				if err := h.restoreOnto(ctx, t, fr); err != nil {
					h.say("standby %s on %s: %v", t.name, from, err)
				} else {
					t.bumpGen(from)
				}
				return
			}
			time.Sleep(2 * time.Second)
		}
		h.note("move %s %s→%s: %s did not hold the claim within 90s", t.name, from, to, to)
	}()
}

// failover restores the tenant's replica onto its other copy while the
// holder is partitioned: the other host takes the tenant when it counts
// the holder dead, with what the replica held.
func (h *harness) failover(ctx context.Context, w *writer, from string) {
	t := w.t
	// Queued a while ago: the other host may hold it by now, and its copy
	// must then be left alone.
	if host, err := h.holderHost(ctx, t.name); err != nil || h.rep(from) == nil || host != h.rep(from).host {
		h.say("failover %s: no longer held by %s; skipped", t.name, from)
		return
	}
	for _, id := range t.idents {
		if id == from {
			continue
		}
		r := h.rep(id)
		if r == nil {
			continue
		}
		if err := h.restoreOnto(ctx, t, r); err != nil {
			h.say("failover %s onto %s: %v", t.name, id, err)
			continue
		}
		t.bumpGen(id)
		h.say("failover: %s restored onto %s", t.name, id)
		return
	}
}

// noise is size bytes that do not compress (LTX pages are LZ4-compressed:
// the bigger tenant must be big on the wire too).
func noise(seed uint64, size int) []byte {
	x := seed*0x9e3779b97f4a7c15 + 1
	b := make([]byte, size)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// sawClaim records the host a read of the tenant's claim named.
func (t *tenant) sawClaim(host string) {
	if host == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if host != t.lastClaim {
		t.changes = append(t.changes, claimChange{At: time.Now(), From: t.lastClaim, To: host})
		t.lastClaim = host
	}
}

// sawHolder records the slot holder found holding the tenant. A change
// between two processes under one host name (a replacement started under
// a partitioned host's -host took its claims as they were) is a claim
// change that no read of lock.json shows.
func (t *tenant) sawHolder(ident string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev := t.lastHolder
	t.lastHolder = ident
	if prev != "" && prev != ident && hostOfIdent(prev) == hostOfIdent(ident) {
		t.changes = append(t.changes, claimChange{At: time.Now(), From: prev, To: ident})
	}
}

// hostOfIdent is the -host of a slot: h1 for h1 and for h1-dup12.
func hostOfIdent(ident string) string {
	host, _, _ := strings.Cut(ident, "-dup")
	return host
}

// refreshStandby gives a host a current copy of a tenant it stands by
// for: the writer pauses, the replica is let catch up with every
// acknowledged row, the replica is restored onto the standby's copy, and
// the writer stays idle for idle. A standby with a current copy can
// continue the history: a takeover it should not make (a skewed clock)
// then shows in the data, not only as a diverged copy.
func (h *harness) refreshStandby(ctx context.Context, w *writer, standby string, idle time.Duration) {
	t := w.t
	holder, err := h.holder(ctx, t)
	if err != nil || holder == "" || holder == standby || !slices.Contains(t.idents, standby) {
		return
	}
	want := map[int64]bool{}
	t.mu.Lock()
	for _, r := range t.hist.rows {
		if r.Acked && r.Ident == holder && r.Epoch == len(t.hist.epochs)-1 {
			want[r.ID] = true
		}
	}
	t.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := h.restoreRows(ctx, t.name, 0, false)
		if err == nil && len(missingFrom(want, got)) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(2 * time.Second)
	}
	if err := h.restoreOnto(ctx, t, h.rep(standby)); err != nil {
		h.say("refresh %s on %s: %v", t.name, standby, err)
		return
	}
	t.bumpGen(standby)
	h.say("standby %s of %s refreshed; its writer idles %s", standby, t.name, idle)
	select {
	case <-ctx.Done():
	case <-time.After(idle):
	}
}
