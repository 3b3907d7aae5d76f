package fleettable

import (
	"testing"

	"github.com/litefleet/litefleet/fleet"
)

func TestLayoutFitsAndKeepsGUIDsWhole(t *testing.T) {
	guid := "12345678-1234-5678-9abc-123456789012"
	rows := []fleet.Row{{Tenant: guid, Local: &fleet.Local{Entry: fleet.Entry{Path: "/data/" + guid + ".db"}}}}
	for _, w := range []int{60, 80, 100, 120, 140, 200} {
		l := computeLayout(w, rows)
		if l.total > w && w >= 60 {
			t.Errorf("width %d: layout takes %d", w, l.total)
		}
		if l.cols[0] != 0 {
			t.Errorf("width %d: tenant column missing", w)
		}
		if w >= 120 && l.widths[0] < len(guid) {
			t.Errorf("width %d: tenant column %d wide, a GUID needs %d", w, l.widths[0], len(guid))
		}
		has := func(title string) bool {
			for _, ci := range l.cols {
				if columns[ci].title == title {
					return true
				}
			}
			return false
		}
		if !has("STATUS") || !has("TXID") {
			t.Errorf("width %d: status or TXID dropped", w)
		}
		if w >= 140 && !has("FILE") {
			t.Errorf("width %d: file column dropped", w)
		}
	}
}
