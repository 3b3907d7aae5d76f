package s3browse

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/litefleet/litefleet/layout"
)

// Format says which Litestream layout a tenant's prefix holds.
type Format string

// The formats, as printed and as written in JSON.
const (
	// FormatEmpty: no restore point and no unknown object (at most a lease).
	FormatEmpty Format = "empty"
	// FormatUnknown: objects, but none that Litestream would restore from.
	FormatUnknown Format = "unknown"
	// FormatLTX: Litestream v0.5 LTX files.
	FormatLTX Format = "ltx"
	// FormatGenerations: Litestream v0.3 generations.
	FormatGenerations Format = "generations"
	// FormatBoth: both layouts, as after upgrading a v0.3 replica in place.
	FormatBoth Format = "both"
)

// Totals are the figures that a listing row (TenantSummary) and a full
// report (Tenant) share. They come from keys, sizes and LastModified only.
type Totals struct {
	Format Format `json:"format"`
	// Objects and Bytes count everything under the tenant's path, lease and
	// unknown objects included: what the prefix costs in storage.
	Objects        int   `json:"objects"`
	Bytes          int64 `json:"bytes"`
	UnknownObjects int   `json:"unknown_objects"`
	// LatestTXID is the highest max TXID over all LTX levels; 0 without LTX
	// files. LatestTXIDHex spells it as in file names and `restore -txid`.
	LatestTXID    uint64 `json:"latest_txid"`
	LatestTXIDHex string `json:"latest_txid_hex,omitempty"`
	// LatestLTXAt is the LastModified of the newest LTX object.
	LatestLTXAt time.Time `json:"latest_ltx_at,omitzero"`
	// LatestAt is the LastModified of the newest restore-point object of
	// either layout: when the replica last received data.
	LatestAt time.Time `json:"latest_at,omitzero"`
	// Snapshots counts full snapshots: level-9 LTX files plus v0.3
	// snapshot objects.
	Snapshots int `json:"snapshots"`
	// WALSegments counts v0.3 WAL segment objects.
	WALSegments int `json:"wal_segments"`
}

// LevelStats sums the LTX files of one level. Level 0 holds one file per
// sync, 1 to 3 compactions, 9 (layout.SnapshotLevel) snapshots.
type LevelStats struct {
	Level      int    `json:"level"`
	Count      int    `json:"count"`
	Bytes      int64  `json:"bytes"`
	MaxTXID    uint64 `json:"max_txid"`
	MaxTXIDHex string `json:"max_txid_hex"`
}

// TenantSummary is one tenant as seen by one flat listing of the bucket:
// a row of `litefleet ls`.
type TenantSummary struct {
	Prefix // name, valid, problem: print Name with Display
	Totals
	// Levels has one entry per LTX level present, ascending.
	Levels []LevelStats `json:"levels"`
	// Generations counts v0.3 generations.
	Generations int `json:"generations"`
	// HasLease says lock.json exists; LeaseModifiedAt is when it was last
	// written (a live holder renews it well within its 30 s TTL).
	HasLease        bool      `json:"has_lease"`
	LeaseModifiedAt time.Time `json:"lease_modified_at,omitzero"`
	// Lease is lock.json as read (ReadLease) when the listing showed it
	// written recently; nil when it was not read.
	Lease *Lease `json:"lease,omitempty"`
	// Source says where the figures come from: "" for a listing of the
	// tenant's objects, SourceHostRecord for the record of the host that
	// replicates it, which knows the replicated TXID and the last upload
	// but not the objects, their bytes or snapshots (0 here, null in JSON).
	Source string `json:"source,omitempty"`
}

// SourceHostRecord marks a TenantSummary made from a host record.
const SourceHostRecord = "host record"

// MarshalJSON writes the figures a host record does not know (objects,
// bytes, snapshots, WAL segments, generations) as null for a summary made
// from one: a 0 would say the replica is empty.
func (s TenantSummary) MarshalJSON() ([]byte, error) {
	type plain TenantSummary // without this method
	if s.Source != SourceHostRecord {
		return json.Marshal(plain(s))
	}
	return json.Marshal(struct {
		plain
		Objects        *int   `json:"objects"`
		Bytes          *int64 `json:"bytes"`
		UnknownObjects *int   `json:"unknown_objects"`
		Snapshots      *int   `json:"snapshots"`
		WALSegments    *int   `json:"wal_segments"`
		Generations    *int   `json:"generations"`
	}{plain: plain(s)})
}

// summarizer aggregates a tenant's objects as they are listed, without
// keeping keys: its size does not grow with the number of objects, except
// for the set of v0.3 generation IDs.
type summarizer struct {
	s    TenantSummary
	gens map[string]struct{}
}

func newSummarizer(name string) *summarizer {
	return &summarizer{s: TenantSummary{Prefix: newPrefix(name), Totals: Totals{Format: FormatEmpty}}}
}

// add counts one object whose key, relative to the tenant's path, parsed as k.
func (a *summarizer) add(k layout.TenantKey, o object) {
	if k.Kind == layout.KeyFolder {
		return
	}
	s := &a.s
	s.Objects++
	s.Bytes += o.size
	switch k.Kind {
	case layout.KeyLease:
		s.HasLease = true
		s.LeaseModifiedAt = o.modified
	case layout.KeyLTX:
		s.addLevel(k, o.size)
		s.LatestTXID = max(s.LatestTXID, k.MaxTXID)
		s.LatestLTXAt = later(s.LatestLTXAt, o.modified)
		s.LatestAt = later(s.LatestAt, o.modified)
		if k.Level == layout.SnapshotLevel {
			s.Snapshots++
		}
	case layout.KeySnapshotV3, layout.KeyWALV3:
		if a.gens == nil {
			a.gens = make(map[string]struct{})
		}
		if _, ok := a.gens[k.Generation]; !ok {
			// A clone: the substring would keep its whole key alive.
			a.gens[strings.Clone(k.Generation)] = struct{}{}
		}
		s.Generations = len(a.gens)
		s.LatestAt = later(s.LatestAt, o.modified)
		if k.Kind == layout.KeySnapshotV3 {
			s.Snapshots++
		} else {
			s.WALSegments++
		}
	case layout.KeyLineage:
		// litefleet's lineage record: bookkeeping, like the lease.
	default:
		s.UnknownObjects++
	}
}

func (s *TenantSummary) addLevel(k layout.TenantKey, size int64) {
	i, found := slices.BinarySearchFunc(s.Levels, k.Level, func(l LevelStats, level int) int { return l.Level - level })
	if !found {
		s.Levels = slices.Insert(s.Levels, i, LevelStats{Level: k.Level})
	}
	l := &s.Levels[i]
	l.Count++
	l.Bytes += size
	l.MaxTXID = max(l.MaxTXID, k.MaxTXID)
}

// summary returns the finished summary; the summarizer may go on counting.
func (a *summarizer) summary() TenantSummary {
	s := a.s
	s.Levels = make([]LevelStats, len(a.s.Levels))
	for i, l := range a.s.Levels {
		l.MaxTXIDHex = layout.TXIDHex(l.MaxTXID)
		s.Levels[i] = l
	}
	if len(s.Levels) > 0 {
		s.LatestTXIDHex = layout.TXIDHex(s.LatestTXID)
	}
	s.Format = format(len(s.Levels) > 0, s.Generations > 0, s.UnknownObjects > 0)
	return s
}

func format(ltx, v3, unknown bool) Format {
	switch {
	case ltx && v3:
		return FormatBoth
	case ltx:
		return FormatLTX
	case v3:
		return FormatGenerations
	case unknown:
		return FormatUnknown
	}
	return FormatEmpty
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
