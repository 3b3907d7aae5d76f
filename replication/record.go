package replication

import (
	"context"
	"maps"
	"sort"
	"time"

	"github.com/litefleet/litefleet/hosts"
)

// hostRecord is what a bucket's host record says, kept as tenants change
// so that a beat costs what changed, not the fleet: the entries of the
// record last written whole, and the delta, the entries that changed since
// (hosts.Record.Base). A small fleet's record is always written whole; a
// large one's delta is written each beat it changes, and the record whole
// again once the delta holds an eighth of it.
type hostRecord struct {
	full   map[*tenant]hosts.TenantRecord
	fullAt time.Time // the At of the record last written whole
	delta  map[*tenant]hosts.TenantRecord
	// ver counts changes to the delta; pubVer is the ver last written.
	ver, pubVer uint64
	at          time.Time // when a write was last begun
	publishing  bool
	// lagging holds tenants written with a lag: it grows by itself, so
	// they are looked at every tick.
	lagging map[*tenant]bool
}

// wholeUpTo is the largest record always written whole: a delta saves
// nothing on a few hundred kilobytes.
const wholeUpTo = 2000

// recordSweep is how many ticks a walk of every tenant takes, behind the
// marks of what changed (recDirty): what a mark missed is written within
// it (10 minutes).
const recordSweep = 600

func newHostRecord() hostRecord {
	return hostRecord{full: map[*tenant]hosts.TenantRecord{}, delta: map[*tenant]hosts.TenantRecord{}, lagging: map[*tenant]bool{}}
}

// sameEntry: two entries say the same, their lag to the second.
func sameEntry(a, b hosts.TenantRecord) bool {
	a.LagMillis, b.LagMillis = a.LagMillis/1000, b.LagMillis/1000
	return a == b
}

// note brings the record's entry of t to tr (present), or removes it.
func (r *hostRecord) note(t *tenant, tr hosts.TenantRecord, present bool) {
	full, inFull := r.full[t]
	cur, inDelta := r.delta[t]
	has := inFull
	if inDelta {
		has = !cur.Gone
	} else {
		cur = full
	}
	if present && tr.LagMillis > 0 {
		r.lagging[t] = true
	} else {
		delete(r.lagging, t)
	}
	if present == has && (!present || sameEntry(cur, tr)) {
		return
	}
	switch {
	case present && inFull && sameEntry(full, tr), !present && !inFull:
		delete(r.delta, t) // back to what the whole record says
	case present:
		r.delta[t] = tr
	default:
		r.delta[t] = hosts.TenantRecord{Name: full.Name, Prefix: full.Prefix, Gone: true}
	}
	r.ver++
}

// recordEntryLocked is t's entry in its host's record; false when it has
// none (not replicated by this process).
func (e *Engine) recordEntryLocked(t *tenant, now time.Time) (hosts.TenantRecord, bool) {
	if !t.wanted && t.state == StateStopped {
		return hosts.TenantRecord{}, false
	}
	st := t.status(now)
	tr := hosts.TenantRecord{Name: st.Tenant, State: string(st.State), Reason: clip(st.Reason, 160),
		Local: st.LocalTXID, Replicated: st.ReplicatedTXID, LagMillis: st.Lag.Milliseconds(), Since: st.Since.Unix(),
		Prefix: t.recPrefix}
	if !st.LastSync.IsZero() {
		tr.LastSync = st.LastSync.Unix()
	}
	// The checksum goes with the TXID S3 acknowledged, or not at all.
	if txid, sum, ok := t.checksum(); ok && uint64(txid) == st.ReplicatedTXID {
		tr.Checksum = sum.String()
	}
	if !st.VerifiedAt.IsZero() {
		tr.VerifiedAt, tr.Verdict = st.VerifiedAt.Unix(), st.Verdict
	}
	return tr, true
}

// bucketOfLocked is the bucket whose record names t: its own once
// started, else the one of its connection (nil when none is known yet).
func (e *Engine) bucketOfLocked(t *tenant) *bucket {
	if t.bucket != nil {
		return t.bucket
	}
	return e.buckets[t.target.Conn.Endpoint+"\x00"+t.target.Conn.Bucket]
}

// noteRecordsLocked brings the records' entries up to date for what may
// have changed since the last tick: the tenants marked (state changes,
// jobs), the open and busy ones (positions, upload progress), the ones
// written with a lag, and a slice of the fleet as a safety net.
func (e *Engine) noteRecordsLocked(now time.Time) {
	look := func(t *tenant) {
		b := e.bucketOfLocked(t)
		if b == nil {
			return
		}
		tr, ok := e.recordEntryLocked(t, now)
		b.rec.note(t, tr, ok)
	}
	for t := range e.recDirty {
		look(t)
	}
	clear(e.recDirty)
	for t := range e.awake {
		look(t)
	}
	for t := range e.busySet {
		look(t)
	}
	for _, b := range e.buckets {
		for t := range b.rec.lagging {
			look(t)
		}
	}
	if n := len(e.all); n > 0 {
		step := max(1, (n+recordSweep-1)/recordSweep)
		for range min(step, n) {
			e.recCursor = (e.recCursor + 1) % n
			look(e.all[e.recCursor])
		}
	}
}

// publishLocked writes each bucket's host record, or its delta, when it
// changed, at most once per heartbeat interval, in the background.
func (e *Engine) publishLocked(now time.Time) {
	e.noteRecordsLocked(now)
	for _, b := range e.buckets {
		r := &b.rec
		if b.beat == nil || r.publishing || b.fenced || now.Sub(r.at) < e.opt.Timing.BeatEvery {
			continue
		}
		// A record deleted after a gap in the beats is written again,
		// whole, at once, changed or not (hosts.Beater.RecordDropped): a
		// delta against it would be read as nothing.
		dropped := b.beat.RecordDropped()
		if r.ver == r.pubVer && !r.fullAt.IsZero() && !dropped {
			continue
		}
		rec := &hosts.Record{At: now.UTC()}
		ver := r.ver
		whole := dropped || r.fullAt.IsZero() || len(r.full) <= wholeUpTo || len(r.delta) > len(r.full)/8
		var next map[*tenant]hosts.TenantRecord
		if whole {
			next = maps.Clone(r.full)
			for t, tr := range r.delta {
				if tr.Gone {
					delete(next, t)
				} else {
					next[t] = tr
				}
			}
			rec.Tenants = sortedEntries(next)
		} else {
			rec.Base = r.fullAt
			rec.Tenants = sortedEntries(r.delta)
		}
		r.publishing, r.at = true, now
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			ctx, cancel := context.WithTimeout(e.ctx, e.opt.Timing.BeatEvery)
			err := b.beat.Publish(ctx, rec)
			cancel()
			e.mu.Lock()
			r.publishing = false
			switch {
			case err != nil:
			case whole:
				r.full, r.fullAt = next, rec.At
				// What changed while it was written stays in the delta,
				// to be written against the new record.
				for t, tr := range r.delta {
					if cur, ok := next[t]; ok && sameEntry(cur, tr) || !ok && tr.Gone {
						delete(r.delta, t)
					}
				}
				r.pubVer = ver
				if len(r.delta) > 0 {
					r.pubVer = r.ver - 1
				}
			default:
				r.pubVer = ver
			}
			e.mu.Unlock()
			if err != nil && e.ctx.Err() == nil {
				e.log.Warn("host record not written", "bucket", b.conn.Bucket, "error", err)
			}
		}()
	}
}

// sortedEntries lists entries by name, then prefix.
func sortedEntries(m map[*tenant]hosts.TenantRecord) []hosts.TenantRecord {
	out := make([]hosts.TenantRecord, 0, len(m))
	for _, tr := range m {
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Prefix < out[j].Prefix
	})
	return out
}
