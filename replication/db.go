package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/dbfile"
	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

// awake is a tenant open in Litestream.
type awake struct {
	db     *litestream.DB
	client *tenantClient
	// lost stops every write of this tenant at once: the claim is gone,
	// or the file under the database was replaced.
	lost   atomic.Bool
	opened identity
	// nextCompact is when each compaction level is next due; the engine
	// runs Litestream's compactions itself, per tenant, so that none runs
	// while the tenant is being closed.
	nextCompact map[int]time.Time
	nextL0      time.Time
	// nextPageSave is when the page table is next saved while awake: a
	// tenant that never sleeps has a recent table on disk when its
	// replicator is killed (pageTable.rollForward).
	nextPageSave time.Time
	sleepRetry   time.Time
	pages        *pageTable
	// hold is the tenant's dbfile hold, from before its first SQLite
	// connection (the pin's, Litestream's) until after the last closed.
	hold *dbfile.Hold
	// pageSize is the page size of the history Litestream continues (its
	// last local LTX file's), 0 for a new one; reshaped is set when an
	// upload of another page size was refused.
	pageSize uint32
	reshaped atomic.Bool
	// verified is the heartbeat epoch in which the tenant's claim was last
	// proven; the gate refuses uploads in any other (hosts.Beater.Epoch).
	verified atomic.Uint64
	// conflict is set when S3 refused an upload because its key held
	// another object: the tenant stops (stopConflicted).
	conflict atomic.Pointer[ConflictError]
}

// tenantGate lets a tenant write while its bucket's host is not fenced and
// its claim and file are still its own.
type tenantGate struct {
	b   *bucket
	a   *awake
	log *slog.Logger
	now func() time.Time // the engine's clock (Options.Now)
}

func (g tenantGate) writeDeadline() (time.Time, error) {
	if g.a.lost.Load() {
		return time.Time{}, fmt.Errorf("%w: its claim or its file is gone", errFenced)
	}
	if g.b.beat.Epoch() != g.a.verified.Load() {
		// The heartbeat failed since the claim was last proven: another
		// host may hold the tenant now. The engine reads the claim again
		// (resume) before anything more is sent.
		return time.Time{}, fmt.Errorf("%w: the heartbeat failed since the claim was last checked: checking it before uploading", errFenced)
	}
	if g.b.beat.Fenced() {
		last, err := g.b.beat.LastBeat()
		reason := "no heartbeat written yet"
		if !last.IsZero() {
			reason = fmt.Sprintf("last heartbeat %s ago", g.now().Sub(last).Round(time.Second))
		}
		if err != nil {
			reason += ": " + err.Error()
		}
		return time.Time{}, fmt.Errorf("%w: %s", errFenced, reason)
	}
	return g.b.beat.WriteDeadline(), nil
}

// conditional reports the bucket's probe of conditional writes; a server
// that ignores them gets today's unconditional writes, and one warning.
func (g tenantGate) conditional() bool {
	if g.b.beat.Conditional() {
		return true
	}
	g.b.unconditional.Do(func() {
		g.log.Warn("this S3 server ignores conditional writes: LTX files are written unconditionally, so a deposed host's late upload could replace an object", "bucket", g.b.conn.Bucket)
	})
	return false
}

// newClient builds the tenant's replica client; its manifest is loaded
// on first use.
func (e *Engine) newClient(t *tenant, b *bucket, a *awake, claim *hosts.Claim) *tenantClient {
	c := &tenantClient{
		api: t.api, bucket: t.target.Conn.Bucket, path: t.target.Conn.TenantPath(t.name),
		tenant: t.name, logger: e.log, gate: tenantGate{b: b, a: a, log: e.log, now: e.opt.Now}, stats: t.stats, pages: a.pages,
		lineage: &t.lineage, host: b.beat.Host(), observe: e.opt.Observer,
		noSweep: e.src.HostKeys.AccessKeyID != "", now: e.opt.Now, spoolDir: metaDir(t.path),
	}
	if claim != nil {
		c.claimGen = claim.Generation
	}
	c.onConflict = func(err *ConflictError) {
		// Nothing more of this tenant is written, at once; the engine
		// closes it (nextJobLocked).
		a.lost.Store(true)
		a.conflict.CompareAndSwap(nil, err)
	}
	c.check = func() error {
		now, err := statID(t.path)
		if err != nil {
			return err
		}
		if !now.sameFile(a.opened.db) {
			return fmt.Errorf("%s was replaced or deleted", untrusted.Printable(t.path))
		}
		return nil
	}
	c.checkHeader = func(hdr ltx.Header) error {
		// The page size can change between the engine's look at the file
		// and Litestream's open (the application's VACUUM finishing in
		// between): Litestream then snapshots at the next TXID in the new
		// size, which no restore could combine with the history. Refused
		// here, the tenant is closed and started again, and the start
		// archives the old history (see start).
		if a.pageSize == 0 || hdr.PageSize == a.pageSize {
			return nil
		}
		if a.reshaped.CompareAndSwap(false, true) {
			a.lost.Store(true)
			e.mu.Lock()
			t.changed = true
			if t.wanted && !t.busy {
				e.enqueueLocked(t)
			}
			e.mu.Unlock()
		}
		return fmt.Errorf("the page size changed (%d to %d bytes): this history cannot continue", a.pageSize, hdr.PageSize)
	}
	return c
}

// openAwake opens the tenant in Litestream under its dbfile hold. With
// prepare, the WAL is pinned and an incremental wake prepared first (see
// prepareOpen); the pin is let go once Litestream holds its own read
// transaction, and before Litestream's DB may close: closing its descriptor
// of the file would drop the pin's locks.
func (e *Engine) openAwake(ctx context.Context, t *tenant, a *awake, prepare bool) error {
	h, err := dbfile.Acquire(t.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", untrusted.Printable(t.path), err)
	}
	a.hold = h
	if last, ok, _ := lastLocalHeader(t.path); ok {
		a.pageSize = last.PageSize
	}
	release := func() {}
	if prepare {
		release = e.prepareOpen(ctx, t, a)
	}
	err = e.openDB(ctx, t, a)
	release()
	if err != nil {
		e.closeDB(a, false)
		return err
	}
	return nil
}

// openDB opens the tenant in Litestream and makes its first local sync,
// which is where Litestream meets a file it cannot use: read-only, not a
// database, locked. On failure the caller closes it.
func (e *Engine) openDB(ctx context.Context, t *tenant, a *awake) error {
	db := litestream.NewDB(t.path)
	db.SetLogger(e.opt.LibLogger.With("db", t.name))
	// Litestream's time-based checkpoint makes an LTX file (its own
	// bookkeeping write) a minute after any change, which would keep an
	// idle tenant awake a minute more and cost a PUT. A tenant that sleeps
	// releases the WAL to the application's checkpoints anyway; the size
	// thresholds (MinCheckpointPageN, TruncatePageN) still apply awake.
	db.CheckpointInterval = 0
	db.Replica = litestream.NewReplicaWithClient(db, a.client)
	if err := db.Open(); err != nil {
		return fmt.Errorf("open %s: %w", untrusted.Printable(t.path), err)
	}
	a.db = db
	// An application's write, or its checkpoint, may hold the database's
	// lock a moment: that is no failure.
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		if err = db.Sync(ctx); err == nil || !isLocked(err) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(250*(attempt+1)) * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", untrusted.Printable(t.path), explainLocal(err))
	}
	return nil
}

// isLocked reports SQLite's "database is locked" (SQLITE_BUSY).
func isLocked(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}

// prepareOpen runs before Litestream opens a tenant with local state: when
// the WAL Litestream last read is gone (checkpointed, restarted, deleted
// while the tenant slept), it writes the next LTX file from the pages that
// changed, so that Litestream continues instead of snapshotting the whole
// database. It pins the WAL with a read transaction of its own until
// Litestream is open: call the returned func then. A database in rollback
// mode is not pinned: there is no WAL to keep, and a shared lock would
// block Litestream's switch back to WAL (and, while Litestream waits for
// it, the application's readers).
func (e *Engine) prepareOpen(ctx context.Context, t *tenant, a *awake) func() {
	noop := func() {}
	last, ok, err := lastLocalHeader(t.path)
	if err != nil || !ok {
		return noop
	}
	if st, _, err := readHeader(t.path); err != nil || !st.wal {
		return noop
	}
	p, err := openPin(ctx, t.path)
	if err != nil {
		return noop
	}
	st, err := readState(ctx, t.path)
	if err != nil || !st.wal {
		p.release()
		return noop
	}
	if continues(last, st) {
		e.log.Debug("wake: the WAL continues", "db", t.name, "txid", last.MaxTXID.String(), "wal_end", st.walEnd, "synced_to", last.WALOffset+last.WALSize)
		return p.release
	}
	a.pages.rollForward(t.path, last.MaxTXID)
	table, valid := a.pages.at(last.MaxTXID)
	if !valid || table.pageSize != st.pageSize {
		e.log.Debug("wake without a page table: Litestream snapshots", "db", t.name, "txid", last.MaxTXID.String())
		return p.release
	}
	n, wrote, err := writeDiff(ctx, p, t.path, last, table)
	switch {
	case err != nil:
		e.log.Warn("incremental wake failed: Litestream snapshots instead", "db", t.name, "error", err)
	case wrote:
		e.log.Debug("incremental wake", "db", t.name, "txid", (last.MaxTXID + 1).String(), "pages", n)
	}
	return p.release
}

// pageSizeChanged reports that the database's page size is no longer the
// one of Litestream's last local LTX file: the application changed it
// (journal_mode=DELETE, page_size, VACUUM) while the tenant slept. LTX files
// of two page sizes cannot be compacted or restored together, and
// Litestream cannot read the WAL from its old position: the history cannot
// continue.
func pageSizeChanged(ctx context.Context, path string) (from, to uint32, changed bool) {
	last, ok, err := lastLocalHeader(path)
	if err != nil || !ok {
		return 0, 0, false
	}
	st, _, err := readHeader(path)
	if err != nil || st.pageSize == last.PageSize {
		return 0, 0, false
	}
	return last.PageSize, st.pageSize, true
}

// explainLocal turns SQLite's words into what to check.
func explainLocal(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "readonly"), strings.Contains(msg, "read-only"):
		return fmt.Errorf("cannot write the database (read-only file or folder): %w", err)
	case strings.Contains(msg, "not a database"), strings.Contains(msg, "file is not a database"):
		return fmt.Errorf("not an SQLite database: %w", err)
	case strings.Contains(msg, "database is locked"), strings.Contains(msg, "SQLITE_BUSY"):
		return fmt.Errorf("the database is locked by another process: %w", err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("permission denied: %w", err)
	}
	return err
}

// closeDB closes the tenant's Litestream DB. With sync it makes a final
// sync to S3 first; without, nothing more is written: the claim is gone or
// the file was replaced.
func (e *Engine) closeDB(a *awake, sync bool) error {
	// The hold goes after Litestream's DB, the last connection of the
	// process to the file, has closed.
	defer a.hold.Release()
	if a.db == nil {
		return nil
	}
	if !sync {
		a.lost.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a.db.ShutdownSyncTimeout = 0
		_ = a.db.Close(ctx)
		return nil
	}
	return e.closeDBWithin(context.Background(), a)
}

// closeDBWithin closes the tenant's Litestream DB with a final sync, for
// at most two minutes and never past ctx.
func (e *Engine) closeDBWithin(ctx context.Context, a *awake) error {
	defer a.hold.Release()
	if a.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := a.db.Close(ctx)
	if a.client != nil && a.client.orphansLeft.Load() {
		// A failed upload's cut parts may have landed since its abort
		// and revived it: swept once more while the claim is still held.
		if _, serr := a.client.abortOrphans(ctx, nil, true); serr != nil {
			e.log.Warn("abandoned multipart uploads not swept at close", "db", a.client.tenant, "error", serr)
		}
	}
	return err
}

// positions reads the local and replicated TXIDs of an open tenant.
func (a *awake) positions() (local, replicated uint64) {
	if pos, err := a.db.Pos(); err == nil {
		local = uint64(pos.TXID)
	}
	a.client.mu.Lock()
	for _, o := range a.client.levels[0] {
		replicated = max(replicated, uint64(o.info.MaxTXID))
	}
	a.client.mu.Unlock()
	return local, replicated
}

// store returns the Litestream Store whose compaction and retention logic
// the engine runs for tenants of a snapshot retention. It is never opened:
// its monitors would touch databases the engine is closing.
func (e *Engine) store(retention time.Duration) *litestream.Store {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.stores[retention]; ok {
		return s
	}
	s := litestream.NewStore(nil, litestream.DefaultCompactionLevels)
	if retention > 0 {
		s.SnapshotRetention = retention
	}
	s.Logger = e.opt.LibLogger
	e.stores[retention] = s
	return s
}

// maintainDue reports whether a compaction or retention check is due.
func (a *awake) maintainDue(now time.Time) bool {
	if now.After(a.nextL0) || now.After(a.nextPageSave) {
		return true
	}
	for _, at := range a.nextCompact {
		if now.After(at) {
			return true
		}
	}
	return false
}

// maintain runs the compactions, snapshots and retention checks that are
// due, as Litestream's Store monitors would.
func (e *Engine) maintain(ctx context.Context, t *tenant, a *awake) {
	store := e.store(t.target.Retention)
	now := e.opt.Now()
	levels := append(litestream.CompactionLevels{}, litestream.DefaultCompactionLevels[1:]...)
	levels = append(levels, store.SnapshotLevel())
	for _, lvl := range levels {
		if now.Before(a.nextCompact[lvl.Level]) {
			continue
		}
		a.nextCompact[lvl.Level] = lvl.NextCompactionAt(now)
		if lvl.Level == litestream.SnapshotLevel {
			if since, ok := a.client.lastFullState(); ok && now.Sub(since) < store.SnapshotInterval {
				// The newest snapshot, or the full first file of the
				// history, is recent: a wake must not upload the whole
				// database again.
				a.nextCompact[lvl.Level] = since.Add(store.SnapshotInterval)
				continue
			}
		}
		_, err := store.CompactDB(ctx, a.db, lvl)
		switch {
		case err == nil, errors.Is(err, litestream.ErrNoCompaction), errors.Is(err, litestream.ErrCompactionTooEarly), errors.Is(err, litestream.ErrDBNotReady):
		case errors.Is(err, errFenced), ctx.Err() != nil:
			return
		default:
			e.opt.LibLogger.Error("compaction failed", "db", t.name, "level", lvl.Level, "error", err)
		}
		if lvl.Level == litestream.SnapshotLevel {
			if err := store.EnforceSnapshotRetention(ctx, a.db); err != nil && !errors.Is(err, errFenced) && ctx.Err() == nil {
				e.opt.LibLogger.Error("retention enforcement failed", "db", t.name, "error", err)
			}
		}
	}
	if !now.Before(a.nextPageSave) {
		a.nextPageSave = now.Add(e.opt.SavePagesEvery)
		if err := a.pages.save(t.path); err != nil {
			e.log.Warn("save page table", "db", t.name, "error", err)
		}
	}
	if !now.Before(a.nextL0) {
		a.nextL0 = now.Add(litestream.DefaultL0RetentionCheckInterval)
		if err := a.db.EnforceL0RetentionByTime(ctx); err != nil && !errors.Is(err, errFenced) && ctx.Err() == nil {
			e.opt.LibLogger.Error("l0 retention enforcement failed", "db", t.name, "error", err)
		}
	}
}

func newAwake(opened identity, pages *pageTable, now time.Time, saveEvery time.Duration) *awake {
	if pages == nil {
		pages = &pageTable{}
	}
	a := &awake{opened: opened, pages: pages, nextCompact: map[int]time.Time{}, nextL0: now.Add(litestream.DefaultL0RetentionCheckInterval),
		nextPageSave: now.Add(saveEvery)}
	for _, lvl := range litestream.DefaultCompactionLevels[1:] {
		a.nextCompact[lvl.Level] = lvl.NextCompactionAt(now)
	}
	a.nextCompact[litestream.SnapshotLevel] = now // a snapshot, if none is recent (see maintain)
	return a
}

// dropUnreplicated removes the local L0 files above the replicated TXID:
// after the file under an open database was replaced they may hold pages
// of both files, and must never be uploaded.
func dropUnreplicated(path string, replicated ltx.TXID) (int, error) {
	dir := layout.LTXLevelDir(metaDir(path), 0)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, ent := range ents {
		_, maxTXID, err := ltx.ParseFilename(ent.Name())
		if err != nil || maxTXID <= replicated {
			continue
		}
		if err := os.Remove(filepath.Join(dir, ent.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}

// localL0 returns the newest local L0 file's range and its trailer, from
// Litestream's state beside the database; zero when there is none.
func localL0(path string) (minTXID, maxTXID ltx.TXID, trailer ltx.Trailer, err error) {
	dir := layout.LTXLevelDir(metaDir(path), 0)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, 0, ltx.Trailer{}, nil
		}
		return 0, 0, ltx.Trailer{}, err
	}
	var name string
	for _, ent := range ents {
		lo, hi, err := ltx.ParseFilename(ent.Name())
		if err != nil || hi < maxTXID {
			continue
		}
		minTXID, maxTXID, name = lo, hi, ent.Name()
	}
	if name == "" {
		return 0, 0, ltx.Trailer{}, nil
	}
	trailer, err = readLocalTrailer(filepath.Join(dir, name))
	return minTXID, maxTXID, trailer, err
}

// localTrailer reads the trailer of the local L0 file of exactly [lo, hi].
func localTrailer(path string, lo, hi ltx.TXID) (ltx.Trailer, bool, error) {
	file := layout.LTXPath(metaDir(path), 0, lo, hi)
	t, err := readLocalTrailer(file)
	if errors.Is(err, os.ErrNotExist) {
		return ltx.Trailer{}, false, nil
	}
	return t, err == nil, err
}

func readLocalTrailer(file string) (ltx.Trailer, error) {
	f, err := os.Open(file)
	if err != nil {
		return ltx.Trailer{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ltx.Trailer{}, err
	}
	if st.Size() < ltx.HeaderSize+ltx.TrailerSize {
		return ltx.Trailer{}, fmt.Errorf("%s is too small for an LTX file", file)
	}
	b := make([]byte, ltx.TrailerSize)
	if _, err := f.ReadAt(b, st.Size()-ltx.TrailerSize); err != nil {
		return ltx.Trailer{}, err
	}
	var t ltx.Trailer
	return t, t.UnmarshalBinary(b)
}
