package restore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/dbfile"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/untrusted"
)

// How a followed file takes new LTX files, and why this way.
//
// Litestream's own `restore -f` writes each page into the file with
// pwrite under SQLite's exclusive lock bytes, and rewrites page 1 to say
// "rollback journal" with a random change counter so readers drop their
// caches. That leaves a torn database if the process dies mid-file, and a
// page 1 that differs from the replica's, so the file is no longer "the
// replica's pages" that replicate accepts as a restored copy to continue.
//
// litefleet writes the pages through SQLite instead, with the sqlite_dbpage
// virtual table, one write transaction per LTX file: SQLite takes its own
// locks, journals the change (the file is in WAL mode, as the replicated
// database was), and commits it atomically. Readers in other processes see
// each TXID whole or not at all, and a crash rolls back to the previous
// TXID. The pages are byte for byte the replica's but for page 1's change
// counter and version (bytes 24-27, 92-99), which SQLite sets itself when
// it commits page 1; replicate's check of a restored copy leaves them
// aside, so `replicate` on the followed file continues the tenant's
// history. The truncation is sqlite_dbpage's own (a NULL page past the new
// end, applied at commit).

// DefaultFollowInterval is how often a followed tenant's level 0 is listed.
const DefaultFollowInterval = time.Second

// Follow event kinds.
const (
	FollowRestored = "restored" // a full restore was made (Result, Reason on a gap)
	FollowApplied  = "applied"  // one LTX file was applied (TXID, Lag)
	FollowError    = "error"    // a poll failed; the next interval tries again (Err)
	FollowStopped  = "stopped"  // FollowAll: the tenant is followed no more (Err)
)

// FollowEvent reports one step of following a tenant.
type FollowEvent struct {
	Kind   string
	Tenant string
	Output string
	// TXID is what the file holds now; Lag how long ago the replicator
	// committed it (FollowApplied).
	TXID   uint64
	Lag    time.Duration
	Result *Result
	Err    error
	// Reason says why a full restore was made again.
	Reason string
}

// FollowOptions says what to follow: Options as for Run (the latest
// state, LTX files only), how often to look, and who hears of it.
type FollowOptions struct {
	Options
	// Interval between two listings of level 0; DefaultFollowInterval
	// when zero.
	Interval time.Duration
	// OnEvent hears of every step; calls never overlap for one tenant.
	OnEvent func(FollowEvent)
}

// StoppedError ends following a tenant: its file became a live database
// (replicated), which a follower must never write.
type StoppedError struct{ Reason string }

func (e *StoppedError) Error() string { return e.Reason }

// errGap says the replica no longer holds the next TXID in level 0: a
// compaction removed files not applied yet, or a new history started.
type errGap struct{ reason string }

func (e *errGap) Error() string { return e.reason }

// Follow restores opt.Tenant as Run does, then applies each new level-0
// LTX file to the output as it appears, in TXID order, until ctx is
// cancelled, which is a clean stop (nil). A gap in level 0 means a full
// restore again. Only the first restore's failure is returned; later
// failures are reported as FollowError events and retried.
func Follow(ctx context.Context, client s3conn.API, opt FollowOptions) error {
	if err := opt.checkFollow(); err != nil {
		return err
	}
	opt.Source = SourceLTX
	res, err := Run(ctx, client, opt.Options)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	f := newFollower(client, opt, res)
	return f.run(ctx)
}

func (opt FollowOptions) checkFollow() error {
	switch {
	case opt.TXID != 0 || !opt.Timestamp.IsZero():
		return errors.New("follow restores the latest state: drop -txid and -timestamp")
	case opt.DryRun:
		return errors.New("follow writes the file: drop -dry-run")
	case opt.Source == SourceGenerations:
		return errors.New("follow reads v0.5 LTX files: v0.3 generations cannot be followed")
	}
	return nil
}

// follower keeps one followed file up to date.
type follower struct {
	api  s3conn.API
	opt  FollowOptions
	out  string
	txid uint64
	// anchor is the last level-0 file the followed file holds; nil when
	// its last TXID came from a compacted file.
	anchor *l0Object
	// stopped: FollowAll follows the tenant no more (a StoppedError).
	stopped bool
	// lastPoll, lastMoved and failed drive FollowAll's choice of the
	// tenants to poll (due).
	lastPoll, lastMoved time.Time
	failed              bool

	hold *dbfile.Hold
	db   *sql.DB
}

func newFollower(api s3conn.API, opt FollowOptions, res *Result) *follower {
	opt.Output = res.Output
	f := &follower{api: api, opt: opt, out: res.Output, txid: res.TXID, anchor: anchorOf(res)}
	f.emit(FollowEvent{Kind: FollowRestored, Result: res})
	return f
}

func (f *follower) emit(ev FollowEvent) {
	ev.Tenant, ev.Output = f.opt.Tenant, f.out
	if ev.TXID == 0 {
		ev.TXID = f.txid
	}
	if f.opt.OnEvent != nil {
		f.opt.OnEvent(ev)
	}
}

func (f *follower) run(ctx context.Context) error {
	defer f.close()
	interval := f.opt.Interval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := f.step(ctx); err != nil {
			return err
		}
	}
}

// step makes one poll, and a full restore on a gap; failures are reported
// and left for the next interval.
//
// A StoppedError is returned, not reported: following ends.
func (f *follower) step(ctx context.Context) error {
	err := f.poll(ctx)
	var gap *errGap
	if errors.As(err, &gap) {
		err = f.restoreAgain(ctx, gap.reason)
	}
	var stop *StoppedError
	if errors.As(err, &stop) {
		f.close()
		return stop
	}
	f.failed = err != nil
	if err != nil && ctx.Err() == nil {
		f.emit(FollowEvent{Kind: FollowError, Err: err})
	}
	return nil
}

// checkNotLive refuses to write a followed file that has become a live
// database: one this process or a Litestream replicates (its state beside
// the file), as after a promotion started while still following.
func (f *follower) checkNotLive() error {
	if f.opt.IsReplicating != nil {
		if tenant, ok := f.opt.IsReplicating(f.out); ok {
			return &StoppedError{fmt.Sprintf("%s is now replicated by this process as tenant %s: following stops", untrusted.Printable(f.out), untrusted.Printable(tenant))}
		}
	}
	if tenants.HasLitestreamState(f.out) {
		return &StoppedError{fmt.Sprintf("%s has Litestream's state beside it (%s): a replicator took it over, following stops and writes it no more",
			untrusted.Printable(f.out), untrusted.Printable(layout.LitestreamStateDir(f.out)))}
	}
	return nil
}

// l0Object is a level-0 file as listed.
type l0Object struct {
	info ltx.FileInfo
	etag string
}

// poll lists level 0 from the last applied file on (one LIST) and applies
// the files after it in order. The last applied file is listed too, as
// the anchor: while it is there unchanged, the files after it continue the
// history the followed file holds. Gone or changed, a compaction removed
// it or a new history replaced it (whose TXIDs could follow the file's
// by number alone), and the file is restored again in full.
func (f *follower) poll(ctx context.Context) error {
	files, err := f.listL0(ctx)
	if err != nil {
		return err
	}
	if f.anchor != nil {
		if len(files) == 0 || files[0].info.MinTXID != f.anchor.info.MinTXID || files[0].info.MaxTXID != f.anchor.info.MaxTXID ||
			(f.anchor.etag != "" && files[0].etag != f.anchor.etag) {
			return &errGap{fmt.Sprintf("level-0 file %s, the last applied, is gone or changed: compacted away, or a new history started",
				ltx.FormatFilename(f.anchor.info.MinTXID, f.anchor.info.MaxTXID))}
		}
		f.anchor.etag = files[0].etag // unknown after a full restore
		files = files[1:]
	}
	for _, o := range files {
		fi := o.info
		if fi.MaxTXID <= ltx.TXID(f.txid) {
			continue
		}
		if err := f.checkNotLive(); err != nil {
			return err
		}
		if fi.MinTXID != ltx.TXID(f.txid+1) {
			return &errGap{fmt.Sprintf("level 0 holds %s next, not TXID %s: files were compacted before they were applied", ltx.FormatFilename(fi.MinTXID, fi.MaxTXID), ltx.TXID(f.txid+1))}
		}
		hdr, err := f.apply(ctx, fi)
		if err != nil {
			return err
		}
		f.txid = uint64(hdr.MaxTXID)
		f.anchor = &o
		f.emit(FollowEvent{Kind: FollowApplied, Lag: time.Since(time.UnixMilli(hdr.Timestamp))})
	}
	return nil
}

// listL0 lists the tenant's level-0 files from the anchor on: the names
// sort by TXID, so StartAfter skips the older ones and an idle tenant
// costs one LIST that returns the anchor alone.
func (f *follower) listL0(ctx context.Context) ([]l0Object, error) {
	conn := f.opt.Conn
	dir := conn.TenantPath(f.opt.Tenant) + "/0000/"
	// Just before the anchor's name (same length, last TXID one less), or
	// past every file holding TXIDs the file has.
	after := dir + fmt.Sprintf("%016x-ffffffffffffffff.ltx", f.txid)
	if a := f.anchor; a != nil {
		after = dir + fmt.Sprintf("%016x-%016x.ltx", uint64(a.info.MinTXID), uint64(a.info.MaxTXID)-1)
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(conn.Bucket), Prefix: aws.String(dir), StartAfter: aws.String(after)}
	var files []l0Object
	for {
		page, err := f.api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list level 0: %w", explainS3(err, conn, f.opt.Tenant))
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			_, minTX, maxTX, ok := layout.LTXObject("0000", path.Base(key), aws.ToInt64(o.Size))
			if ok {
				files = append(files, l0Object{
					info: ltx.FileInfo{Level: 0, MinTXID: minTX, MaxTXID: maxTX, Size: aws.ToInt64(o.Size)},
					etag: aws.ToString(o.ETag),
				})
			}
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	slices.SortFunc(files, func(a, b l0Object) int { return cmp.Compare(a.info.MinTXID, b.info.MinTXID) })
	return files, nil
}

// anchorOf is the anchor after a full restore: its last file when that is
// a level-0 file (its ETag is learnt at the next listing), else none.
func anchorOf(res *Result) *l0Object {
	if res.Plan == nil || len(res.Plan.Files) == 0 {
		return nil
	}
	last := res.Plan.Files[len(res.Plan.Files)-1]
	if last.Level != 0 || last.MaxTXID != res.TXID {
		return nil
	}
	return &l0Object{info: ltx.FileInfo{MinTXID: ltx.TXID(last.MinTXID), MaxTXID: ltx.TXID(last.MaxTXID)}}
}

// open opens the followed file with SQLite, under a dbfile hold (the
// package's rule for every SQLite connection of the process).
func (f *follower) open() error {
	if f.db != nil {
		return nil
	}
	hold, err := dbfile.Acquire(f.out)
	if err != nil {
		return fmt.Errorf("open %s: %w", untrusted.Printable(f.out), err)
	}
	dsn := "file:" + (&url.URL{Path: f.out}).EscapedPath() + "?_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		hold.Release()
		return fmt.Errorf("open %s: %w", untrusted.Printable(f.out), err)
	}
	db.SetMaxOpenConns(1)
	f.hold, f.db = hold, db
	return nil
}

// close closes the connection; SQLite checkpoints the WAL into the file
// and removes it, leaving one plain database file.
func (f *follower) close() {
	if f.db != nil {
		_ = f.db.Close()
		f.hold.Release()
		f.db, f.hold = nil, nil
	}
}

// apply writes one LTX file's pages into the followed file in one SQLite
// write transaction (see the note at the top of this file).
func (f *follower) apply(ctx context.Context, fi ltx.FileInfo) (ltx.Header, error) {
	key := ltxKey(f.opt.Conn.TenantPath(f.opt.Tenant), 0, fi.MinTXID, fi.MaxTXID)
	obj, err := f.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.opt.Conn.Bucket), Key: aws.String(key)})
	if err != nil {
		if noKey := (*types.NoSuchKey)(nil); errors.As(err, &noKey) {
			return ltx.Header{}, &errGap{fmt.Sprintf("%s was removed before it was applied", key)}
		}
		return ltx.Header{}, fmt.Errorf("read %s: %w", key, explainS3(err, f.opt.Conn, f.opt.Tenant))
	}
	defer obj.Body.Close()
	dec := ltx.NewDecoder(obj.Body)
	if err := dec.DecodeHeader(); err != nil {
		return ltx.Header{}, fmt.Errorf("object %s: not a readable LTX file: %w", key, err)
	}
	hdr := dec.Header()
	if hdr.MinTXID != fi.MinTXID || hdr.MaxTXID != fi.MaxTXID {
		return hdr, fmt.Errorf("object %s holds TXIDs %s-%s, not what its name says: the replica is damaged", key, hdr.MinTXID, hdr.MaxTXID)
	}
	if err := f.open(); err != nil {
		return hdr, err
	}
	conn, err := f.db.Conn(ctx)
	if err != nil {
		return hdr, fmt.Errorf("open %s: %w", untrusted.Printable(f.out), err)
	}
	defer conn.Close()
	var pageSize uint32
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return hdr, fmt.Errorf("read the page size of %s: %w", untrusted.Printable(f.out), err)
	}
	if hdr.PageSize != pageSize {
		return hdr, &errGap{fmt.Sprintf("%s has pages of %d bytes, the file %d: a new history", key, hdr.PageSize, pageSize)}
	}
	// IMMEDIATE: take the write lock before the first page, waiting
	// (busy_timeout) for a reader's transaction in progress.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return hdr, fmt.Errorf("lock %s: %w", untrusted.Printable(f.out), err)
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	put, err := conn.PrepareContext(ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(?, ?)")
	if err != nil {
		return hdr, fmt.Errorf("write %s: %w", untrusted.Printable(f.out), err)
	}
	defer put.Close()
	lockPgno := hdr.LockPgno()
	data := make([]byte, hdr.PageSize)
	var ph ltx.PageHeader
	for {
		err := dec.DecodePage(&ph, data)
		if err == io.EOF {
			break
		} else if err != nil {
			return hdr, fmt.Errorf("object %s: corrupt: cannot decode a page: %w", key, err)
		}
		if ph.Pgno == lockPgno {
			continue
		}
		if _, err := put.ExecContext(ctx, ph.Pgno, data); err != nil {
			return hdr, fmt.Errorf("write page %d of %s: %w", ph.Pgno, untrusted.Printable(f.out), err)
		}
	}
	// Check the whole object (its checksum) before committing anything.
	if err := CloseDecoder(dec); err != nil {
		return hdr, fmt.Errorf("object %s: corrupt: %w", key, err)
	}
	// A NULL page past the end cuts the database to Commit pages at
	// COMMIT (sqlite_dbpage's truncation), as the replicated one was.
	if _, err := conn.ExecContext(ctx, "INSERT INTO sqlite_dbpage(pgno, data) VALUES(?, NULL)", hdr.Commit+1); err != nil {
		return hdr, fmt.Errorf("cut %s to %d pages: %w", untrusted.Printable(f.out), hdr.Commit, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return hdr, fmt.Errorf("commit TXID %s into %s: %w", hdr.MaxTXID, untrusted.Printable(f.out), err)
	}
	committed = true
	return hdr, nil
}

// restoreAgain replaces the followed file with a full restore of the
// latest state, after a gap. The file is closed first: SQLite folds the WAL
// back in, and the restore's checks (a process that has it open, a live
// replicated database) apply as on the first restore.
func (f *follower) restoreAgain(ctx context.Context, reason string) error {
	if err := f.checkNotLive(); err != nil {
		return err
	}
	f.close()
	opt := f.opt.Options
	opt.Force, opt.replace = true, true
	res, err := Run(ctx, f.api, opt)
	if err != nil {
		return fmt.Errorf("restore again after a gap (%s): %w", reason, err)
	}
	f.txid, f.anchor = res.TXID, anchorOf(res)
	f.emit(FollowEvent{Kind: FollowRestored, Result: res, Reason: reason})
	return nil
}

// FollowAllOptions says which tenants to follow into which folder: a warm
// standby of the fleet.
type FollowAllOptions struct {
	AllOptions
	// Interval between two polls of every tenant; DefaultFollowInterval
	// when zero.
	Interval time.Duration
	// OnRestore hears of the first restore of the fleet (All's events).
	OnRestore func(Event)
	// OnEvent hears of every tenant's steps; calls never overlap.
	OnEvent func(FollowEvent)
	// OnRound is told the counts of each round of polls.
	// PollAll polls every tenant each round instead of only those the
	// hosts' records say moved (see followrecords.go).
	PollAll bool
	OnRound func(FollowRound)
}

// FollowRound counts one round of polls of the fleet.
type FollowRound struct {
	Tenants  int           // followed
	Polled   int           // tenants whose level 0 was listed this round
	Applied  int           // LTX files applied this round
	Changed  int           // tenants that moved this round
	Restored int           // full restores after a gap this round
	Errors   int           // polls that failed this round
	MaxLag   time.Duration // the largest lag of a file applied this round
}

// FollowAll restores every tenant as All does, then follows each one
// restored, polling at most opt.Parallel at a time, until ctx is
// cancelled (a clean stop: the summary of the first restore and nil). A
// tenant that failed to restore is reported and not followed.
func FollowAll(ctx context.Context, client s3conn.API, opt FollowAllOptions) (Summary, error) {
	if !opt.Timestamp.IsZero() || opt.DryRun || opt.Source == SourceGenerations {
		return Summary{}, errors.New("follow restores the latest state from LTX files: drop -timestamp, -dry-run and -source generations")
	}
	opt.Source = SourceLTX
	var followers []*follower
	var mu sync.Mutex
	emit := func(ev FollowEvent) {
		mu.Lock()
		defer mu.Unlock()
		if opt.OnEvent != nil {
			opt.OnEvent(ev)
		}
	}
	fopt := FollowOptions{Interval: opt.Interval}
	sum, err := All(ctx, client, opt.AllOptions, func(ev Event) {
		if ev.Kind == EventRestored {
			o := fopt
			o.Options = Options{Conn: opt.Conn, Tenant: ev.Tenant, Output: ev.Result.Output, IsReplicating: opt.IsReplicating, Source: SourceLTX}
			followers = append(followers, &follower{api: client, opt: o, out: ev.Result.Output, txid: ev.Result.TXID, anchor: anchorOf(ev.Result)})
		}
		if opt.OnRestore != nil {
			opt.OnRestore(ev)
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return sum, nil
		}
		return sum, err
	}
	interval := opt.Interval
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	parallel := opt.Parallel
	if parallel < 1 {
		parallel = DefaultParallel
	}
	var round FollowRound
	var watch recordWatch
	for _, f := range followers {
		f.opt.OnEvent = func(ev FollowEvent) {
			mu.Lock()
			switch ev.Kind {
			case FollowApplied:
				round.Applied++
				round.MaxLag = max(round.MaxLag, ev.Lag)
			case FollowRestored:
				round.Restored++
			case FollowError:
				round.Errors++
			}
			mu.Unlock()
			emit(ev)
		}
		defer f.close()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return sum, nil
		case <-t.C:
		}
		round = FollowRound{Tenants: len(followers)}
		var recs map[string]uint64
		haveRecs := false
		if !opt.PollAll {
			recs, haveRecs = watch.replicated(ctx, client, opt.Conn)
		}
		now := time.Now()
		var g errgroup.Group
		g.SetLimit(parallel)
		for _, f := range followers {
			if f.stopped || !f.due(now, recs, haveRecs) {
				continue
			}
			round.Polled++
			f.lastPoll = now
			g.Go(func() error {
				before := f.txid
				if err := f.step(ctx); err != nil {
					f.stopped = true
					mu.Lock()
					round.Errors++
					mu.Unlock()
					emit(FollowEvent{Kind: FollowStopped, Tenant: f.opt.Tenant, Output: f.out, TXID: f.txid, Err: err})
				}
				if f.txid != before {
					f.lastMoved = time.Now()
					mu.Lock()
					round.Changed++
					mu.Unlock()
				}
				return nil
			})
		}
		_ = g.Wait() // steps report through events and never fail the group
		if ctx.Err() != nil {
			return sum, nil
		}
		if opt.OnRound != nil {
			opt.OnRound(round)
		}
	}
}
