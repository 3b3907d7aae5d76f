package detail

import (
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/keymap"
	"github.com/litefleet/litefleet/tui/styles"
)

// noS3 is a Backend without a bucket: the page lists nothing.
type noS3 struct{ common.Backend }

func (noS3) Context() common.Context { return common.Context{} }

// The detail page shows the host's last verification of the tenant, and
// nothing of it when there was none.
func TestDetailShowsVerdict(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c := &common.Common{Styles: styles.DefaultStyles(false), Keys: keymap.Default(false), Now: func() time.Time { return now },
		Tasks: &common.Tasks{}, Status: &common.Status{}, Log: &common.LogBook{}, Backend: noS3{}}
	m := New(c)
	m.SetSize(120, 40)
	row := fleet.Row{Tenant: "12345678-1234-5678-9abc-123456789012", Status: fleet.StatusInSync, Host: "web-1", State: "sleeping",
		Verdict: "broken chain", VerifiedAt: now.Add(-2 * time.Hour)}
	m.SetRow(row, now, true)
	if v := m.View(); !strings.Contains(v, "broken chain 2h ago") || !strings.Contains(v, "by host web-1") {
		t.Fatalf("no verdict on the detail page:\n%s", v)
	}
	row.Verdict = ""
	m.SetRow(row, now, true)
	if v := m.View(); strings.Contains(v, "verified") {
		t.Fatalf("a verdict shown without one:\n%s", v)
	}
}
