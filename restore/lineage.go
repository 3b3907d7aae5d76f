package restore

import (
	"context"
	"fmt"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// maxLineagePlans bounds how often a plan is made again without the
// strays found in the last one: each round drops at least one file.
const maxLineagePlans = 16

// planLineage is Litestream's restore plan following one lineage: when the
// tenant has a lineage record, the plan's files that it could make stray
// are looked at (their metadata, a request each: a plan is a few files),
// and a plan that holds strays is made again without them. The strays are
// reported in p (Strays and a note each). Without a record every file
// belongs to the lineage, as Litestream's own restore sees it.
func planLineage(ctx context.Context, api s3conn.API, opt Options, t *s3browse.Tenant, p *Plan, rc litestream.ReplicaClient) ([]*ltx.FileInfo, error) {
	if !t.HasLineage {
		return litestream.CalcRestorePlan(ctx, rc, ltx.TXID(opt.TXID), opt.Timestamp, discardLogger)
	}
	rec, err := s3browse.ReadLineage(ctx, api, opt.Conn, opt.Tenant)
	if err != nil {
		return nil, err
	}
	fc := &lineageClient{ReplicaClient: rc, skip: map[ltxID]bool{}}
	checked := map[ltxID]bool{}
	for range maxLineagePlans {
		infos, err := litestream.CalcRestorePlan(ctx, fc, ltx.TXID(opt.TXID), opt.Timestamp, discardLogger)
		if err != nil {
			return nil, err
		}
		var files []s3browse.LTXFile
		for _, info := range infos {
			id := ltxID{info.Level, info.MinTXID, info.MaxTXID}
			if !checked[id] {
				checked[id] = true
				files = append(files, s3browse.LTXFile{Level: info.Level, MinTXID: uint64(info.MinTXID), MaxTXID: uint64(info.MaxTXID)})
			}
		}
		strays, _, _, err := s3browse.JudgeFiles(ctx, api, opt.Conn, opt.Tenant, rec, files, 0)
		if err != nil {
			return nil, err
		}
		if len(strays) == 0 && opt.TXID == 0 && opt.Timestamp.IsZero() {
			// The latest: files beyond the plan's end are strays or a
			// gap; strays must not count as the replica's latest.
			end := infosMax(infos)
			files = files[:0]
			for _, l := range t.Levels {
				for _, f := range l.Files {
					if id := (ltxID{f.Level, ltx.TXID(f.MinTXID), ltx.TXID(f.MaxTXID)}); f.MaxTXID > end && !checked[id] {
						checked[id] = true
						files = append(files, f)
					}
				}
			}
			beyond, _, _, err := s3browse.JudgeFiles(ctx, api, opt.Conn, opt.Tenant, rec, files, 0)
			if err != nil {
				return nil, err
			}
			skipStrays(p, fc, beyond)
			p.Latest = latestLTXWithout(t, fc.skip)
			return infos, nil
		}
		if len(strays) == 0 {
			return infos, nil
		}
		skipStrays(p, fc, strays)
		p.Latest = latestLTXWithout(t, fc.skip)
	}
	return nil, fmt.Errorf("tenant %s: the restore plan still held stray files after %d plans", untrusted.Printable(opt.Tenant), maxLineagePlans)
}

// ltxID names an LTX file of a tenant.
type ltxID struct {
	level            int
	minTXID, maxTXID ltx.TXID
}

// lineageClient hides stray files from Litestream's planner.
type lineageClient struct {
	litestream.ReplicaClient
	skip map[ltxID]bool
}

func (c *lineageClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	itr, err := c.ReplicaClient.LTXFiles(ctx, level, seek, useMetadata)
	if err != nil {
		return nil, err
	}
	defer itr.Close()
	var out []*ltx.FileInfo
	for itr.Next() {
		info := itr.Item()
		if !c.skip[ltxID{level, info.MinTXID, info.MaxTXID}] {
			out = append(out, info)
		}
	}
	if err := itr.Err(); err != nil {
		return nil, err
	}
	return ltx.NewFileInfoSliceIterator(out), nil
}

// skipStrays hides strays from the planner and reports them in p.
func skipStrays(p *Plan, fc *lineageClient, strays []s3browse.Stray) {
	for _, s := range strays {
		fc.skip[ltxID{s.Level, ltx.TXID(s.MinTXID), ltx.TXID(s.MaxTXID)}] = true
		p.Strays = append(p.Strays, s)
		p.Notes = append(p.Notes, fmt.Sprintf("stray file skipped: %s, %s: it is not this tenant's history (the tenant's holder moves it to %sarchive/)",
			untrusted.Printable(s.Key), s.Why, layout.Root))
	}
}

func infosMax(infos []*ltx.FileInfo) uint64 {
	var m ltx.TXID
	for _, info := range infos {
		m = max(m, info.MaxTXID)
	}
	return uint64(m)
}

// latestLTXWithout is latestLTX without the skipped files.
func latestLTXWithout(t *s3browse.Tenant, skip map[ltxID]bool) Position {
	var latest uint64
	for _, l := range t.Levels {
		for _, f := range l.Files {
			if !skip[ltxID{f.Level, ltx.TXID(f.MinTXID), ltx.TXID(f.MaxTXID)}] {
				latest = max(latest, f.MaxTXID)
			}
		}
	}
	var at time.Time
	for _, l := range t.Levels {
		for _, f := range l.Files {
			if f.MaxTXID == latest && !skip[ltxID{f.Level, ltx.TXID(f.MinTXID), ltx.TXID(f.MaxTXID)}] && (at.IsZero() || f.ModifiedAt.Before(at)) {
				at = f.ModifiedAt
			}
		}
	}
	return txidPosition(latest, at)
}
