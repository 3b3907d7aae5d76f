package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/s3browse"
)

// TestFindingsKinds: an S3 prefix that is no tenant name is listed under
// invalid names, not as a collision; two prefixes differing only in case
// are the collisions.
func TestFindingsKinds(t *testing.T) {
	prefix := func(name string) s3browse.TenantSummary {
		s := s3browse.TenantSummary{Totals: s3browse.Totals{Format: s3browse.FormatLTX, LatestTXID: 1}}
		s.Name, s.Valid = name, s3browse.CheckName(name) == nil
		return s
	}
	const guid = "12345678-1234-5678-9abc-123456789012"
	rows := Join(nil, []s3browse.TenantSummary{
		prefix("Bad Name"), prefix("red\x1b[31m"), prefix(guid), prefix(strings.ToUpper(guid)),
	}, time.Now(), ViewOptions{})
	kinds := map[string]string{}
	for _, f := range Findings(&View{Rows: rows}, nil) {
		kinds[f.Tenant] = f.Kind
	}
	want := map[string]string{"Bad Name": "invalid", "red\x1b[31m": "invalid", guid: "collision", strings.ToUpper(guid): "collision"}
	for name, kind := range want {
		if kinds[name] != kind {
			t.Errorf("%q: %q, want %q (all %v)", name, kinds[name], kind, kinds)
		}
	}
}
