package fleet

import (
	"github.com/litefleet/litefleet/tenants"
)

// Findings lists the naming problems visible in a fleet view: local files
// that are invalid, fall back to "default" or share a prefix, and S3
// prefixes with invalid names or differing from another only in case.
// conn, when set, gives a tenant's S3 URL.
func Findings(v *View, conn func(tenant string) string) []tenants.Finding {
	var out []tenants.Finding
	for _, r := range v.Rows {
		if l := r.Local; l != nil {
			kind, note := tenants.EntryFinding(l.Entry), l.Note
			if r.Status == StatusInvalid && !tenants.Blocks(kind) {
				// Join found two databases on one prefix.
				kind, note = tenants.FindingCollision, r.Note
			}
			if kind != "" {
				out = append(out, tenants.Finding{Side: "local", Kind: kind, Tenant: l.Name, Path: l.Path, Note: note})
			}
			continue
		}
		if rm := r.Remote; rm != nil && r.Status == StatusInvalid {
			// A valid name is invalid here only as one of two spellings.
			kind := tenants.FindingInvalid
			if tenants.ValidateName(rm.Name) == nil {
				kind = tenants.FindingCollision
			}
			url := ""
			if conn != nil {
				url = conn(rm.Name)
			}
			out = append(out, tenants.Finding{Side: "S3", Kind: kind, Tenant: rm.Name, Path: url, Note: r.Note})
		}
	}
	return out
}
