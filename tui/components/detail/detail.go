// Package detail is a tenant's page (`enter`): its local database and its
// restore points in S3 — LTX levels and files with TXID ranges, sizes and
// times, snapshots, v0.3 generations with their snapshots and WAL
// segments — and the lease owner.
package detail

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tui/common"
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

	id      int
	row     fleet.Row
	at      time.Time // when row was judged
	report  *s3browse.Tenant
	err     error
	loading bool

	lines  []string // rendered once per report, drawn a page at a time
	offset int
}

// New returns an empty detail page.
func New(c *common.Common) *Model { return &Model{c: c} }

// SetSize sets the page's size.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.render()
}

// Open shows row and, when the fleet has a bucket, starts listing its
// restore points.
func (m *Model) Open(row fleet.Row, at time.Time) tea.Cmd {
	m.id++
	m.row, m.at, m.report, m.err, m.offset = row, at, nil, nil, 0
	m.loading = false
	defer m.render()
	ctx := m.c.Backend.Context()
	if ctx.Bucket == "" || row.Remote == nil && row.Local == nil {
		return nil
	}
	if err := s3browse.CheckName(row.Tenant); err != nil {
		// An invalid name is never sent to S3.
		m.err = err
		return nil
	}
	m.loading = true
	m.c.Tasks.Start(TaskID, "listing restore points of "+shortName(row.Display())+"…", m.c.Now())
	m.c.Action(common.CommandLine(append([]string{"litefleet", "inspect", row.Tenant}, ctx.Flags(false)...)...))
	id, tenant, b := m.id, row.Tenant, m.c.Backend
	return func() tea.Msg {
		t, err := b.Inspect(context.Background(), tenant)
		return InspectedMsg{ID: id, Tenant: tenant, Report: t, Err: err}
	}
}

func shortName(s string) string { return common.Cut(s, 40) }

// Row is the tenant shown.
func (m *Model) Row() fleet.Row { return m.row }

// Report is the tenant's restore points, once listed.
func (m *Model) Report() *s3browse.Tenant { return m.report }

// Inspected shows a report; a stale one (another tenant since) is dropped.
func (m *Model) Inspected(msg InspectedMsg) {
	if msg.ID != m.id {
		return
	}
	m.c.Tasks.Done(TaskID)
	m.loading = false
	m.report, m.err = msg.Report, msg.Err
	if msg.Err != nil {
		m.c.Error(fmt.Errorf("inspect %s: %w", fleet.Printable(msg.Tenant), msg.Err))
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

// View draws the visible part of the page.
func (m *Model) View() string {
	if m.height <= 0 {
		return ""
	}
	st := m.c.Styles.Detail
	end := min(m.offset+m.height-1, len(m.lines))
	var b strings.Builder
	pos := fmt.Sprintf("%d-%d/%d lines · j/k scroll · R restore · esc back", m.offset+1, end, len(m.lines))
	b.WriteString(common.Spread(st.Title.Render("Tenant ")+m.c.Styles.StatusStyle(m.row.Status).Render(m.row.Display()), st.Dim.Render(pos), m.width))
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
	kv := func(label, value string) { add(st.Label.Render(common.Fit(label, 11, false)) + st.Value.Render(value)) }
	section := func(s string) {
		out = append(out, "")
		add(st.Section.Render(s))
	}
	r := m.row

	status := m.c.Styles.StatusStyle(r.Status).Render(string(r.Status))
	if r.Replicating {
		status += st.Value.Render(" · replicating in this process")
	}
	kv("status", status)
	if r.Note != "" {
		kv("note", fleet.Printable(r.Note))
	}
	if l := r.Local; l != nil {
		kv("local", fleet.Printable(l.Path))
		kv("", fmt.Sprintf("%s + WAL %s · changed %s (%s)", common.Bytes(l.Size), common.Bytes(l.WALSize), common.Stamp(l.Changed), common.Ago(now, l.Changed)))
		txid := "none: Litestream never ran on it here"
		if l.TXID > 0 {
			txid = fmt.Sprintf("%d (%s) synced at %s", l.TXID, s3browse.TXIDHex(l.TXID), common.Stamp(l.TXIDTime))
		}
		kv("local TXID", txid)
		kv("name", fmt.Sprintf("%s (%s)", fleet.Printable(l.Name), l.Verdict))
		if l.StateErr != "" {
			kv("state", fleet.Printable(l.StateErr))
		}
	} else {
		kv("local", st.Dim.Render("nothing on this host"))
	}
	if r.Local != nil && r.Remote != nil {
		lag := "none: the replica holds every local transaction"
		if r.LagTXIDs > 0 {
			lag = fmt.Sprintf("%d transaction(s) behind, oldest waiting %s", r.LagTXIDs, common.Duration(r.Lag))
		}
		kv("lag", lag)
	}

	switch {
	case m.c.Backend.Context().Bucket == "":
		section("S3")
		add(st.Dim.Render("no bucket: start with -bucket or -config, or :bucket NAME"))
	case m.loading:
		section("S3")
		add(st.Dim.Render("listing restore points…"))
	case m.err != nil:
		section("S3")
		add(m.c.Styles.Box.Error.Render(fleet.Printable(m.err.Error())))
	case m.report != nil:
		out = append(out, reportLines(m.c, m.report, now, w)...)
	}
	m.lines = out
	m.offset = max(min(m.offset, len(m.lines)-1), 0)
}

func reportLines(c *common.Common, t *s3browse.Tenant, now time.Time, w int) []string {
	st := c.Styles.Detail
	var out []string
	add := func(s string) { out = append(out, common.Cut(s, w)) }
	kv := func(label, value string) { add(st.Label.Render(common.Fit(label, 11, false)) + st.Value.Render(value)) }
	section := func(s string) {
		out = append(out, "")
		add(st.Section.Render(s))
	}
	section("S3 replica")
	kv("replica", fleet.Printable(t.URL))
	kv("format", fmt.Sprintf("%s · %d objects · %s", t.Format, t.Objects, common.Bytes(t.Bytes)))
	if t.LatestTXID > 0 || !t.LatestAt.IsZero() {
		kv("latest", fmt.Sprintf("TXID %d (%s) · last upload %s (%s)", t.LatestTXID, t.LatestTXIDHex, common.Stamp(t.LatestAt), common.Ago(now, t.LatestAt)))
	}
	kv("snapshots", fmt.Sprint(t.Snapshots))
	_, lease := fleet.JudgeLease(t.Lease, now)
	kv("lease", lease)
	if t.UnknownObjects > 0 {
		kv("unknown", fmt.Sprintf("%d objects Litestream would not restore from", t.UnknownObjects))
	}
	if len(t.Levels) > 0 {
		section("LTX levels (Litestream v0.5): restore points are TXID ranges")
		add(st.Label.Render("  LEVEL                      FILES    BYTES   MAX TXID"))
		for _, lv := range t.Levels {
			add(fmt.Sprintf("  %-26s %5d %8s %10d", levelName(lv.Level), lv.Count, common.Bytes(lv.Bytes), lv.MaxTXID))
		}
		for _, lv := range t.Levels {
			section(fmt.Sprintf("level %s · %d files", levelName(lv.Level), len(lv.Files)))
			add(st.Label.Render("  MIN TXID         MAX TXID           SIZE  UPLOADED"))
			// Newest first: the restore points an operator looks for.
			for i := len(lv.Files) - 1; i >= 0; i-- {
				f := lv.Files[i]
				add(fmt.Sprintf("  %s %s %6s  %s  %s", f.MinTXIDHex, f.MaxTXIDHex, common.Bytes(f.Size), common.Stamp(f.ModifiedAt), st.Dim.Render(common.Ago(now, f.ModifiedAt))))
			}
		}
	}
	if len(t.Generations) > 0 {
		section("Generations (Litestream v0.3)")
		for _, g := range t.Generations {
			add(fmt.Sprintf("  %s  %s → %s · %d snapshot(s) · %d WAL segment(s) · %s",
				fleet.Printable(g.ID), common.Stamp(g.FirstAt), common.Stamp(g.LastAt), len(g.Snapshots), len(g.WALSegments), common.Bytes(g.Bytes)))
		}
		for _, g := range t.Generations {
			section("generation " + fleet.Printable(g.ID))
			add(st.Label.Render("  KIND      INDEX      OFFSET    SIZE  UPLOADED"))
			for _, s := range g.Snapshots {
				add(fmt.Sprintf("  snapshot  %08x          - %6s  %s", s.Index, common.Bytes(s.Size), common.Stamp(s.ModifiedAt)))
			}
			for i := len(g.WALSegments) - 1; i >= 0; i-- {
				s := g.WALSegments[i]
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

func levelName(level int) string {
	switch level {
	case 0:
		return "0 (one file per sync)"
	case s3browse.SnapshotLevel:
		return fmt.Sprintf("%d (snapshots)", level)
	}
	return fmt.Sprintf("%d (compaction)", level)
}
