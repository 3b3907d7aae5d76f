package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// The host states a replicator publishes for a tenant (the replicate
// command's words; package replication defines them, and imports this
// one).
const (
	hostStateReplicating = "replicating"
	hostStateSleeping    = "sleeping"
	hostStateLeased      = "leased elsewhere"
	hostStateStopped     = "stopped"
)

// HostSummary is one replicating host of the bucket, as its heartbeat and
// its host record show it.
type HostSummary struct {
	Name string `json:"host"`
	// Age is its heartbeat's age at the refresh, by S3's clock.
	Age time.Duration `json:"heartbeat_age_ns"`
	// Silent says the heartbeat is hosts.DeadAfter old or more: the host
	// is down or cut off, and other hosts may take its tenants.
	Silent bool `json:"silent"`
	// Tenants counts the tenants of this prefix it reports.
	Tenants  int       `json:"tenants"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	RecordAt time.Time `json:"record_at,omitzero"`
	// Error says why its record could not be read.
	Error string `json:"error,omitempty"`
}

// HostReport is what one host's record says of one tenant.
type HostReport struct {
	Tenant string `json:"tenant"`
	Host   string `json:"host"`
	// State is the host's state for the tenant (replicating, sleeping,
	// leased elsewhere, lease lost (retrying), sync failing, diverged,
	// missing, failed, starting, stopped) and Reason why, for the states
	// that have one.
	State      string `json:"state"`
	Reason     string `json:"reason,omitempty"`
	LocalTXID  uint64 `json:"local_txid"`
	Replicated uint64 `json:"replicated_txid"`
	// Checksum is the database's LTX checksum at Replicated, as the host
	// recorded it (untrusted: compare, never print unchecked).
	Checksum string `json:"checksum,omitempty"`
	// Lag is now − the oldest local change not yet in S3: the record's
	// lag plus the record's age, when the record had changes to upload.
	Lag      time.Duration `json:"lag_ns"`
	LastSync time.Time     `json:"last_sync,omitzero"`
	Since    time.Time     `json:"since,omitzero"`
	HostAge  time.Duration `json:"host_age_ns"`
	Silent   bool          `json:"host_silent,omitempty"`
	// RecordAge is how old the record is, by S3's clock: its TXIDs and
	// state are as of then. StateAge is how long the host has been in
	// State, as of now: the state's age when the record was written (both
	// times the host's own) plus the record's age; 0 when unknown.
	RecordAge time.Duration `json:"record_age_ns"`
	StateAge  time.Duration `json:"state_age_ns,omitempty"`
	// VerifiedAt and tenants.Verdict are the host's last verification of the
	// tenant (replicate -verify-every): a verdict word of verify's, or "".
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	Verdict    string    `json:"verdict,omitempty"`
}

// verdicts are the words a host record's verdict may hold (verify's);
// anything else read from S3 is dropped.
var verdicts = map[string]bool{"verified": true, "mismatch": true, "broken chain": true, "unrestorable": true, "outside window": true, "unverifiable": true}

// replicates reports a host that replicates the tenant or tries to: it is
// the one to show, before a host for which another holds it.
func (r *HostReport) replicates() bool {
	return r.State != hostStateLeased && r.State != hostStateStopped
}

// better orders the reports of one tenant: a live host before a silent
// one, one that replicates it before one for which another holds it, then
// the furthest replicated position.
func better(a, b *HostReport) bool {
	if a.Silent != b.Silent {
		return !a.Silent
	}
	if a.replicates() != b.replicates() {
		return a.replicates()
	}
	if a.Replicated != b.Replicated {
		return a.Replicated > b.Replicated
	}
	return a.Host < b.Host
}

// hostRecords reads the bucket's host records: one LIST of the hosts'
// folder, then a GET of each record that changed since the last refresh.
// Safe for concurrent use.
type hostRecords struct {
	mu    sync.Mutex
	cache map[string]cachedRecord
}

type cachedRecord struct {
	at, deltaAt     time.Time
	size, deltaSize int64
	rec             *hosts.Record
	// refused is why the record was refused (*hosts.RecordError): kept
	// so that a hostile record is not fetched and decoded again at every
	// refresh while it stays the same.
	refused error
}

// errNoHosts says the bucket has no host record: no litefleet replicator
// of the current kind writes to it.
var errNoHosts = errors.New("no host records")

// read lists the hosts and reads their records, reporting every tenant of
// conn's prefix; reports are sorted best first per tenant.
func (hr *hostRecords) read(ctx context.Context, api s3conn.API, conn s3conn.Conn, now time.Time) ([]HostSummary, map[string][]HostReport, error) {
	infos, err := hosts.List(ctx, api, conn.Bucket, nil)
	if err != nil {
		return nil, nil, err
	}
	list := hosts.Sorted(infos)
	recs := make([]*hosts.Record, len(list))
	errs := make([]error, len(list))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	hr.mu.Lock()
	if hr.cache == nil {
		hr.cache = map[string]cachedRecord{}
	}
	for i, h := range list {
		if !h.HasRecord {
			continue
		}
		if c, ok := hr.cache[h.Name]; ok && c.at.Equal(h.RecordAt) && c.size == h.RecordSize && c.deltaAt.Equal(h.DeltaAt) && c.deltaSize == h.DeltaSize {
			recs[i], errs[i] = c.rec, c.refused
			continue
		}
		g.Go(func() error {
			r, err := hosts.ReadListed(gctx, api, conn.Bucket, h)
			if err != nil && gctx.Err() == nil {
				errs[i] = err
				return nil
			}
			recs[i] = r
			return gctx.Err()
		})
	}
	hr.mu.Unlock()
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}

	prefix := hosts.RecordPrefix(conn.TenantsPrefix())
	summaries := make([]HostSummary, 0, len(list))
	reports := map[string][]HostReport{}
	hr.mu.Lock()
	defer hr.mu.Unlock()
	for i, h := range list {
		age := h.AgeAt(now)
		hs := HostSummary{Name: h.Name, Age: age, Silent: age >= hosts.DeadAfter, RecordAt: h.RecordAt}
		var refused *hosts.RecordError
		switch {
		case errors.As(errs[i], &refused):
			// Said as it is: it is about the record, not about S3. Its
			// host's tenants are listed from S3, as if it had none.
			hs.Error = errs[i].Error()
			hr.cache[h.Name] = cachedRecord{at: h.RecordAt, size: h.RecordSize, deltaAt: h.DeltaAt, deltaSize: h.DeltaSize, refused: errs[i]}
		case errs[i] != nil:
			hs.Error = s3conn.Explain(errs[i], conn).Error()
		}
		r := recs[i]
		if r == nil {
			summaries = append(summaries, hs)
			continue
		}
		hr.cache[h.Name] = cachedRecord{at: h.RecordAt, size: h.RecordSize, deltaAt: h.DeltaAt, deltaSize: h.DeltaSize, rec: r}
		hs.Version, hs.Started = r.Version, r.Started
		// The record's age by S3's clock: the heartbeat's age plus how
		// much older the record (its delta, when one was applied) is than
		// the heartbeat.
		written := h.RecordAt
		if r.Delta && h.HasDelta {
			written = h.DeltaAt
		}
		recordAge := max(age+h.LastBeat.Sub(written), 0)
		hs.RecordAt = written
		for _, t := range r.Tenants {
			if t.Prefix != prefix || s3browse.CheckName(t.Name) != nil {
				continue
			}
			if rs := reports[t.Name]; len(rs) > 0 && rs[len(rs)-1].Host == h.Name {
				// Named twice by one record (none of litefleet's): the
				// first stands, so that a record that repeats a name costs
				// one report, not one per repetition.
				continue
			}
			rep := HostReport{
				Tenant: t.Name, Host: h.Name, State: t.State, Reason: t.Reason,
				LocalTXID: t.Local, Replicated: t.Replicated, Checksum: t.Checksum,
				HostAge: age, Silent: hs.Silent,
			}
			if t.Local > t.Replicated {
				// The change it waited for was there when the record was
				// written: it has waited that much longer since.
				rep.Lag = time.Duration(max(t.LagMillis, 0))*time.Millisecond + recordAge
			}
			if t.LastSync > 0 {
				rep.LastSync = time.Unix(t.LastSync, 0).UTC()
			}
			if t.Since > 0 {
				rep.Since = time.Unix(t.Since, 0).UTC()
				if !r.At.IsZero() {
					rep.StateAge = max(r.At.Sub(rep.Since), 0) + recordAge
				}
			}
			rep.RecordAge = recordAge
			if t.VerifiedAt > 0 && verdicts[t.Verdict] {
				rep.VerifiedAt, rep.Verdict = time.Unix(t.VerifiedAt, 0).UTC(), t.Verdict
			}
			reports[t.Name] = append(reports[t.Name], rep)
			hs.Tenants++
		}
		summaries = append(summaries, hs)
	}
	for name := range hr.cache {
		if _, ok := infos[name]; !ok {
			delete(hr.cache, name) // a host that is gone
		}
	}
	for _, rs := range reports {
		sort.Slice(rs, func(i, j int) bool { return better(&rs[i], &rs[j]) })
	}
	if len(reports) == 0 {
		return summaries, nil, errNoHosts
	}
	return summaries, reports, nil
}

// live reports whether a live host that replicates the tenant reports it:
// then its position comes from the record, and its objects need no
// listing.
func live(rs []HostReport) bool { return len(rs) > 0 && !rs[0].Silent && rs[0].replicates() }

// recordSummary is a tenant's S3 side as its host's record tells it.
func recordSummary(name string, r *HostReport) s3browse.TenantSummary {
	s := s3browse.TenantSummary{Prefix: s3browse.Prefix{Name: name, Valid: true}, Source: s3browse.SourceHostRecord, HasLease: true}
	s.Format = s3browse.FormatEmpty
	if r.Replicated > 0 {
		s.Format = s3browse.FormatLTX
		s.LatestTXID, s.LatestTXIDHex = r.Replicated, layout.TXIDHex(r.Replicated)
		s.LatestAt, s.LatestLTXAt = r.LastSync, r.LastSync
	}
	return s
}

// perTenantLimit is how many tenants are listed one prefix at a time
// before a full listing of the bucket is cheaper: a tenant has about ten
// objects (LTX files of several levels, its claim), so a full listing
// costs about one request per hundred tenants.
func perTenantLimit(tenants int) int { return max(16, tenants/100) }

// remoteSide is the S3 side of a refresh: the host records, and the
// objects of the tenants no live host reports (or of every tenant with
// full). It returns the tenants' summaries (sorted by name), the hosts,
// each tenant's reports, and an error that says the bucket could not be
// listed.
func (f *Fleet) remoteSide(ctx context.Context, now time.Time) ([]s3browse.TenantSummary, []HostSummary, map[string][]HostReport, error) {
	hostList, reports, herr := f.records.read(ctx, f.API, f.Conn, now)
	switch {
	case herr == nil, errors.Is(herr, errNoHosts):
	case ctx.Err() != nil:
		return nil, nil, nil, ctx.Err()
	case s3conn.IsAccessDenied(herr):
		// A key that may list the tenants but not .litefleet/: no host
		// view, the full listing as before.
		hostList, reports = nil, nil
	default:
		return nil, nil, nil, herr
	}
	if f.FullScan || len(reports) == 0 {
		remote, err := s3browse.Scan(ctx, f.API, f.Conn)
		return remote, hostList, reports, err
	}
	prefixes, err := s3browse.ListTenants(ctx, f.API, f.Conn)
	if err != nil {
		return nil, nil, nil, err
	}
	var unreported []string
	inS3 := make(map[string]bool, len(prefixes))
	for _, p := range prefixes {
		inS3[p.Name] = true
		if !live(reports[p.Name]) {
			unreported = append(unreported, p.Name)
		}
	}
	if len(unreported) > perTenantLimit(len(prefixes)) {
		remote, err := s3browse.Scan(ctx, f.API, f.Conn)
		return remote, hostList, reports, err
	}
	remote := make([]s3browse.TenantSummary, 0, len(prefixes)+len(reports))
	listed := make([]s3browse.TenantSummary, len(unreported))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range unreported {
		g.Go(func() error {
			s, err := s3browse.Summarize(gctx, f.API, f.Conn, name)
			listed[i] = s
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, err
	}
	remote = append(remote, listed...)
	for _, p := range prefixes {
		if rs := reports[p.Name]; live(rs) {
			remote = append(remote, recordSummary(p.Name, &rs[0]))
		}
	}
	// A tenant a live host reports before its first upload has no prefix
	// yet: it still has a row, with nothing in S3.
	for name, rs := range reports {
		if !inS3[name] && live(rs) {
			remote = append(remote, recordSummary(name, &rs[0]))
		}
	}
	sort.Slice(remote, func(i, j int) bool { return remote[i].Name < remote[j].Name })
	return remote, hostList, reports, nil
}

// ApplyHostReports adds to joined rows what the best report of each
// tenant's hosts says (reports sorted best first, as Refresh has them).
func ApplyHostReports(rows []Row, reports map[string][]HostReport, opt ViewOptions) {
	if len(reports) == 0 {
		return
	}
	opt = opt.withDefaults()
	for i := range rows {
		if rs := reports[rows[i].Tenant]; len(rs) > 0 {
			applyHost(&rows[i], &rs[0], opt)
		}
	}
}

// applyHost adds to a joined row what the best host report says of its
// tenant: the host, its state and how old the record is. A host whose
// heartbeat is stale makes the row "host silent"; a host state that needs
// attention (sync failing, diverged, failed, missing, lease lost,
// starting) becomes the row's status, whatever the TXIDs say. The lag is
// always the row's own local TXID − its S3 TXID: this host's file's when
// it has one, else the TXID the replicating host reports, never a lag the
// record computed from other numbers than the row shows.
func applyHost(r *Row, rep *HostReport, opt ViewOptions) {
	r.Host, r.State, r.Reason, r.HostAge, r.HostSilent = rep.Host, rep.State, rep.Reason, rep.HostAge, rep.Silent
	r.HostLocalTXID, r.RecordAge, r.StateAge = rep.LocalTXID, rep.RecordAge, rep.StateAge
	r.VerifiedAt, r.Verdict = rep.VerifiedAt, rep.Verdict
	if r.Status == StatusInvalid {
		return
	}
	host := untrusted.Printable(rep.Host)
	if r.Local == nil {
		hostLag(r, rep)
	}
	switch {
	case rep.Silent:
		r.Status = StatusHostSilent
		r.Note = fmt.Sprintf("host %s is silent: last heartbeat %s ago (it last said %s)", host, rep.HostAge.Round(time.Second), untrusted.Printable(rep.State))
	case rep.State == hostStateReplicating || rep.State == hostStateSleeping:
		if r.LagUnknown != "" {
			if r.Local == nil {
				r.Status, r.Note = StatusUnknown, "lag unknown: "+r.LagUnknown
			}
			noteUpload(r, rep, host)
			return // judged from the listing and the file
		}
		r.Status, r.Note = StatusInSync, ""
		if r.LagTXIDs > 0 && r.Lag >= opt.LagThreshold {
			r.Status = StatusLagging
			r.Note = fmt.Sprintf("%d transaction(s) not in S3 for %s (host %s)", r.LagTXIDs, r.Lag.Round(time.Second), host)
		}
		noteUpload(r, rep, host)
	case rep.State == hostStateLeased:
		r.Status = StatusLeased
		r.Note = "host " + host + " reports it held by another host"
		if rep.Reason != "" {
			r.Note += ": " + untrusted.Printable(rep.Reason)
		}
	case rep.State == hostStateStopped:
		// Being stopped there: the listing's judgement stands.
	default:
		r.Status = Status(rep.State)
		if !r.Status.known() {
			r.Status = StatusError
		}
		r.Note = "host " + host + ": " + untrusted.Printable(rep.State)
		if rep.StateAge > 0 {
			r.Note += " for " + rep.StateAge.Round(time.Second).String()
		}
		if rep.Reason != "" {
			r.Note += ": " + untrusted.Printable(rep.Reason)
		}
	}
}

// noteUpload adds a big upload in flight to a replicating row's note (its
// progress leads the host's reason: "uploading 43 %, 20 MB of 46 MB"), so
// that a long upload shows as progress, not as a silent lag.
func noteUpload(r *Row, rep *HostReport, host string) {
	if !strings.HasPrefix(rep.Reason, "uploading") && !strings.HasPrefix(rep.Reason, "snapshotting") {
		return
	}
	note := "host " + host + ": " + untrusted.Printable(rep.Reason)
	if r.Note != "" {
		note = r.Note + "; " + note
	}
	r.Note = note
}

// lateBeat is a heartbeat's age past which its host missed a beat: its
// record cannot vouch for a tenant being in sync now.
const lateBeat = 2 * hosts.BeatEvery

// hostLag is the lag of a row with nothing local: the local TXID the host
// reports minus the row's S3 TXID (the record's own, or a listing's with
// -scan), with the wait the host measured; unknown where the host is
// silent or either TXID is.
func hostLag(r *Row, rep *HostReport) {
	switch {
	case rep.Silent:
		r.unknownLag("host silent")
		return
	case !rep.replicates():
		return // another host holds it: the listing's judgement stands
	case rep.HostAge >= lateBeat:
		// A beat missed: the host is paused or cut off from S3 (it stops
		// uploading at hosts.FenceAfter), and its record, however recent,
		// says nothing of what the application wrote since.
		r.unknownLag(fmt.Sprintf("host's last heartbeat %s ago", rep.HostAge.Round(time.Second)))
		return
	case r.Remote == nil || r.Remote.Format == s3browse.FormatEmpty:
		r.unknownLag("nothing replicated in S3")
		return
	case rep.LocalTXID == 0 || r.Remote.LatestTXID == 0:
		r.unknownLag("no TXID to compare with")
		return
	}
	r.LagUnknown, r.LagTXIDs, r.Lag = "", 0, 0
	if rep.LocalTXID > r.Remote.LatestTXID {
		r.LagTXIDs = rep.LocalTXID - r.Remote.LatestTXID
		r.Lag = rep.Lag
	}
}

// AllHostReports reads every host record of conn's bucket once and returns
// what they say of each tenant, best first: what verify compares with.
func AllHostReports(ctx context.Context, api s3conn.API, conn s3conn.Conn) (map[string][]HostReport, error) {
	var hr hostRecords
	_, reports, err := hr.read(ctx, api, conn, time.Now())
	if err != nil && !errors.Is(err, errNoHosts) {
		return nil, err
	}
	return reports, nil
}

// Replicates reports a host that replicates the tenant or tries to (not
// one for which another holds it, nor one that stopped).
func (r *HostReport) Replicates() bool { return r.replicates() }

// HostReports reads every host record of conn's bucket and returns what
// each says of tenant, best first, with the hosts: what inspect shows.
func HostReports(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenant string) ([]HostReport, error) {
	var hr hostRecords
	_, reports, err := hr.read(ctx, api, conn, time.Now())
	if err != nil && !errors.Is(err, errNoHosts) {
		return nil, err
	}
	return reports[tenant], nil
}
