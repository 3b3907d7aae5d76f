package tui

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/components/detail"
)

// Tests of what an operator tripped over (issue 12, the terminal UI's
// items): each fails on the UI as it was.

// setLocal changes a local database of the fake fleet under its lock.
func (f *fakeBackend) setLocal(name string, change func(*tenants.Local)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.locals {
		if f.locals[i].Name == name {
			change(&f.locals[i])
		}
	}
}

func (f *fakeBackend) setRemote(name string, change func(*s3browse.TenantSummary)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.remotes {
		if f.remotes[i].Name == name {
			change(&f.remotes[i])
		}
	}
}

// tick is the auto-refresh tick the program would deliver.
func (d *driver) tick() { d.send(autoRefreshMsg{gen: d.m.tickGen}) }

// The detail page shows the row of the table's last refresh: after a
// refresh that makes the tenant lag, page and table agree on the status,
// both TXIDs and the lag.
func TestDetailFollowsTheTableRefresh(t *testing.T) {
	d := start(t)
	d.press("j", "enter") // 12345678…: in sync, 1841 on both sides
	d.wantScreen("in sync", "local TXID 1841 (0000000000000731)", "lag        none: S3 holds local TXID 1841")

	// 59 local transactions, the oldest waiting 30 s, with a live lease.
	d.fake.setLocal(guidSync, func(l *tenants.Local) {
		l.TXID, l.TXIDTime = 1900, testNow.Add(-time.Second)
		l.L0 = []tenants.LTXRef{{MinTXID: 1842, MaxTXID: 1850, ModTime: testNow.Add(-30 * time.Second)}, {MinTXID: 1851, MaxTXID: 1900, ModTime: testNow.Add(-time.Second)}}
	})
	d.tick()

	row := d.m.table.Current()
	if row == nil || row.Tenant != guidSync || row.Status != fleet.StatusLagging {
		t.Fatalf("table row after the refresh: %+v", row)
	}
	if got := d.m.detail.Row(); got.Status != row.Status || got.Local.TXID != row.Local.TXID || got.LagTXIDs != row.LagTXIDs {
		t.Fatalf("detail row %s/%d/%d, table row %s/%d/%d", got.Status, got.Local.TXID, got.LagTXIDs, row.Status, row.Local.TXID, row.LagTXIDs)
	}
	d.wantScreen("Tenant "+guidSync, "status     lagging", "local TXID 1900 (000000000000076c)",
		"S3 TXID    1841 (0000000000000731)", "lag        59 transaction(s) behind, the oldest waiting 30s")
	d.notScreen("status     in sync")
}

// The listing of restore points is newer than the table's refresh: when
// the replica moved on in between, the page says which TXID the status
// was judged on rather than show "in sync" beside a TXID it never saw.
func TestDetailSaysWhenTheListingIsNewer(t *testing.T) {
	d := start(t)
	rep := *d.fake.reports[guidSync]
	rep.LatestTXID, rep.LatestTXIDHex = 1847, layout.TXIDHex(1847)
	d.fake.mu.Lock()
	d.fake.reports[guidSync] = &rep
	d.fake.mu.Unlock()
	d.press("j", "enter")
	d.wantScreen("status     in sync", "S3 TXID    1841 (0000000000000731)",
		"latest     TXID 1847 (0000000000000737)", "S3 TXID was 1841 at the refresh above")
}

// Lag is unknown, not "none", when a side has no TXID to compare.
func TestDetailLagUnknown(t *testing.T) {
	f := newFake()
	f.setRemote(guidSync, func(s *s3browse.TenantSummary) {
		s.Format, s.LatestTXID, s.LatestTXIDHex, s.Levels = s3browse.FormatEmpty, 0, "", nil
	})
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.press("j", "enter")
	d.wantScreen("S3 TXID    none: nothing replicated yet (format empty)", "lag        unknown: nothing replicated in S3")
	d.notScreen("lag        none")

	// A database Litestream never ran on here, beside a replica.
	d.press("esc", "G", "enter") // legacy-client-001
	d.fake.setLocal(legacyTenant, func(l *tenants.Local) { l.TXID, l.L0 = 0, nil })
	d.tick()
	d.wantScreen("local TXID none", "lag        unknown: no local Litestream state")
}

func TestLagWording(t *testing.T) {
	ltx := &s3browse.TenantSummary{Totals: s3browse.Totals{Format: s3browse.FormatLTX, LatestTXID: 10}}
	v3 := &s3browse.TenantSummary{Totals: s3browse.Totals{Format: s3browse.FormatGenerations}}
	for _, c := range []struct {
		row  fleet.Row
		want string
	}{
		{fleet.Row{Remote: ltx}, "unknown: nothing local"},
		{fleet.Row{Local: &tenants.Local{TXID: 10}}, "unknown: nothing replicated in S3"},
		{fleet.Row{Local: &tenants.Local{TXID: 10}, Remote: v3}, "unknown: the generations layout has no TXID to compare with"},
		{fleet.Row{Local: &tenants.Local{TXID: 0}, Remote: ltx}, "unknown: no local Litestream state to compare with"},
		{fleet.Row{Local: &tenants.Local{TXID: 10}, Remote: ltx}, "none: S3 holds local TXID 10"},
		{fleet.Row{Local: &tenants.Local{TXID: 8}, Remote: ltx}, "the replica is 2 transaction(s) ahead of the local file"},
		{fleet.Row{Local: &tenants.Local{TXID: 15}, Remote: ltx, LagTXIDs: 5, Lag: 3 * time.Minute}, "5 transaction(s) behind, the oldest waiting 3m"},
	} {
		if got := detail.Lag(c.row); got != c.want {
			t.Errorf("Lag(%+v) = %q, want %q", c.row, got, c.want)
		}
	}
}

// TXIDs read the same in the table's detail page as in `inspect`: decimal
// with the LTX form beside; files newest first, so the latest restore
// points are on the first page even with hundreds of L0 files.
func TestDetailTXIDsDecimalAndHexNewestFirst(t *testing.T) {
	d := start(t)
	d.press("j", "enter")
	d.press("pgdown")
	s := d.plain()
	for _, want := range []string{"1841 (0000000000000731)", "1837 (000000000000072d)", "level 0 (one file per sync) · 4 files, newest first"} {
		if !strings.Contains(s, want) {
			t.Fatalf("detail lacks %q:\n%s", want, s)
		}
	}
	older, newer := strings.Index(s, "1838 (000000000000072e)"), strings.Index(s, "1840 (0000000000000730)")
	if older < 0 || newer < 0 || newer > older {
		t.Fatalf("level 0 files not newest first:\n%s", s)
	}
}

// A restore to a point with sub-second precision logs a command that
// restores the same point.
func TestRestoreCommandKeepsSubSecond(t *testing.T) {
	d := start(t)
	d.press("R", "j", "j", "enter")
	d.typeText("2026-11-26T21:05:00.123456789Z")
	d.press("enter", "enter")
	d.typeText(guidRemote)
	d.press("enter")
	want := time.Date(2026, 11, 26, 21, 5, 0, 123456789, time.UTC)
	if rs := d.restores(); len(rs) != 1 || !rs[0].Timestamp.Equal(want) {
		t.Fatalf("restore options: %+v", rs)
	}
	if !strings.Contains(d.logText(), "-timestamp 2026-11-26T21:05:00.123456789Z") {
		t.Fatalf("the command line loses the precision:\n%s", d.logText())
	}
}

// At 80×24 every GUID is whole, and the refresh age shows, as it does at
// 120 with -readonly.
func TestGUIDsWholeAndRefreshAgeAt80(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.wantScreen(guidSync, guidSync2, guidLagging, guidSync3, guidLocal, guidRemote, guidLeased, "refreshed just now")
	ro := newDriver(t, newFake(), 120, 36, Options{Color: true, ReadOnly: true})
	ro.wantScreen("READ-ONLY", "refreshed just now · every 5s")
	// A long bucket name gives way in its middle, not the age.
	f := newFake()
	f.ctx.Bucket = "a-very-long-bucket-name-for-the-production-fleet-of-eu-west-1"
	lb := newDriver(t, f, 80, 24, Options{Color: true})
	lb.wantScreen("s3://a-very", "refreshed just now")
}

// A 250-character name from S3 does not widen the table: shortened in its
// middle, both ends on screen.
func TestLongS3NameShortenedInTheMiddle(t *testing.T) {
	long := "zz-" + strings.Repeat("x", 240) + "-tail"
	f := newFake()
	f.remotes = append(f.remotes, s3browse.TenantSummary{
		Prefix: s3browse.Prefix{Name: long, Valid: false, Problem: "longer than 63 characters"},
		Totals: s3browse.Totals{Format: s3browse.FormatLTX, LatestTXID: 3, LatestAt: testNow},
	})
	for _, size := range [][2]int{{120, 36}, {80, 24}} {
		d := newDriver(t, f, size[0], size[1], Options{Color: true})
		checkFrame(t, d.screen(), size[0], size[1])
		var line string
		for _, l := range strings.Split(d.plain(), "\n") {
			if strings.Contains(l, "zz-xxx") {
				line = l
			}
		}
		if !strings.Contains(line, "…") || !strings.Contains(line, "xx-tail") {
			t.Fatalf("%dx%d: the long name is not shortened in the middle: %q", size[0], size[1], line)
		}
	}
}

// The dialog wraps plan notes, the output path and errors: nothing is cut
// at 120 columns.
func TestRestoreDialogWrapsNotesAndPaths(t *testing.T) {
	f := newFake()
	note := "the v0.3 generations reach a later point (generation 0123456789abcdef, WAL 00000003/00001000 at 2026-11-26T21:19:00Z) than the LTX files (TXID 1841 (0000000000000731)): restoring from the generations; -source ltx picks the LTX files"
	f.planNotes = []string{note}
	out := "/var/lib/litefleet/restores/a/long/folder/for/the/restored/copies/of/" + guidRemote + "/" + guidRemote + ".restored.db"
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.press("R", "enter")
	d.m.restore.Update(keyMsg("ctrl+u"))
	d.typeText(out)
	d.press("enter")
	box := boxText(d.plain())
	for _, want := range []string{note, out} {
		if !strings.Contains(squeeze(box), squeeze(want)) {
			t.Fatalf("the dialog cuts %q:\n%s", want, d.plain())
		}
	}
	checkFrame(t, d.screen(), 120, 36)

	// Listing the restore points fails: the error is in the dialog too.
	d.press("esc", "esc", "esc", "j", "j", "j", "j", "j") // c0ffee00…: no report in the fake
	if d.current() != guidLeased {
		t.Fatalf("cursor on %q", d.current())
	}
	d.press("R")
	if !strings.Contains(squeeze(boxText(d.plain())), squeeze("listing the restore points failed: tenant "+guidLeased+": nothing listed")) {
		t.Fatalf("the listing error is not in the dialog:\n%s", d.plain())
	}
}

// boxText is the text inside the dialog's frame, its lines joined.
func boxText(screen string) string {
	var parts []string
	for _, l := range strings.Split(screen, "\n") {
		i, j := strings.Index(l, "│ "), strings.LastIndex(l, " │")
		if i >= 0 && j > i {
			parts = append(parts, strings.TrimSpace(l[i+len("│ "):j]))
		}
	}
	return strings.Join(parts, " ")
}

// squeeze drops white space, where a wrap may have cut a line.
func squeeze(s string) string { return strings.Join(strings.Fields(s), "") }

// The log pane takes the rows the table leaves, half the body at least,
// and scrolls.
func TestLogPaneUsesItsHeightAndScrolls(t *testing.T) {
	d := start(t)
	for i := range 100 {
		d.m.c.Log.Add(testNow, common.LogInfo, fmt.Sprintf("line %03d", i))
	}
	d.press("l")
	if h := d.m.logs.Height(); h < (36-4)/2 {
		t.Fatalf("log pane %d lines high of a 32-line body", h)
	}
	rows := strings.Count(d.plain(), " line 0")
	if rows != d.m.logs.Height()-1 {
		t.Fatalf("%d log lines shown in a pane of %d", rows, d.m.logs.Height())
	}
	d.wantScreen("line 099")
	d.notScreen("line 000")
	d.press("tab")
	d.wantScreen("log · 100/100")
	d.press("g")
	d.wantScreen("line 000", "log · 1/100")
	d.notScreen("line 099")
	d.press("pgdown", "j")
	if d.m.table.Current().Tenant != guidRemote {
		t.Fatal("keys for the focused log pane moved the table")
	}
	d.press("G")
	d.wantScreen("line 099")
	d.press("esc") // the table has the keys again
	d.press("j")
	if d.m.table.Current().Tenant != guidSync {
		t.Fatal("esc did not give the keys back to the table")
	}
	// Lines that come while following stay in sight.
	d.m.c.Log.Add(testNow, common.LogInfo, "line 100")
	d.wantScreen("line 100")
}

// A command line is never broken over two lines: it is clipped with a
// marker, scrolls sideways, and y copies the whole of it.
func TestLogPaneKeepsCommandsWhole(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.press("j", "j", "r", "l") // replicate 5eed5eed…: a 130-character command
	cmd := "litefleet replicate -dsn /data/" + guidLocal + ".db -bucket saas-backups -endpoint http://127.0.0.1:7070 -region us-east-1"
	if !strings.Contains(d.logText(), cmd) {
		t.Fatalf("log lacks %q:\n%s", cmd, d.logText())
	}
	var line string
	for _, l := range strings.Split(d.plain(), "\n") {
		if strings.Contains(l, "$ litefleet replicate") {
			line = l
		}
		if strings.HasPrefix(strings.TrimSpace(l), "endpoint") || strings.HasPrefix(strings.TrimSpace(l), "444455556666.db") {
			t.Fatalf("the command wraps onto a line of its own: %q\n%s", l, d.plain())
		}
	}
	if !strings.HasSuffix(strings.TrimRight(line, " "), "…") {
		t.Fatalf("a clipped command has no marker: %q", line)
	}
	d.notScreen("-region us-east-1")
	d.press("tab", "G", "right", "right", "right")
	d.wantScreen("-region us-east-1")
	d.press("left", "left", "left")
	d.wantScreen("$ litefleet replicate")

	d.m.logs.Clip = fakeClipboard("", nil, nil)
	n := len(d.msgs)
	d.press("y")
	copied := false
	for _, msg := range d.msgs[n:] {
		if fmt.Sprint(msg) == cmd {
			copied = true
		}
	}
	if !copied {
		t.Fatalf("y did not copy the whole command; messages: %v", d.msgs[n:])
	}
	d.wantScreen("sent 141 characters with OSC 52: pasteable if the terminal allows it")
}

// An S3 error of :bucket reaches the log pane, once, and the recovery too.
func TestBucketErrorReachesTheLog(t *testing.T) {
	f := newFake()
	f.bucketErrs = map[string]string{"nosuch": `bucket "nosuch" does not exist: check -bucket`}
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.press(":")
	d.typeText("bucket nosuch")
	d.press("enter")
	d.tick()
	d.tick()
	if n := strings.Count(d.logText(), `S3: bucket "nosuch" does not exist`); n != 1 {
		t.Fatalf("the S3 error is in the log %d times:\n%s", n, d.logText())
	}
	d.press(":")
	d.typeText("bucket saas-backups")
	d.press("enter")
	if !strings.Contains(d.logText(), "S3 answers again") {
		t.Fatalf("the log does not say S3 answers again:\n%s", d.logText())
	}
}

// An old error leaves the status line when the operator moves on, or
// after StatusTTL; the log keeps it.
func TestStatusErrorClears(t *testing.T) {
	now := testNow
	d := newDriver(t, newFake(), 120, 36, Options{Color: true, Now: func() time.Time { return now }})
	d.press("j", "j", "x") // 5eed5eed… does not replicate here
	d.wantScreen("✗ stop skipped")
	d.press("j")
	d.notScreen("✗ stop skipped")
	if !strings.Contains(d.logText(), "stop skipped") {
		t.Fatal("the error is not kept in the log")
	}

	d.press("x")
	d.wantScreen("✗ stop skipped")
	now = now.Add(StatusTTL - time.Second)
	d.send(clockMsg{})
	d.wantScreen("✗ stop skipped")
	now = now.Add(time.Second)
	d.send(clockMsg{})
	d.notScreen("✗ stop skipped")
}

// The restore dialog's "latest" follows the replica while it is open: a
// new listing after each refresh, made by a command, not in Update.
func TestRestoreDialogLatestRefreshed(t *testing.T) {
	d := start(t) // 0badc0de…
	d.press("R", "j")
	d.wantScreen("latest: TXID 1841 (0000000000000731)")
	rep := *d.fake.reports[guidRemote]
	rep.LatestTXID, rep.LatestTXIDHex, rep.LatestAt = 1900, layout.TXIDHex(1900), testNow
	d.fake.mu.Lock()
	d.fake.reports[guidRemote] = &rep
	d.fake.mu.Unlock()

	// Update alone asks nothing: the listing is in the command it returns.
	calls := len(d.fake.Calls())
	_, cmd := d.m.Update(autoRefreshMsg{gen: d.m.tickGen})
	if len(d.fake.Calls()) != calls {
		t.Fatal("Update called the backend")
	}
	d.run(cmd)
	if !slices.Contains(d.fake.Calls()[calls:], "inspect "+guidRemote) {
		t.Fatalf("no new listing after the refresh: %v", d.fake.Calls()[calls:])
	}
	d.wantScreen("latest: TXID 1900 (000000000000076c)")
	// The cursor stayed on the choice it was on.
	d.wantScreen("› a TXID…")

	// Planned, then listed again: the plan's "latest" moves too.
	d.press("k", "enter", "enter")
	rep2 := rep
	rep2.LatestTXID, rep2.LatestTXIDHex = 1950, layout.TXIDHex(1950)
	d.fake.mu.Lock()
	d.fake.reports[guidRemote] = &rep2
	d.fake.mu.Unlock()
	d.tick()
	d.wantScreen("latest    TXID 1950 (000000000000079e)")
}

// Every backend call for one screen has a deadline: a hung S3 ends in an
// error, not a spinner forever.
func TestScreenCallsHaveDeadlines(t *testing.T) {
	d := start(t)
	d.press("enter", "esc", "R", "enter", "enter", "esc", "esc", "esc", "v", "esc")
	d.fake.mu.Lock()
	defer d.fake.mu.Unlock()
	for _, c := range []string{"inspect", "plan", "validate"} {
		if !slices.ContainsFunc(d.fake.calls, func(s string) bool { return strings.HasPrefix(s, c) }) {
			t.Fatalf("no %s call: %v", c, d.fake.calls)
		}
	}
	if len(d.fake.noDeadline) > 0 {
		t.Fatalf("calls without a deadline: %v", d.fake.noDeadline)
	}
}

// The refresh's command sorts and indexes the rows: the UI goroutine only
// takes them.
func TestRefreshIndexesOffTheUIGoroutine(t *testing.T) {
	d := start(t)
	msg, ok := d.call(d.m.refresh(false)).(refreshedMsg)
	if !ok || msg.index == nil || msg.view == nil {
		t.Fatalf("refresh reply: %+v", msg)
	}
	d.send(msg)
	if d.m.table.Visible() != len(msg.view.Rows) {
		t.Fatal("the indexed refresh is not shown")
	}
}

// The whole screen keeps its size with the log pane focused and scrolled.
func TestLogPaneFrame(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.press("j", "j", "r", "l", "tab", "right", "right")
	checkFrame(t, d.screen(), 80, 24)
}
