// Package detail is a tenant's page (`enter`): its local database and its
// restore points in S3 — LTX levels and files with TXID ranges, sizes and
// times, snapshots, v0.3 generations with their snapshots and WAL
// segments — and the lease owner.
package detail

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
	"github.com/litefleet/litefleet/verify"
)

// TaskID names the inspection in the footer.
const TaskID = "inspect"

// InspectedMsg carries one tenant's report.
type InspectedMsg struct {
	ID     int
	Tenant string
	Report *s3browse.Tenant
	Err    error
}

// Model is the detail page.
type Model struct {
	c             *common.Common
	width, height int

	id        int
	row       fleet.Row
	at        time.Time // when row was judged: the table's last refresh
	gone      bool      // the tenant was not in the last refresh
	report    *s3browse.Tenant
	listedAt  time.Time // when report arrived
	err       error     // the first listing failed
	relistErr error     // a later listing failed; report is the last good one
	loading   bool      // the first listing runs
	relisting bool      // a later listing runs

	lines  []string // rendered once per report, drawn a page at a time
	offset int

	// verifs are this process's verifications (`V`), by tenant: the page
	// of a tenant verified, or being verified, shows the last one.
	verifs map[string]Verification
}

// Verification is this process's last verification of a tenant.
type Verification struct {
	Running   bool           // under way
	Cancelled bool           // stopped by the operator: no verdict
	Report    *verify.Report // the verdict
	Err       error          // the verification could not be made
	At        time.Time      // when it ended (or started, while Running)
}

// New returns an empty detail page.
func New(c *common.Common) *Model { return &Model{c: c} }

// SetSize sets the page's size.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.render()
}

// Open shows row, judged at at, and, when the fleet has a bucket, starts
// listing its restore points.
func (m *Model) Open(row fleet.Row, at time.Time) tea.Cmd {
	m.id++
	m.row, m.at, m.gone, m.report, m.err, m.relistErr, m.offset = row, at, false, nil, nil, nil, 0
	m.loading, m.relisting = false, false
	defer m.render()
	ctx := m.c.Backend.Context()
	if !m.listable() {
		if err := s3browse.CheckName(row.Tenant); err != nil && ctx.Bucket != "" {
			// An invalid name is never sent to S3.
			m.err = err
		}
		return nil
	}
	m.loading = true
	m.c.Tasks.Start(TaskID, "listing restore points of "+shortName(row.Display())+"…", m.c.Now())
	m.c.Action(common.CommandLine(append([]string{"litefleet", "inspect", row.Tenant}, ctx.Flags(false)...)...))
	return m.inspectCmd()
}

// listable says the tenant's restore points can be listed: a bucket, and
// a valid name.
func (m *Model) listable() bool {
	r := m.row
	return m.c.Backend.Context().Bucket != "" && (r.Remote != nil || r.Local != nil) && s3browse.CheckName(r.Tenant) == nil
}

func (m *Model) inspectCmd() tea.Cmd {
	id, tenant, b := m.id, m.row.Tenant, m.c.Backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.CallTimeout)
		defer cancel()
		t, err := b.Inspect(ctx, tenant)
		return InspectedMsg{ID: id, Tenant: tenant, Report: t, Err: err}
	}
}

// SetVerification records tenant's verification; the page shows it when
// it is that tenant's.
func (m *Model) SetVerification(tenant string, v Verification) {
	if m.verifs == nil {
		m.verifs = map[string]Verification{}
	}
	m.verifs[tenant] = v
	if tenant == m.row.Tenant {
		m.render()
	}
}

// ClearVerifications forgets them: another bucket's tenants are others.
func (m *Model) ClearVerifications() {
	clear(m.verifs)
	m.render()
}

// SetRow shows the tenant as the table's last refresh, judged at at, has
// it: status, lag and TXIDs on the page are always the table's. found
// false says the tenant was not in that refresh; the page then keeps the
// row it had and says so.
func (m *Model) SetRow(row fleet.Row, at time.Time, found bool) {
	m.gone = !found
	if found {
		m.row = row
	}
	m.at = at
	m.render()
}

// Relist lists the restore points again, quietly (no task, no command
// line): the root calls it after each refresh, so the page's S3 side
// keeps up with the table. Nothing is asked while a listing runs.
func (m *Model) Relist() tea.Cmd {
	if m.loading || m.relisting || !m.listable() {
		return nil
	}
	m.relisting = true
	return m.inspectCmd()
}

func shortName(s string) string { return common.Middle(s, 40) }

// Row is the tenant shown.
func (m *Model) Row() fleet.Row { return m.row }

// Report is the tenant's restore points, once listed.
func (m *Model) Report() *s3browse.Tenant { return m.report }

// Inspected shows a report; a stale one (another tenant since) is dropped.
// A later listing that fails keeps the last good report on the page.
func (m *Model) Inspected(msg InspectedMsg) {
	if msg.ID != m.id {
		return
	}
	first := m.loading
	m.c.Tasks.Done(TaskID)
	m.loading, m.relisting = false, false
	if msg.Err == nil {
		m.report, m.listedAt, m.err, m.relistErr = msg.Report, m.c.Now(), nil, nil
		m.render()
		return
	}
	if first || m.err == nil && m.relistErr == nil {
		// Once, not at every refresh while S3 stays down.
		m.c.Error(fmt.Errorf("inspect %s: %w", untrusted.Printable(msg.Tenant), msg.Err))
	}
	if m.report == nil {
		m.err = msg.Err
	} else {
		m.relistErr = msg.Err
	}
	m.render()
}

// Update scrolls the page.
func (m *Model) Update(msg tea.KeyPressMsg) bool {
	k := m.c.Keys
	page := max(m.height-1, 1)
	switch {
	case key.Matches(msg, k.Down):
		m.offset++
	case key.Matches(msg, k.Up):
		m.offset--
	case key.Matches(msg, k.PageDown):
		m.offset += page
	case key.Matches(msg, k.PageUp):
		m.offset -= page
	case key.Matches(msg, k.Top):
		m.offset = 0
	case key.Matches(msg, k.Bottom):
		m.offset = len(m.lines)
	default:
		return false
	}
	m.offset = max(min(m.offset, len(m.lines)-page), 0)
	return true
}

// Scroll moves the page by n lines (the mouse wheel).
func (m *Model) Scroll(n int) {
	page := max(m.height-1, 1)
	m.offset = max(min(m.offset+n, len(m.lines)-page), 0)
}

// View draws the visible part of the page.
func (m *Model) View() string {
	if m.height <= 0 {
		return ""
	}
	st := m.c.Styles.Detail
	end := min(m.offset+m.height-1, len(m.lines))
	var b strings.Builder
	pos := fmt.Sprintf("%d-%d/%d lines · j/k scroll · R restore · esc back", m.offset+1, end, len(m.lines))
	// The position gives way to the name, the name is shortened in its
	// middle when even that does not fit.
	name := m.row.Display()
	if 7+len([]rune(name))+1+len(pos) > m.width {
		pos = fmt.Sprintf("%d-%d/%d", m.offset+1, end, len(m.lines))
	}
	name = common.Middle(name, max(m.width-7-1-len(pos), 8))
	b.WriteString(common.Spread(st.Title.Render("Tenant ")+m.c.Styles.StatusStyle(m.row.Status).Render(name), st.Dim.Render(pos), m.width))
	for _, l := range m.lines[m.offset:end] {
		b.WriteByte('\n')
		b.WriteString(l)
	}
	return common.PadLines(b.String(), m.width, m.height)
}

// render lays the page out as lines; it runs when the data or the width
// changes, never per frame.
func (m *Model) render() {
	st := m.c.Styles.Detail
	now := m.c.Now()
	w := max(m.width, 20)
	var out []string
	add := func(s string) { out = append(out, common.Cut(s, w)) }
	kv := func(label, value string) { out = append(out, kvLines(st.Label, st.Value, label, value, w)...) }
	section := func(s string) {
		out = append(out, "")
		add(st.Section.Render(s))
	}
	r := m.row

	// Status, TXIDs and lag come from one row of the table's last refresh:
	// they agree with the table and with each other.
	status := m.c.Styles.StatusStyle(r.Status).Render(string(r.Status))
	if r.Replicating {
		status += st.Value.Render(" · replicating in this process")
	}
	kv("status", status)
	if r.Note != "" {
		kv("note", untrusted.Printable(r.Note))
	}
	if r.Host != "" {
		state := untrusted.Printable(r.State)
		if r.StateAge > 0 {
			state += " for " + common.Duration(r.StateAge)
		}
		host := fmt.Sprintf("%s: %s · heartbeat %s ago · record %s old", untrusted.Printable(r.Host), state, common.Duration(r.HostAge), common.Duration(r.RecordAge))
		if r.HostSilent {
			host += " (silent)"
		}
		kv("host", host)
	}
	if r.Verdict != "" {
		// The host's last -verify-every verdict, by its clock.
		kv("verified", fmt.Sprintf("%s %s (%s) by host %s", untrusted.Printable(r.Verdict), common.Ago(now, r.VerifiedAt), common.Stamp(r.VerifiedAt), untrusted.Printable(r.Host)))
	}
	if v, ok := m.verifs[r.Tenant]; ok {
		kv("verify (V)", m.verificationText(v, now))
	}
	judged := "the table's refresh at " + common.Stamp(m.at)
	if m.gone {
		judged += st.Dim.Render(" · not in the last refresh")
	}
	kv("as of", judged)
	if l := r.Local; l != nil {
		kv("local", untrusted.Printable(l.Path))
		kv("", fmt.Sprintf("%s file + %s WAL · changed %s (%s)", common.Bytes(l.Size), common.Bytes(l.WALSize), common.Stamp(l.Changed), common.Ago(now, l.Changed)))
		txid := "none: Litestream never ran on it here"
		if l.TXID > 0 {
			txid = fmt.Sprintf("%s synced at %s", common.TXID(l.TXID), common.Stamp(l.TXIDTime))
		}
		kv("local TXID", txid)
		kv("name", fmt.Sprintf("%s (%s)", untrusted.Printable(l.Name), l.Verdict))
		if l.StateErr != "" {
			kv("state", untrusted.Printable(l.StateErr))
		}
	} else {
		kv("local", st.Dim.Render("nothing on this host"))
	}
	kv("S3 TXID", remoteTXID(r, now))
	if r.Local != nil {
		kv("lag", Lag(r))
	}

	switch {
	case m.c.Backend.Context().Bucket == "":
		section("S3")
		add(st.Dim.Render("S3 not configured: start with -bucket or -config, or :bucket NAME"))
	case m.loading:
		section("S3")
		add(st.Dim.Render("listing restore points…"))
	case m.err != nil:
		section("S3")
		add(m.c.Styles.Box.Error.Render(untrusted.Printable(m.err.Error())))
	case m.report != nil:
		out = append(out, m.reportLines(now, w)...)
	}
	m.lines = out
	m.offset = max(min(m.offset, len(m.lines)-1), 0)
}

// verificationText is this process's verification of the tenant: the
// verdict with the point it proved and what it rests on, failures in the
// error style.
func (m *Model) verificationText(v Verification, now time.Time) string {
	st := m.c.Styles.Box
	when := fmt.Sprintf(" (%s, %s)", common.Ago(now, v.At), common.Stamp(v.At))
	switch {
	case v.Running:
		return st.Dim.Render("verifying… since " + common.Stamp(v.At) + " (esc cancels)")
	case v.Cancelled:
		return st.Dim.Render("cancelled, no verdict" + when)
	case v.Err != nil:
		return st.Error.Render("could not verify: "+untrusted.Printable(v.Err.Error())) + st.Dim.Render(when)
	case v.Report == nil:
		return ""
	}
	r := v.Report
	head := VerdictLine(r)
	style := st.OK
	switch {
	case verify.Failed(r.Verdict):
		style = st.Error
	case r.Verdict != verify.Verified:
		style = st.Warn
	}
	text := style.Render(untrusted.Printable(head)) + st.Dim.Render(when)
	if r.Verdict == verify.Verified && r.Reason != "" {
		text += " · " + untrusted.Printable(r.Reason)
	}
	return text
}

// VerdictLine says a verdict in a line: "verified TXID 1841 (…) at TIME",
// "mismatch: REASON", "unverifiable: REASON".
func VerdictLine(r *verify.Report) string {
	if r.Verdict == verify.Verified {
		s := "verified"
		if r.TXID != 0 {
			s += " TXID " + common.TXID(r.TXID)
		}
		if !r.Time.IsZero() {
			s += " at " + common.Stamp(r.Time)
		}
		return s
	}
	return r.Verdict + ": " + r.Reason
}

// labelWidth is the width of the page's labels.
const labelWidth = 11

// kvLines is a label and its value, the value wrapped under itself: a path
// or a note is read whole, never cut.
func kvLines(labelStyle, valueStyle lipgloss.Style, label, value string, w int) []string {
	return strings.Split(lipgloss.JoinHorizontal(lipgloss.Top,
		labelStyle.Render(common.Fit(label, labelWidth, false)),
		valueStyle.Width(max(w-labelWidth, 10)).Render(value)), "\n")
}

// remoteTXID is the S3 side's position in the row: the replica's latest
// TXID, or why there is none.
func remoteTXID(r fleet.Row, now time.Time) string {
	rm := r.Remote
	switch {
	case rm == nil:
		return "none: nothing in S3"
	case rm.Format == s3browse.FormatEmpty:
		return "none: nothing replicated yet (format empty)"
	case rm.LatestTXID == 0:
		return fmt.Sprintf("none: the %s layout has no TXIDs · last upload %s (%s)", rm.Format, common.Stamp(rm.LatestAt), common.Ago(now, rm.LatestAt))
	}
	s := fmt.Sprintf("%s · last upload %s (%s)", common.TXID(rm.LatestTXID), common.Stamp(rm.LatestAt), common.Ago(now, rm.LatestAt))
	if rm.Source == s3browse.SourceHostRecord {
		// Not listed: what the host's record said, as of its age.
		s += fmt.Sprintf(" · from %s's record, as of %s ago", untrusted.Printable(r.Host), common.Duration(r.RecordAge))
	}
	return s
}

// Lag says how far S3 is behind the local database, from the row alone:
// its local TXID minus its S3 TXID; "unknown" when either side's TXID is.
func Lag(r fleet.Row) string {
	rm := r.Remote
	switch {
	case r.LagUnknown != "":
		return "unknown: " + r.LagUnknown
	case r.Local == nil && r.HostLocalTXID == 0:
		return "unknown: nothing local"
	case rm == nil || rm.Format == s3browse.FormatEmpty:
		return "unknown: nothing replicated in S3"
	case r.LocalTXID() == 0:
		return "unknown: no local Litestream state to compare with"
	case rm.LatestTXID == 0:
		return fmt.Sprintf("unknown: the %s layout has no TXID to compare with", rm.Format)
	case rm.LatestTXID > r.LocalTXID():
		return fmt.Sprintf("the replica is %d transaction(s) ahead of the local file", rm.LatestTXID-r.LocalTXID())
	case r.LagTXIDs == 0:
		return "none: S3 holds local TXID " + strconv.FormatUint(r.LocalTXID(), 10)
	case r.Lag > 0:
		return fmt.Sprintf("%d transaction(s) behind, the oldest waiting %s", r.LagTXIDs, common.Duration(r.Lag))
	}
	return fmt.Sprintf("%d transaction(s) behind", r.LagTXIDs)
}

// reportLines is the S3 listing of the tenant. It is newer than the row
// (listed after the refresh): where the two differ it says so, rather than
// showing a TXID beside a status judged on another.
func (m *Model) reportLines(now time.Time, w int) []string {
	c, t := m.c, m.report
	st := c.Styles.Detail
	var out []string
	add := func(s string) { out = append(out, common.Cut(s, w)) }
	kv := func(label, value string) { out = append(out, kvLines(st.Label, st.Value, label, value, w)...) }
	section := func(s string) {
		out = append(out, "")
		add(st.Section.Render(s))
	}
	section("Restore points in S3 · listed at " + common.Stamp(m.listedAt))
	if m.relistErr != nil {
		add(c.Styles.Box.Error.Render("listing again failed: " + untrusted.Printable(m.relistErr.Error())))
	}
	kv("replica", untrusted.Printable(t.URL))
	kv("format", fmt.Sprintf("%s · %d objects · %s", t.Format, t.Objects, common.Bytes(t.Bytes)))
	switch {
	case t.LatestTXID > 0:
		kv("latest", fmt.Sprintf("TXID %s · last upload %s (%s)", common.TXID(t.LatestTXID), common.Stamp(t.LatestAt), common.Ago(now, t.LatestAt)))
	case !t.LatestAt.IsZero():
		kv("latest", fmt.Sprintf("last upload %s (%s)", common.Stamp(t.LatestAt), common.Ago(now, t.LatestAt)))
	}
	if rm := m.row.Remote; rm != nil && t.LatestTXID != 0 && rm.LatestTXID != t.LatestTXID {
		kv("", st.Dim.Render(fmt.Sprintf("S3 TXID was %d at the refresh above: the next refresh judges the new one", rm.LatestTXID)))
	}
	kv("snapshots", fmt.Sprint(t.Snapshots))
	state, lease := fleet.JudgeLease(t.Lease, now)
	if l := t.Lease; state == fleet.LeaseLive && l.Host != "" && l.Host == m.row.Host {
		// The host line above has that host's heartbeat age, from the
		// table's refresh: a second age, read at another time, would
		// contradict it.
		lease = fmt.Sprintf("held by host %s (heartbeat above), claim generation %d", untrusted.Printable(l.Host), l.Generation)
	}
	kv("lease", lease)
	if t.UnknownObjects > 0 {
		kv("unknown", fmt.Sprintf("%d objects Litestream would not restore from", t.UnknownObjects))
	}
	if len(t.Levels) > 0 {
		section("LTX levels (Litestream v0.5): restore points are TXID ranges")
		dw := len("MAX TXID")
		for _, lv := range t.Levels {
			dw = max(dw, len(common.TXID(lv.MaxTXID)))
		}
		add(st.Label.Render(fmt.Sprintf("  %-26s %5s %8s  %-*s", "LEVEL", "FILES", "BYTES", dw, "MAX TXID")))
		for _, lv := range t.Levels {
			add(fmt.Sprintf("  %-26s %5d %8s  %-*s", levelName(lv.Level), lv.Count, common.Bytes(lv.Bytes), dw, common.TXID(lv.MaxTXID)))
		}
		for _, lv := range t.Levels {
			section(fmt.Sprintf("level %s · %d files, newest first", levelName(lv.Level), len(lv.Files)))
			out = append(out, fileLines(c, lv.Files, now, w)...)
		}
	}
	if len(t.Generations) > 0 {
		section("Generations (Litestream v0.3), oldest first")
		for _, g := range t.Generations {
			add(fmt.Sprintf("  %s  %s → %s · %d snapshot(s) · %d WAL segment(s) · %s",
				untrusted.Printable(g.ID), common.Stamp(g.FirstAt), common.Stamp(g.LastAt), len(g.Snapshots), len(g.WALSegments), common.Bytes(g.Bytes)))
		}
		for _, g := range t.Generations {
			section("generation " + untrusted.Printable(g.ID) + ", oldest first")
			add(st.Label.Render("  KIND      INDEX      OFFSET    SIZE  UPLOADED"))
			for _, s := range g.Snapshots {
				add(fmt.Sprintf("  snapshot  %08x          - %6s  %s", s.Index, common.Bytes(s.Size), common.Stamp(s.ModifiedAt)))
			}
			for _, s := range g.WALSegments {
				add(fmt.Sprintf("  wal       %08x  %08x %6s  %s", s.Index, s.Offset, common.Bytes(s.Size), common.Stamp(s.ModifiedAt)))
			}
		}
	}
	if len(t.Levels) == 0 && len(t.Generations) == 0 {
		section("Restore points")
		add(st.Dim.Render("none: nothing to restore from in this prefix"))
	}
	return out
}

// fileLines lists a level's files newest first: the latest restore points
// are what an operator looks for, and with hundreds of L0 files they would
// otherwise be pages down. TXIDs are in decimal, with their 16-hex form
// beside them when the page is wide enough for both.
func fileLines(c *common.Common, files []s3browse.LTXFile, now time.Time, w int) []string {
	st := c.Styles.Detail
	dw := 0
	for _, f := range files {
		dw = max(dw, len(strconv.FormatUint(f.MaxTXID, 10)))
	}
	const fixed = 2 + 2 + 2 + 6 + 2 + 20 + 2 + 8 // indent, gaps, size, time, age
	txid := func(n uint64) string { return fmt.Sprintf("%*d", dw, n) }
	if fixed+2*(dw+19) <= w {
		txid = func(n uint64) string { return fmt.Sprintf("%*d (%s)", dw, n, layout.TXIDHex(n)) }
	}
	cw := max(len(txid(1)), len("MAX TXID"))
	out := []string{common.Cut(st.Label.Render(fmt.Sprintf("  %-*s  %-*s  %6s  %s", cw, "MIN TXID", cw, "MAX TXID", "SIZE", "UPLOADED")), w)}
	for _, f := range slices.Backward(files) {
		out = append(out, common.Cut(fmt.Sprintf("  %-*s  %-*s  %6s  %s  %s", cw, txid(f.MinTXID), cw, txid(f.MaxTXID), common.Bytes(f.Size), common.Stamp(f.ModifiedAt), st.Dim.Render(common.Ago(now, f.ModifiedAt))), w))
	}
	return out
}

func levelName(level int) string {
	switch level {
	case 0:
		return "0 (one file per sync)"
	case layout.SnapshotLevel:
		return fmt.Sprintf("%d (snapshots)", level)
	}
	return fmt.Sprintf("%d (compaction)", level)
}
