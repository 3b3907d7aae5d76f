package replication

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/litefleet/litefleet/layout"
)

// seedMinTenants is the fleet size from which one flat listing of the
// tenants' prefix at start beats a listing per tenant.
const seedMinTenants = 20

// seedMaxAge is how long a start listing may stand in for a tenant's own.
const seedMaxAge = time.Minute

// seedTenant is what the start listing says of one tenant.
type seedTenant struct {
	levels map[int][]ltxObject
	claim  bool
}

// seedFleet lists the tenants' prefix of every connection that many
// tenants share, once, so that starting them needs no listing and, for
// those without a lock.json, no read of it: at 10,000 tenants, about 100
// requests instead of 20,000. Keys from S3 are untrusted: only the known
// tenants' keys are used. A listing the keys may not make (per-tenant
// credentials) is skipped.
func (e *Engine) seedFleet(ctx context.Context, tenants []*tenant) {
	groups := map[string][]*tenant{}
	for _, t := range tenants {
		if !t.wanted || t.refused != "" {
			continue
		}
		c := t.target.Conn
		k := c.Endpoint + "\x00" + c.Bucket + "\x00" + c.TenantsPrefix() + "\x00" + c.AccessKeyID
		groups[k] = append(groups[k], t)
	}
	for _, ts := range groups {
		if len(ts) < seedMinTenants {
			continue
		}
		conn := ts[0].target.Conn
		api, err := e.client(ctx, conn)
		if err != nil {
			continue
		}
		want := make(map[string]*seedTenant, len(ts))
		starts := make(map[*tenant]uint64, len(ts))
		first := ""
		e.mu.Lock()
		for _, t := range ts {
			p := conn.TenantPath(t.name)
			want[p] = &seedTenant{levels: map[int][]ltxObject{}}
			starts[t] = t.starts
			if first == "" || p < first {
				first = p
			}
		}
		e.mu.Unlock()
		prefix := conn.TenantsPrefix()
		// Every key of these tenants sorts after the first one's path: a
		// listing again for the tenants still waiting skips those started.
		in := &s3.ListObjectsV2Input{Bucket: aws.String(conn.Bucket), Prefix: aws.String(prefix), StartAfter: aws.String(first)}
		ok := true
		for {
			out, err := api.ListObjectsV2(ctx, in)
			if err != nil {
				e.log.Debug("no start listing: each tenant lists its own prefix", "bucket", conn.Bucket, "error", err)
				ok = false
				break
			}
			for _, o := range out.Contents {
				key := aws.ToString(o.Key)
				name, _, found := strings.Cut(strings.TrimPrefix(key, prefix), "/")
				if !found {
					continue
				}
				st := want[prefix+name]
				if st == nil {
					continue
				}
				if key == layout.ClaimKey(prefix+name) {
					st.claim = true
					continue
				}
				level, info, ok := parseLTXKey(prefix+name, key, aws.ToInt64(o.Size))
				if !ok {
					continue
				}
				info.Size = aws.ToInt64(o.Size)
				info.CreatedAt = aws.ToTime(o.LastModified).UTC()
				st.levels[level] = append(st.levels[level], ltxObject{info: info, etag: aws.ToString(o.ETag)})
			}
			if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
				break
			}
			in.ContinuationToken = out.NextContinuationToken
		}
		if !ok {
			continue
		}
		now := e.opt.Now()
		e.mu.Lock()
		for _, t := range ts {
			if t.starts != starts[t] {
				// It started while the listing ran: its own uploads may
				// be missing from it.
				continue
			}
			st := want[conn.TenantPath(t.name)]
			for l := range st.levels {
				sortObjects(st.levels[l])
			}
			t.seed, t.seedAt = st, now
		}
		e.mu.Unlock()
	}
}

// reseedLocked lists the tenants' prefix again, in the background, for
// the tenants still waiting for their first start once the start listing
// grows old: a fleet whose start takes longer than seedMaxAge would
// otherwise make two requests per tenant (its listing and its claim's
// read) for its latecomers. It walks the bulk queue, not the fleet.
func (e *Engine) reseedLocked(now time.Time) {
	if e.reseeding || e.closing || e.counts[StateStarting] < seedMinTenants || now.Sub(e.seededAt) < seedMaxAge/2 {
		return
	}
	var waiting []*tenant
	seen := make(map[*tenant]bool, len(e.ready))
	for _, t := range e.ready {
		if seen[t] || !t.queued || t.urgent || t.busy || t.state != StateStarting || !t.wanted || t.refused != "" || t.claim != nil {
			continue
		}
		seen[t] = true
		if t.seed == nil || now.Sub(t.seedAt) > seedMaxAge/2 {
			waiting = append(waiting, t)
		}
	}
	e.seededAt = now
	if len(waiting) < seedMinTenants {
		return
	}
	e.reseeding = true
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.seedFleet(e.ctx, waiting)
		e.mu.Lock()
		e.reseeding = false
		e.seededAt = e.opt.Now()
		e.mu.Unlock()
	}()
}

// takeSeed returns the tenant's start listing once, if it is fresh.
func (e *Engine) takeSeed(t *tenant) *seedTenant {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := t.seed
	t.seed = nil
	if s == nil || e.opt.Now().Sub(t.seedAt) > seedMaxAge {
		return nil
	}
	return s
}
