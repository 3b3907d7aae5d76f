package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/benbjohnson/litestream"
	lss3 "github.com/benbjohnson/litestream/s3"
	"github.com/pierrec/lz4/v4"

	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/untrusted"
)

// v3Point is a v0.3 restore point worked out from a listing the way
// Litestream's RestoreV3 works it out: the newest snapshot (across
// generations, by upload time) at or before the timestamp, then the WAL
// segments of its generation from the snapshot's index on, up to the
// timestamp.
type v3Point struct {
	gen      *s3browse.Generation
	snapshot s3browse.Snapshot
	segments []s3browse.WALSegment
}

func findV3Point(t *s3browse.Tenant, ts time.Time) (v3Point, bool) {
	type snap struct {
		gen *s3browse.Generation
		s   s3browse.Snapshot
	}
	var all []snap
	for i := range t.Generations {
		for _, s := range t.Generations[i].Snapshots {
			all = append(all, snap{&t.Generations[i], s})
		}
	}
	slices.SortStableFunc(all, func(a, b snap) int { return a.s.ModifiedAt.Compare(b.s.ModifiedAt) })
	var best *snap
	for i := len(all) - 1; i >= 0; i-- {
		if ts.IsZero() || !all[i].s.ModifiedAt.After(ts) {
			best = &all[i]
			break
		}
	}
	if best == nil {
		return v3Point{}, false
	}
	pt := v3Point{gen: best.gen, snapshot: best.s}
	for _, w := range best.gen.WALSegments {
		if w.Index < best.s.Index || (!ts.IsZero() && w.ModifiedAt.After(ts)) {
			continue
		}
		pt.segments = append(pt.segments, w)
	}
	return pt, true
}

func (pt v3Point) position() Position {
	p := Position{Generation: pt.gen.ID, Index: pt.snapshot.Index, Time: pt.snapshot.ModifiedAt.UTC()}
	if n := len(pt.segments); n > 0 {
		last := pt.segments[n-1]
		p.Index, p.Offset = last.Index, last.Offset
		for _, w := range pt.segments {
			if w.ModifiedAt.After(p.Time) {
				p.Time = w.ModifiedAt.UTC()
			}
		}
	}
	return p
}

// latestGeneration is the newest v0.3 restore point of t.
func latestGeneration(t *s3browse.Tenant) Position {
	pt, ok := findV3Point(t, time.Time{})
	if !ok {
		return Position{}
	}
	return pt.position()
}

// planGenerations fills p with a restore from t's v0.3 generations.
func planGenerations(opt Options, t *s3browse.Tenant, p *Plan) error {
	p.Source = SourceGenerations
	p.Latest = latestGeneration(t)
	pt, ok := findV3Point(t, opt.Timestamp)
	if !ok {
		return fmt.Errorf("tenant %s: no v0.3 snapshot at or before %s at %s", untrusted.Printable(opt.Tenant), opt.Timestamp.UTC().Format(time.RFC3339), p.Replica)
	}
	root := opt.Conn.TenantPath(opt.Tenant)
	p.Files = append(p.Files, PlanFile{
		Key:  litestream.SnapshotPathV3(root, pt.gen.ID, pt.snapshot.Index),
		Size: pt.snapshot.Size, Time: pt.snapshot.ModifiedAt.UTC(),
	})
	p.Bytes = pt.snapshot.Size
	for _, w := range pt.segments {
		p.Files = append(p.Files, PlanFile{
			Key:  litestream.WALSegmentPathV3(root, pt.gen.ID, w.Index, w.Offset),
			Size: w.Size, Time: w.ModifiedAt.UTC(),
		})
		p.Bytes += w.Size
	}
	p.Position = pt.position()
	return nil
}

// restoreGenerations restores p, a v0.3 plan, into tmp with Litestream's
// RestoreV3. Litestream writes tmp.tmp (and its -wal) and renames it to
// tmp; the caller removes all of them on failure.
func restoreGenerations(ctx context.Context, api s3conn.API, opt Options, p *Plan, tmp string, prog *progress) error {
	rc, err := NewReplicaClient(ctx, opt.Conn, opt.Tenant, discardLogger)
	if err != nil {
		return err
	}
	sizes := make(map[string]int64, len(p.Files))
	for _, f := range p.Files {
		sizes[f.Key] = f.Size
	}
	r := litestream.NewReplicaWithClient(nil, &countingClient{ReplicaClient: rc, api: api, conn: opt.Conn, sizes: sizes, prog: prog})
	ro := litestream.NewRestoreOptions()
	ro.OutputPath = tmp
	ro.Timestamp = opt.Timestamp
	// integrityCheck runs after, as for LTX restores: no second pass here.
	ro.IntegrityCheck = litestream.IntegrityCheckNone
	if err := r.RestoreV3(ctx, ro); err != nil {
		if errors.Is(err, litestream.ErrNoSnapshots) {
			return fmt.Errorf("the v0.3 snapshots are gone since the plan: run the restore again: %w", err)
		}
		return fmt.Errorf("v0.3 restore: %w", explainS3(err, opt.Conn, opt.Tenant))
	}
	return nil
}

// countingClient is Litestream's S3 client with the v0.3 downloads done by
// litefleet: they count the bytes for the progress callback, resume a
// broken connection, and name the object in their errors.
type countingClient struct {
	*lss3.ReplicaClient
	api   s3conn.API
	conn  s3conn.Conn
	sizes map[string]int64
	prog  *progress
}

func (c *countingClient) OpenSnapshotV3(ctx context.Context, generation string, index int) (io.ReadCloser, error) {
	return c.openLZ4(ctx, litestream.SnapshotPathV3(c.Path, generation, index))
}

func (c *countingClient) OpenWALSegmentV3(ctx context.Context, generation string, index int, offset int64) (io.ReadCloser, error) {
	return c.openLZ4(ctx, litestream.WALSegmentPathV3(c.Path, generation, index, offset))
}

func (c *countingClient) openLZ4(ctx context.Context, key string) (io.ReadCloser, error) {
	r := newObjectReader(ctx, c.api, c.conn, key, c.sizes[key], c.prog)
	return &lz4Object{key: key, obj: r, zr: lz4.NewReader(r)}, nil
}

// lz4Object decompresses a v0.3 object and names it in its errors.
type lz4Object struct {
	key string
	obj *objectReader
	zr  *lz4.Reader
}

func (o *lz4Object) Read(p []byte) (int, error) {
	n, err := o.zr.Read(p)
	if err != nil && err != io.EOF {
		err = objectError(o.key, err)
	}
	return n, err
}

func (o *lz4Object) Close() error { return o.obj.Close() }
