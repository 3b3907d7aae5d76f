// Package s3browse is litefleet's read-only view of a bucket: the tenant
// prefixes under databases/, the flat scan, and the restore points, the
// lease and the lineage of one tenant. It knows S3 (through s3conn), not
// the terminal UI.
package s3browse

import (
	"context"
	"slices"
	"strings"

	"github.com/litefleet/litefleet/s3conn"
)

// ListTenants lists the tenant prefixes under conn.TenantsPrefix with one
// delimited, paginated listing, sorted by name (byte order). Each name
// appears once even when the server repeats a prefix across pages, as
// gofakes3 does. Invalid names are listed with Valid false, never dropped,
// so that an operator sees what is in the bucket. Objects lying directly
// under the tenants prefix are not tenants and are skipped.
func ListTenants(ctx context.Context, api s3conn.API, conn s3conn.Conn) ([]Prefix, error) {
	root := conn.TenantsPrefix()
	seen := make(map[string]struct{})
	tenants := []Prefix{}
	err := list(ctx, api, conn, root, "/", listVisitor{prefix: func(p string) {
		name, ok := strings.CutPrefix(p, root)
		if !ok {
			return // not under root: a confused server, nothing of ours
		}
		name = strings.TrimSuffix(name, "/")
		if _, dup := seen[name]; dup {
			return
		}
		seen[name] = struct{}{}
		tenants = append(tenants, newPrefix(name))
	}})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(tenants, func(a, b Prefix) int { return strings.Compare(a.Name, b.Name) })
	return tenants, nil
}
