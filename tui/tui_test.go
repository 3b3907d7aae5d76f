package tui

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/components/detail"
	"github.com/litefleet/litefleet/tui/components/fleettable"
)

func start(t *testing.T, opt ...Options) *driver {
	t.Helper()
	o := Options{Color: true}
	if len(opt) > 0 {
		o = opt[0]
	}
	return newDriver(t, newFake(), 120, 36, o)
}

func (d *driver) current() string {
	if r := d.m.table.Current(); r != nil {
		return r.Tenant
	}
	return ""
}

func (d *driver) logText() string {
	var b strings.Builder
	for _, l := range d.m.c.Log.Lines() {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestStartShowsFleet(t *testing.T) {
	d := start(t)
	if got := d.fake.Calls(); !slices.Equal(got, []string{"refresh"}) {
		t.Fatalf("calls at start: %v", got)
	}
	d.wantScreen(guidSync, guidLagging, guidRemote, legacyTenant,
		"s3://saas-backups/databases", "http://127.0.0.1:7070", "region us-east-1",
		"10 tenants", "1 lagging", "1 remote only", "4 in sync", "every 5s", "refreshed just now",
		"LOCAL", "REPLICATION", "S3", "+42 17s", "remote only")
	d.notScreen("READ-ONLY")
}

func TestRefreshAgeMoves(t *testing.T) {
	now := testNow
	d := newDriver(t, newFake(), 120, 36, Options{Color: true, Now: func() time.Time { return now }})
	now = now.Add(42 * time.Second)
	d.send(clockMsg{})
	d.wantScreen("refreshed 42s ago")
}

func TestNavigationKeys(t *testing.T) {
	d := start(t)
	rows := d.m.table.Rows()
	first, last := rows[0].Tenant, rows[len(rows)-1].Tenant
	steps := []struct {
		key  string
		want string
	}{
		{"j", rows[1].Tenant},
		{"down", rows[2].Tenant},
		{"k", rows[1].Tenant},
		{"up", rows[0].Tenant},
		{"up", first}, // stays at the top
		{"G", last},
		{"j", last}, // stays at the bottom
		{"g", first},
		{"pgdown", last}, // fewer rows than a page
		{"pgup", first},
		{"ctrl+d", last},
		{"ctrl+u", first},
	}
	for _, s := range steps {
		d.press(s.key)
		if got := d.current(); got != s.want {
			t.Fatalf("after %s the cursor is on %q, want %q", s.key, got, s.want)
		}
	}
}

func TestScrollShowsOnlyVisibleRows(t *testing.T) {
	d := newDriver(t, bigFake(500), 80, 24, Options{Color: true})
	rows := d.m.table.Rows()
	d.wantScreen(rows[0].Display()[:20])
	d.notScreen(rows[40].Display()[:20])
	d.press("G")
	d.wantScreen(rows[len(rows)-1].Display()[:20], "500/500")
	d.notScreen(rows[0].Display()[:20])
	checkFrame(t, d.screen(), 80, 24)
}

func TestSelectAndReplicate(t *testing.T) {
	d := start(t)
	// 0badc0de (remote only) and 5eed5eed (local only) selected.
	d.press("space", "j", "space")
	if n := d.m.table.SelectedCount(); n != 2 {
		t.Fatalf("%d selected, want 2", n)
	}
	d.wantScreen("2 selected", "●")
	d.press("r")
	calls := d.fake.Calls()
	if !slices.Contains(calls, "start /data/"+guidLocal+".db") {
		t.Fatalf("replication not started: %v", calls)
	}
	if slices.ContainsFunc(calls, func(c string) bool { return strings.Contains(c, guidRemote) }) {
		t.Fatalf("a remote-only tenant was started: %v", calls)
	}
	// The remote-only one is refused in the status line; the table shows
	// the new replication, confirmed by a refresh.
	if !strings.Contains(d.logText(), "nothing local") {
		t.Fatalf("the skipped tenant is not in the log:\n%s", d.logText())
	}
	if calls[len(calls)-1] != "refresh" {
		t.Fatalf("no refresh after starting: %v", calls)
	}
	for _, r := range d.m.table.Rows() {
		if r.Tenant == guidLocal && !r.Replicating {
			t.Fatal("the table does not show the replication")
		}
	}
	if !strings.Contains(d.logText(), "litefleet replicate -dsn /data/"+guidLocal+".db -bucket saas-backups -endpoint http://127.0.0.1:7070 -region us-east-1") {
		t.Fatalf("log pane lacks the command line:\n%s", d.logText())
	}
}

func TestReplicateExplicitNameAddsDBName(t *testing.T) {
	f := newFake()
	delete(f.replicating, "/data/"+guidSync+".db")
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.press("G") // legacy-client-001
	if d.current() != legacyTenant {
		t.Fatalf("cursor on %q", d.current())
	}
	d.press("r")
	if !strings.Contains(d.logText(), "-db-name legacy-client-001") {
		t.Fatalf("no -db-name in:\n%s", d.logText())
	}
}

func TestReplicateError(t *testing.T) {
	f := newFake()
	f.startErr = errors.New("tenant x is already replicated by host-b:1 (lease until …)")
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.press("j", "j", "r")
	d.wantScreen("✗ tenant x is already replicated by host-b:1")
	if !strings.Contains(d.logText(), "already replicated by host-b:1") {
		t.Fatalf("error not in the log pane:\n%s", d.logText())
	}
}

func TestStopReplication(t *testing.T) {
	d := start(t)
	d.press("j") // 12345678…, replicating in the fixture
	if r := d.m.table.Current(); r == nil || !r.Replicating {
		t.Fatal("fixture: the second row should replicate here")
	}
	d.press("x")
	if !slices.Contains(d.fake.Calls(), "stop /data/"+guidSync+".db") {
		t.Fatalf("not stopped: %v", d.fake.Calls())
	}
	if r := d.m.table.Current(); r.Replicating {
		t.Fatal("the table still shows it replicating")
	}
	d.wantScreen("stopped replicating " + guidSync)
	// x on a tenant not replicating here is refused.
	d.press("j", "x")
	d.wantScreen("not replicating here")
}

func TestReadOnly(t *testing.T) {
	d := start(t, Options{Color: true, ReadOnly: true})
	d.wantScreen("READ-ONLY")
	d.notScreen("r replicate", "R restore")
	for _, k := range []string{"r", "x", "R"} {
		d.press(k)
		d.wantScreen("read-only")
		if d.m.restore.Open() {
			t.Fatal("restore dialog opened in read-only mode")
		}
	}
	d.press("enter")
	d.press("R", "r", "x")
	for _, c := range d.fake.Calls() {
		if strings.HasPrefix(c, "start") || strings.HasPrefix(c, "stop") || strings.HasPrefix(c, "plan") || strings.HasPrefix(c, "restore") {
			t.Fatalf("read-only mode called %s", c)
		}
	}
	d.press("esc", "?")
	d.wantScreen("read-only: replicate, stop and restore are off")
	d.notScreen("stop replicating")
}

func TestFilter(t *testing.T) {
	d := start(t)
	d.press("/")
	if !d.m.table.Filtering() {
		t.Fatal("/ does not open the filter")
	}
	d.typeText("ABC") // case-insensitive
	if got := d.m.table.Visible(); got != 3 {
		t.Fatalf("%d rows match abc, want 3", got)
	}
	d.wantScreen("/ABC")
	// j is text while typing, not a move.
	d.typeText("j")
	d.wantScreen("no tenant matches /ABCj")
	d.press("backspace", "enter")
	if d.m.table.Filtering() || d.m.table.Filter() != "ABC" {
		t.Fatalf("enter should keep the filter, got %q", d.m.table.Filter())
	}
	d.wantScreen("3 of 10 tenants")
	d.press("esc")
	if d.m.table.Filter() != "" || d.m.table.Visible() != 10 {
		t.Fatal("esc does not clear the filter")
	}
	// The filter matches the file's name too (not its folder).
	d.press("/")
	d.typeText("notes.db")
	if d.current() != "default" || d.m.table.Visible() != 1 {
		t.Fatalf("filter by path: %q, %d visible", d.current(), d.m.table.Visible())
	}
	d.press("esc")
	if d.m.table.Visible() != 10 {
		t.Fatal("esc while typing does not clear the filter")
	}
}

func TestSortCycles(t *testing.T) {
	d := start(t)
	want := []fleet.SortKey{fleet.SortLag, fleet.SortSize, fleet.SortChanged, fleet.SortStatus, fleet.SortName}
	firsts := map[fleet.SortKey]string{fleet.SortLag: guidLagging, fleet.SortSize: guidLeased, fleet.SortStatus: evilTenant, fleet.SortName: guidRemote}
	for _, k := range want {
		d.press("g", "s")
		if got := d.m.table.Sort(); got != (fleettable.Order{Key: k}) {
			t.Fatalf("s gave %s, want %s", got, k)
		}
		d.wantScreen("sort: " + string(k))
		d.press("g")
		if f, ok := firsts[k]; ok && d.current() != f {
			t.Fatalf("sorted by %s, first is %q, want %q", k, d.current(), f)
		}
	}
}

func TestAutoRefreshKeepsCursorSelectionFilter(t *testing.T) {
	d := start(t)
	d.press("/")
	d.typeText("-")
	d.press("enter", "j", "space", "k")
	cursor, filter := d.current(), d.m.table.Filter()
	sel := d.m.table.SelectedCount()

	// A tenant appears before the cursor's row; the order shifts.
	d.fake.mu.Lock()
	d.fake.remotes = append(d.fake.remotes, d.fake.remotes[5])
	d.fake.remotes[len(d.fake.remotes)-1].Name = "00000000-0000-4000-8000-000000000000"
	d.fake.mu.Unlock()
	before := d.fake.refreshes
	d.send(autoRefreshMsg{gen: d.m.tickGen})
	if d.fake.refreshes != before+1 {
		t.Fatal("the tick did not refresh")
	}
	if d.current() != cursor || d.m.table.Filter() != filter || d.m.table.SelectedCount() != sel {
		t.Fatalf("refresh lost state: cursor %q (was %q), filter %q, %d selected", d.current(), cursor, d.m.table.Filter(), d.m.table.SelectedCount())
	}
	d.wantScreen("00000000-0000-4000-8000-000000000000")
}

func TestStaleRepliesDropped(t *testing.T) {
	d := start(t)
	// A tick from an old chain does nothing.
	before := d.fake.refreshes
	d.send(autoRefreshMsg{gen: d.m.tickGen - 1})
	if d.fake.refreshes != before {
		t.Fatal("a stale tick refreshed")
	}
	// A reply to an earlier refresh is dropped.
	old := d.m.refreshID - 1
	d.send(refreshedMsg{id: old, view: &fleet.View{At: testNow}})
	if len(d.m.table.Rows()) != 10 {
		t.Fatal("a stale refresh replaced the view")
	}
	// An inspection of a tenant left since is dropped.
	d.press("enter")
	d.press("esc", "j", "enter")
	d.send(detail.InspectedMsg{ID: 1, Tenant: guidRemote, Err: errors.New("stale")})
	d.notScreen("stale")
	d.wantScreen("Tenant " + guidSync)
}

func TestManualRefreshAndError(t *testing.T) {
	d := start(t)
	d.press("ctrl+r")
	if d.fake.refreshes != 2 {
		t.Fatalf("%d refreshes, want 2", d.fake.refreshes)
	}
	if !strings.Contains(d.logText(), "litefleet ls -bucket saas-backups -endpoint http://127.0.0.1:7070 -region us-east-1 -dir /data") {
		t.Fatalf("log lacks the ls line:\n%s", d.logText())
	}
	d.fake.mu.Lock()
	d.fake.refreshErr = errors.New("S3 did not answer in time")
	d.fake.mu.Unlock()
	d.press("ctrl+r")
	d.wantScreen("✗ refresh: S3 did not answer in time", guidSync) // the last view stays
}

func TestDetailLTX(t *testing.T) {
	d := start(t)
	d.press("j", "enter")
	if !slices.Contains(d.fake.Calls(), "inspect "+guidSync) {
		t.Fatalf("no inspect: %v", d.fake.Calls())
	}
	d.wantScreen("Tenant "+guidSync, "/data/"+guidSync+".db", "held by host-a:4242",
		"LTX levels", "0 (one file per sync)", "9 (snapshots)", "0000000000000731", "replicating in this process")
	if !strings.Contains(d.logText(), "litefleet inspect "+guidSync+" -bucket saas-backups") {
		t.Fatalf("log lacks inspect:\n%s", d.logText())
	}
	d.press("G")
	d.wantScreen("level 9 (snapshots)", "0000000000000200")
	d.press("g", "pgdown", "pgup", "k")
	d.press("esc")
	if d.m.page != pageTable {
		t.Fatal("esc does not go back")
	}
}

func TestDetailGenerations(t *testing.T) {
	d := start(t)
	d.press("G", "enter")
	d.wantScreen("Tenant "+legacyTenant, "Generations (Litestream v0.3)", "0123456789abcdef", "1 snapshot(s) · 3 WAL segment(s)", "legacy-client.db", "(explicit)")
	d.press("G")
	d.wantScreen("wal       00000001  00000000")
}

func TestDetailInspectError(t *testing.T) {
	d := start(t)
	d.press("j", "j", "enter") // 5eed5eed: nothing in S3, the fake has no report
	d.wantScreen("/data/"+guidLocal+".db", "✗ inspect "+guidLocal)
}
