package s3browse

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3conn"
)

// Tenant is the full report of one tenant's replica: `litefleet inspect`.
type Tenant struct {
	Name string `json:"name"`
	// URL is the replica's s3:// URL, as `litestream restore` takes it.
	URL string `json:"url"`
	Totals
	// Levels has the v0.5 LTX files, levels ascending, files by TXID.
	Levels []Level `json:"levels"`
	// Generations has the v0.3 generations, oldest first.
	Generations []Generation `json:"generations"`
	// Lease is lock.json, or nil when there is none.
	Lease *Lease `json:"lease"`
	// HasLineage says the prefix holds a lineage record (lineage.json);
	// Lineage is what it says of the files, once CheckLineage ran.
	HasLineage bool           `json:"has_lineage,omitempty"`
	Lineage    *LineageReport `json:"lineage,omitempty"`
}

// Level is one LTX level with its files.
type Level struct {
	LevelStats
	Files []LTXFile `json:"files"`
}

// LTXFile is one v0.5 restore point: the transactions MinTXID..MaxTXID.
type LTXFile struct {
	Level      int    `json:"level"`
	MinTXID    uint64 `json:"min_txid"`
	MaxTXID    uint64 `json:"max_txid"`
	MinTXIDHex string `json:"min_txid_hex"`
	MaxTXIDHex string `json:"max_txid_hex"`
	Size       int64  `json:"size"`
	// ModifiedAt is the object's LastModified: when it was uploaded, which
	// for a compacted level is later than its transactions.
	ModifiedAt time.Time `json:"modified_at"`
}

// Generation is one v0.3 generation: a snapshot and the WAL written after
// it, until continuity broke and a new generation began.
type Generation struct {
	ID          string       `json:"id"`
	FirstAt     time.Time    `json:"first_at"` // oldest LastModified in it
	LastAt      time.Time    `json:"last_at"`  // newest LastModified in it
	Bytes       int64        `json:"bytes"`
	Snapshots   []Snapshot   `json:"snapshots"`    // by index
	WALSegments []WALSegment `json:"wal_segments"` // by index, then offset
}

// Snapshot is a v0.3 snapshot object.
type Snapshot struct {
	Index      int       `json:"index"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
}

// WALSegment is a v0.3 WAL segment object.
type WALSegment struct {
	Index      int       `json:"index"`
	Offset     int64     `json:"offset"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
}

// Inspect reports everything about one tenant: one paginated listing of its
// path plus, when lock.json exists, one GET of it. A name failing CheckName
// is refused before any request. A tenant with nothing in the bucket is
// not an error: it comes back with Format FormatEmpty, as a database that
// has never replicated would.
func Inspect(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenant string) (*Tenant, error) {
	if err := CheckName(tenant); err != nil {
		return nil, err
	}
	root := conn.TenantPath(tenant) + "/"
	sum := newSummarizer(tenant)
	files := make(map[int][]LTXFile)
	gens := make(map[string]*Generation)
	// The lease's listing entry, kept by value: taking the address of the
	// visitor's parameter would move every listed object to the heap.
	var lease object
	hasLease, hasLineage := false, false
	err := list(ctx, api, conn, root, "", listVisitor{object: func(o object) {
		rest, ok := strings.CutPrefix(o.key, root)
		if !ok {
			return
		}
		k := layout.ParseTenantKey(rest, o.size)
		sum.add(k, o)
		switch k.Kind {
		case layout.KeyLease:
			lease, hasLease = o, true
		case layout.KeyLineage:
			hasLineage = true
		case layout.KeyLTX:
			files[k.Level] = append(files[k.Level], LTXFile{
				Level: k.Level, MinTXID: k.MinTXID, MaxTXID: k.MaxTXID,
				Size: o.size, ModifiedAt: o.modified,
			})
		case layout.KeySnapshotV3, layout.KeyWALV3:
			g := gens[k.Generation]
			if g == nil {
				g = &Generation{ID: k.Generation, FirstAt: o.modified}
				gens[k.Generation] = g
			}
			g.Bytes += o.size
			g.LastAt = later(g.LastAt, o.modified)
			if o.modified.Before(g.FirstAt) {
				g.FirstAt = o.modified
			}
			if k.Kind == layout.KeySnapshotV3 {
				g.Snapshots = append(g.Snapshots, Snapshot{Index: k.Index, Size: o.size, ModifiedAt: o.modified})
			} else {
				g.WALSegments = append(g.WALSegments, WALSegment{Index: k.Index, Offset: k.Offset, Size: o.size, ModifiedAt: o.modified})
			}
		}
	}})
	if err != nil {
		return nil, err
	}

	s := sum.summary()
	t := &Tenant{Name: tenant, URL: conn.URL(tenant), Totals: s.Totals, Levels: []Level{}, Generations: []Generation{}, HasLineage: hasLineage}
	for _, stats := range s.Levels {
		fs := files[stats.Level]
		for i := range fs {
			fs[i].MinTXIDHex, fs[i].MaxTXIDHex = layout.TXIDHex(fs[i].MinTXID), layout.TXIDHex(fs[i].MaxTXID)
		}
		slices.SortFunc(fs, func(a, b LTXFile) int {
			return cmp.Or(cmp.Compare(a.MinTXID, b.MinTXID), cmp.Compare(a.MaxTXID, b.MaxTXID))
		})
		t.Levels = append(t.Levels, Level{LevelStats: stats, Files: fs})
	}
	for _, g := range gens {
		slices.SortFunc(g.Snapshots, func(a, b Snapshot) int { return cmp.Compare(a.Index, b.Index) })
		slices.SortFunc(g.WALSegments, func(a, b WALSegment) int {
			return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Offset, b.Offset))
		})
		if g.Snapshots == nil {
			g.Snapshots = []Snapshot{}
		}
		if g.WALSegments == nil {
			g.WALSegments = []WALSegment{}
		}
		t.Generations = append(t.Generations, *g)
	}
	slices.SortFunc(t.Generations, func(a, b Generation) int {
		return cmp.Or(a.FirstAt.Compare(b.FirstAt), strings.Compare(a.ID, b.ID))
	})
	if hasLease {
		if t.Lease, err = readLease(ctx, api, conn, root+layout.ClaimFile, lease); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Summarize is one tenant's row of Scan, from one paginated listing of
// its prefix alone: for a few tenants, far fewer requests than listing
// the whole bucket.
func Summarize(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenant string) (TenantSummary, error) {
	sum := newSummarizer(tenant)
	if !sum.s.Valid {
		// Never list a prefix whose name is not a tenant's.
		return sum.summary(), nil
	}
	root := conn.TenantPath(tenant) + "/"
	err := list(ctx, api, conn, root, "", listVisitor{object: func(o object) {
		if rest, ok := strings.CutPrefix(o.key, root); ok {
			sum.add(layout.ParseTenantKey(rest, o.size), o)
		}
	}})
	if err != nil {
		return TenantSummary{}, err
	}
	return sum.summary(), nil
}

// InspectMany inspects tenants with at most parallel requests in flight
// (1 when parallel < 1) and calls fn once per tenant with the report or the
// error, in completion order. Calls to fn never overlap, so fn needs no lock.
// After ctx is cancelled the remaining tenants are reported with its error.
func InspectMany(ctx context.Context, api s3conn.API, conn s3conn.Conn, tenants []string, parallel int, fn func(name string, t *Tenant, err error)) {
	var mu sync.Mutex
	report := func(name string, t *Tenant, err error) {
		mu.Lock()
		defer mu.Unlock()
		fn(name, t, err)
	}
	var g errgroup.Group
	g.SetLimit(max(parallel, 1))
	for _, name := range tenants {
		if err := ctx.Err(); err != nil {
			report(name, nil, err)
			continue
		}
		g.Go(func() error {
			t, err := Inspect(ctx, api, conn, name)
			report(name, t, err)
			return nil
		})
	}
	_ = g.Wait() // the workers return no error: each goes to fn
}
