package fleettable

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/keymap"
	"github.com/litefleet/litefleet/tui/styles"
)

func has(l layout, title string) bool {
	for _, ci := range l.cols {
		if columns[ci].title == title {
			return true
		}
	}
	return false
}

// A GUID is the tenant's identity, its last 12 digits what tells tenants
// apart: every other column but the status goes before it is narrowed.
func TestLayoutFitsAndKeepsGUIDsWhole(t *testing.T) {
	guid := "12345678-1234-5678-9abc-123456789012"
	rows := []fleet.Row{{Tenant: guid, Local: &tenants.Local{Entry: tenants.Entry{Path: "/data/" + guid + ".db"}}}}
	for _, w := range []int{60, 80, 100, 120, 140, 200} {
		l := computeLayout(w, rows, fleet.SortName)
		if l.total > w {
			t.Errorf("width %d: layout takes %d", w, l.total)
		}
		if l.cols[0] != colTenant || l.widths[0] != len(guid) {
			t.Errorf("width %d: tenant column %d wide, a GUID needs %d", w, l.widths[0], len(guid))
		}
		if !has(l, "STATUS") {
			t.Errorf("width %d: status dropped", w)
		}
		if w >= 80 && (!has(l, "LAG") || !has(l, "TXID")) {
			t.Errorf("width %d: lag or TXID dropped", w)
		}
		if w >= 140 && !has(l, "FILE") {
			t.Errorf("width %d: file column dropped", w)
		}
	}
	// Too narrow for a GUID and its status: the tenant narrows, last.
	l := computeLayout(50, rows, fleet.SortName)
	if l.total > 50 || len(l.cols) != 2 || !has(l, "STATUS") {
		t.Errorf("width 50: %+v", l)
	}
}

// Long names (from S3: anything) are shortened in the middle, both ends
// kept, in a column no wider than a GUID.
func TestLongNameShortenedInTheMiddle(t *testing.T) {
	long := "tenant-" + strings.Repeat("x", 240) + "-end"
	rows := []fleet.Row{{Tenant: long, Status: fleet.StatusInvalid, Remote: &s3browse.TenantSummary{Prefix: s3browse.Prefix{Name: long}}}}
	l := computeLayout(120, rows, fleet.SortName)
	if l.widths[0] != tenantMax {
		t.Fatalf("tenant column %d wide, want %d", l.widths[0], tenantMax)
	}
	m := &Model{layout: l, rows: rows, visible: []int{0}, keys: []string{rowKey(&rows[0])}, width: 120, height: 10}
	m.c = testCommon()
	var b strings.Builder
	m.writeRow(&b, 0)
	cell := plainCell(b.String(), tenantMax)
	if !strings.HasPrefix(cell, "tenant-x") || !strings.HasSuffix(cell, "x-end") || !strings.Contains(cell, "…") {
		t.Fatalf("tenant cell %q: want both ends of the name", cell)
	}
}

func testCommon() *common.Common {
	return &common.Common{Styles: styles.DefaultStyles(false), Keys: keymap.Default(false)}
}

// plainCell is the first cell of a drawn row, after the two marks.
func plainCell(row string, w int) string {
	return ansi.Cut(ansi.Strip(row), markerWidth, markerWidth+w)
}

// SIZE shows what `s` sorts by: the database file (its WAL apart), or the
// replica's bytes when nothing is local.
func TestSizeColumnIsTheSortKey(t *testing.T) {
	rows := []fleet.Row{
		{Tenant: "a", Local: &tenants.Local{Size: 1 << 20, WALSize: 8 << 20}},
		{Tenant: "b", Local: &tenants.Local{Size: 2 << 20}},
		{Tenant: "c", Remote: &s3browse.TenantSummary{Totals: s3browse.Totals{Bytes: 3 << 20}}},
	}
	fleet.Sort(rows, fleet.SortSize)
	var got []string
	for i := range rows {
		got = append(got, sizeCell(&rows[i], time.Time{}))
	}
	if strings.Join(got, " ") != "3.0M 2.0M 1.0M" {
		t.Fatalf("SIZE after sort size: %v", got)
	}
}

// A refresh's index, built off the UI goroutine, is taken as is.
func TestSetViewTakesTheIndex(t *testing.T) {
	rows := []fleet.Row{{Tenant: "a"}, {Tenant: "b"}}
	m := New(testCommon())
	m.SetSize(120, 10)
	idx := NewIndex(rows)
	m.SetView(&fleet.View{Rows: rows}, Order{Key: fleet.SortName}, idx)
	if &m.keys[0] != &idx.keys[0] || &m.search[0] != &idx.search[0] {
		t.Fatal("SetView indexed the rows again")
	}
	// Sorted another way since: indexed here, in the new order.
	m.SetView(&fleet.View{Rows: rows}, Order{Key: fleet.SortLag}, idx)
	if &m.keys[0] == &idx.keys[0] || m.Visible() != 2 {
		t.Fatal("a view in another order kept the stale index")
	}
}

// A tenant read from a host record has no object sizes or snapshot count:
// BYTES, SNAPS and SIZE say unknown ("—"), never 0B and 0; a listed one
// shows its figures. The tenant page had 59 objects, 73K, when the table
// said 0B.
func TestHostRecordSizesAreUnknown(t *testing.T) {
	rec := &s3browse.TenantSummary{Source: s3browse.SourceHostRecord}
	rec.Format, rec.LatestTXID = s3browse.FormatLTX, 10
	r := fleet.Row{Tenant: "t", Remote: rec, Host: "web-1", HostLocalTXID: 16}
	for name, cell := range map[string]func(*fleet.Row, time.Time) string{"BYTES": bytesCell, "SNAPS": snapsCell, "SIZE": sizeCell} {
		if got := cell(&r, time.Now()); got != "—" {
			t.Errorf("%s of a host-record row: %q, want —", name, got)
		}
	}
	listed := &s3browse.TenantSummary{}
	listed.Format, listed.Bytes, listed.Snapshots, listed.Objects = s3browse.FormatLTX, 73<<10, 2, 59
	r.Remote = listed
	if got := bytesCell(&r, time.Now()); got != "73K" {
		t.Errorf("BYTES of a listed row: %q, want 73K", got)
	}
	if got := snapsCell(&r, time.Now()); got != "2" {
		t.Errorf("SNAPS of a listed row: %q, want 2", got)
	}
}

// LAG is the row's local TXID minus its S3 TXID, and "?" when unknown.
func TestLagCellIsTheRowsArithmetic(t *testing.T) {
	rem := &s3browse.TenantSummary{}
	rem.Format, rem.LatestTXID = s3browse.FormatLTX, 10
	l := &tenants.Local{TXID: 16}
	for _, tc := range []struct {
		row  fleet.Row
		want string
	}{
		{fleet.Row{Local: l, Remote: rem, LagTXIDs: 6, Lag: 3 * time.Second}, "+6 3s"},
		{fleet.Row{Remote: rem, Host: "web-1", HostLocalTXID: 16, LagTXIDs: 6}, "+6"},
		{fleet.Row{Local: &tenants.Local{}, Remote: rem, LagUnknown: "no local Litestream state"}, "?"},
		{fleet.Row{Local: &tenants.Local{TXID: 4}, Remote: rem}, "-6"},
		{fleet.Row{Remote: rem}, ""},
	} {
		if got := lagCell(&tc.row, time.Now()); got != tc.want {
			t.Errorf("lag of %+v: %q, want %q", tc.row, got, tc.want)
		}
	}
	// The local TXID it subtracts from is in the row.
	r := fleet.Row{Remote: rem, Host: "web-1", HostLocalTXID: 16, LagTXIDs: 6}
	if got := localTXIDCell(&r, time.Now()); got != "16" {
		t.Errorf("local TXID of a row whose host reports 16: %q", got)
	}
}

// The host's last -verify-every verdict has a column of its own on a wide
// screen, a failure in capitals, with its age; the first to go when
// narrow.
func TestVerifiedColumn(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	guid := "12345678-1234-5678-9abc-123456789012"
	rows := []fleet.Row{{Tenant: guid, Verdict: "broken chain", VerifiedAt: now.Add(-2 * time.Minute)}}
	if l := computeLayout(220, rows, fleet.SortName); !has(l, "VERIFIED") {
		t.Fatalf("width 220: no VERIFIED column")
	}
	if l := computeLayout(120, rows, fleet.SortName); has(l, "VERIFIED") && !has(l, "FILE") {
		t.Errorf("width 120: VERIFIED kept while FILE went")
	}
	for verdict, want := range map[string]string{"broken chain": "BROKEN 2m", "verified": "ok 2m", "unverifiable": "unproved 2m"} {
		r := rows[0]
		r.Verdict = verdict
		if got := verifiedCell(&r, now); got != want {
			t.Errorf("verdict %q: cell %q, want %q", verdict, got, want)
		}
	}
	// A host record's word is untrusted: no escape reaches the terminal.
	if got := verifiedCell(&fleet.Row{Tenant: guid, Verdict: "\x1b[31mevil"}, now); strings.ContainsRune(got, 0x1b) || !strings.Contains(got, "evil") {
		t.Errorf("a hostile verdict's cell: %q", got)
	}
	if got := verifiedCell(&fleet.Row{Tenant: guid}, now); got != "" {
		t.Errorf("never verified: %q, want empty", got)
	}
}
