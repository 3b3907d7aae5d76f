// Package hostview reads the bucket's host records into what each host
// says of each tenant (HostReport, best first) and of itself
// (HostSummary): the host side of ls, inspect, the UI and verify's
// expected checksums. fleet joins it with the disk and the listing.
package hostview

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
)

// The host states a replicator publishes for a tenant (the replicate
// command's words; package replication defines them).
const (
	StateReplicating = "replicating"
	StateSleeping    = "sleeping"
	StateLeased      = "leased elsewhere"
	StateStopped     = "stopped"
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
	// VerifiedAt and Verdict are the host's last verification of the
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
	return r.State != StateLeased && r.State != StateStopped
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

// Records reads the bucket's host records: one LIST of the hosts'
// folder, then a GET of each record that changed since the last refresh.
// Safe for concurrent use.
type Records struct {
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

// ErrNoHosts says the bucket has no host record: no litefleet replicator
// of the current kind writes to it.
var ErrNoHosts = errors.New("no host records")

// Read lists the hosts and reads their records, reporting every tenant of
// conn's prefix; reports are sorted best first per tenant.
func (hr *Records) Read(ctx context.Context, api s3conn.API, conn s3conn.Conn, now time.Time) ([]HostSummary, map[string][]HostReport, error) {
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
		return summaries, nil, ErrNoHosts
	}
	return summaries, reports, nil
}

// Live reports whether a live host that replicates the tenant reports it:
// then its position comes from the record, and its objects need no
// listing.
func Live(rs []HostReport) bool { return len(rs) > 0 && !rs[0].Silent && rs[0].replicates() }

// AllHostReports reads every host record of conn's bucket once and returns
// what they say of each tenant, best first: what verify compares with.
func AllHostReports(ctx context.Context, api s3conn.API, conn s3conn.Conn) (map[string][]HostReport, error) {
	var hr Records
	_, reports, err := hr.Read(ctx, api, conn, time.Now())
	if err != nil && !errors.Is(err, ErrNoHosts) {
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
	var hr Records
	_, reports, err := hr.Read(ctx, api, conn, time.Now())
	if err != nil && !errors.Is(err, ErrNoHosts) {
		return nil, err
	}
	return reports[tenant], nil
}
