package s3browse

import (
	"context"
	"slices"
	"strings"
)

// Scan summarizes every tenant under conn.TenantsPrefix from ONE flat,
// paginated listing of the bucket (1,000 keys a request), using only keys,
// sizes and LastModified: no request per tenant, so `ls` of 10,000 tenants
// costs a few hundred requests. Memory grows with the number of tenants,
// not of objects: keys are aggregated as they arrive and dropped.
//
// It returns one summary per tenant, sorted by name (byte order), or the
// first listing error. Unknown keys are counted, not fatal; tenants whose
// names fail CheckName come out with Valid false. Objects lying directly
// under the tenants prefix belong to no tenant and are skipped.
func Scan(ctx context.Context, api API, conn Conn) ([]TenantSummary, error) {
	root := conn.TenantsPrefix()
	tenants := make(map[string]*summarizer)
	err := list(ctx, api, conn, root, "", listVisitor{object: func(o object) {
		rel, ok := strings.CutPrefix(o.key, root)
		if !ok {
			return
		}
		name, rest, ok := strings.Cut(rel, "/")
		if !ok {
			return
		}
		a := tenants[name]
		if a == nil {
			a = newSummarizer(name)
			tenants[name] = a
		}
		a.add(parseTenantKey(rest, o.size), o)
	}})
	if err != nil {
		return nil, err
	}
	out := make([]TenantSummary, 0, len(tenants))
	for _, a := range tenants {
		out = append(out, a.summary())
	}
	slices.SortFunc(out, func(a, b TenantSummary) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
