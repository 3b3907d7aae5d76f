package restore

import (
	"context"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/s3conn"
)

// Why FollowAll reads the hosts' records: polling every tenant's level 0
// each interval costs a thousand LISTs a second for a thousand tenants,
// nearly all of them idle. Each litefleet replicator publishes a record of
// its tenants with the TXID each has replicated (hosts.Record), rewritten
// when it changes and at most once per hosts.BeatEvery. One LIST of the
// hosts' folder per round says which records changed; reading those says
// which tenants moved. A tenant is then polled when:
//   - no record names it (plain Litestream, a host without records, a
//     record refused): every round, as without records;
//   - its record's TXID is past the file's;
//   - it moved within hotFor: a writing tenant's record lags up to
//     BeatEvery, so while it writes it is polled every round;
//   - it was not polled for sweepEvery: records are untrusted, and a wrong
//     one costs at most that much lag.
//
// A tenant that starts writing after a quiet spell is so seen within a
// record's delay (BeatEvery) plus an interval; from then on, within an
// interval.

const (
	hotFor     = 30 * time.Second
	sweepEvery = time.Hour
)

// recordWatch reads the hosts' records, keeping each until it changes.
type recordWatch struct {
	cache map[string]watchedRecord // by host
}

type watchedRecord struct {
	at, deltaAt     time.Time
	size, deltaSize int64
	rec             *hosts.Record // nil: refused or unreadable
}

// replicated returns, for every tenant of conn's prefix a record names,
// the highest TXID any record says it replicated. ok is false when the
// hosts' folder could not be listed: every tenant is then polled.
func (w *recordWatch) replicated(ctx context.Context, api s3conn.API, conn s3conn.Conn) (map[string]uint64, bool) {
	infos, err := hosts.List(ctx, api, conn.Bucket, nil)
	if err != nil {
		return nil, false
	}
	if w.cache == nil {
		w.cache = map[string]watchedRecord{}
	}
	prefix := hosts.RecordPrefix(conn.TenantsPrefix())
	out := map[string]uint64{}
	for name, h := range infos {
		if !h.HasRecord {
			delete(w.cache, name)
			continue
		}
		c, ok := w.cache[name]
		if !ok || !c.at.Equal(h.RecordAt) || c.size != h.RecordSize || !c.deltaAt.Equal(h.DeltaAt) || c.deltaSize != h.DeltaSize {
			r, err := hosts.ReadListed(ctx, api, conn.Bucket, h)
			if err != nil {
				r = nil // its tenants are polled as if it had none
			}
			c = watchedRecord{at: h.RecordAt, size: h.RecordSize, deltaAt: h.DeltaAt, deltaSize: h.DeltaSize, rec: r}
			w.cache[name] = c
		}
		if c.rec == nil {
			continue
		}
		for _, t := range c.rec.Tenants {
			if t.Prefix == prefix {
				out[t.Name] = max(out[t.Name], t.Replicated)
			}
		}
	}
	return out, true
}

// due says whether f is polled this round, given the records.
func (f *follower) due(now time.Time, recs map[string]uint64, haveRecs bool) bool {
	if !haveRecs || f.failed || now.Sub(f.lastMoved) < hotFor || now.Sub(f.lastPoll) >= sweepEvery {
		return true
	}
	txid, ok := recs[f.opt.Tenant]
	return !ok || txid > f.txid
}
