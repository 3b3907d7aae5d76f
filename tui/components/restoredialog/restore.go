// Package restore is the restore dialog (`R`): choose the point (latest, a
// snapshot, a TXID or a time) and the output file, read the plan, confirm
// by typing the tenant's name (and a second time before replacing a file),
// watch the progress, read the result. Restore itself refuses a database
// this process replicates; the dialog only ever adds confirmations.
package restoredialog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/s3conn"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

// TaskID names the restore in the footer.
const TaskID = "restore"

// OverwriteWord is what the operator types to replace an existing file.
const OverwriteWord = "overwrite"

type step int

const (
	stepPoint     step = iota // choose latest, a snapshot, a TXID or a time
	stepTXID                  // type a TXID
	stepTime                  // type a time
	stepOutput                // edit the output path
	stepPlanning              // waiting for the plan
	stepConfirm               // read the plan, type the tenant's name
	stepOverwrite             // type OverwriteWord to replace the file
	stepRunning               // progress bar
	stepResult                // what was restored, or why not
)

// Messages of one dialog session, routed by ID.
type (
	reportMsg struct {
		ID     int
		Report *s3browse.Tenant
		Err    error
		Again  bool // a listing made while the dialog is open: keep the old one on error
	}
	plannedMsg struct {
		ID   int
		Plan *restore.Plan
		// Overwrite says the plan replaces an existing file: allowed only
		// after the second confirmation.
		Overwrite bool
		Err       error
	}
	progressMsg struct {
		ID          int
		Done, Total int64
		ch          chan progressMsg
	}
	doneMsg struct {
		ID     int
		Result *restore.Result
		Err    error
	}
)

// choice is one restore point offered.
type choice struct {
	label  string
	kind   string // latest, txid, time, point
	txid   uint64
	at     time.Time
	source string
}

// Model is the dialog.
type Model struct {
	c    *common.Common
	open bool
	id   int
	step step

	row       fleet.Row
	report    *s3browse.Tenant
	listedAt  time.Time // when report arrived
	loading   bool      // the first listing runs
	relisting bool      // a later listing runs
	listErr   error     // the last listing failed
	listings  int       // listings received: a plan knows which it followed
	planSeq   int       // listings when the plan arrived
	choices   []choice
	cursor    int

	input  textinput.Model
	inErr  string
	opt    restore.Options
	point  string // the point chosen, in words
	plan   *restore.Plan
	force  bool // the plan replaces a file: needs stepOverwrite
	bar    progress.Model
	done   int64
	total  int64
	cancel context.CancelFunc
	result *restore.Result
	err    error
}

// New returns a closed dialog.
func New(c *common.Common) *Model {
	in := textinput.New()
	st := c.Styles.Input
	in.SetStyles(textinput.Styles{
		Focused: textinput.StyleState{Prompt: st.Prompt, Text: st.Text, Placeholder: st.Placeholder},
		Blurred: textinput.StyleState{Prompt: st.Prompt, Text: st.Text, Placeholder: st.Placeholder},
	})
	bar := progress.New(progress.WithFillCharacters('█', '░'), progress.WithWidth(40))
	if c.Styles.Color {
		bar.FullColor, bar.EmptyColor = c.Styles.Progress.Full, c.Styles.Progress.Empty
	} else {
		bar.FullColor, bar.EmptyColor = lipgloss.NoColor{}, lipgloss.NoColor{}
	}
	return &Model{c: c, input: in, bar: bar}
}

// Open reports whether the dialog shows.
func (m *Model) Open() bool { return m.open }

// Running reports whether a restore is in progress.
func (m *Model) Running() bool { return m.open && m.step == stepRunning }

// Start opens the dialog for row. report, when the detail page has it, is
// used at once; otherwise the restore points are listed first.
func (m *Model) Start(row fleet.Row, report *s3browse.Tenant) tea.Cmd {
	m.id++
	*m = Model{c: m.c, input: m.input, bar: m.bar, id: m.id, open: true, row: row, report: report}
	m.input.Blur()
	if report != nil {
		m.listedAt = m.c.Now()
	}
	m.buildChoices()
	if report != nil || m.c.Backend.Context().Bucket == "" {
		return nil
	}
	m.loading = true
	return m.inspectCmd(false)
}

func (m *Model) inspectCmd(again bool) tea.Cmd {
	id, b, tenant := m.id, m.c.Backend, m.row.Tenant
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.CallTimeout)
		defer cancel()
		t, err := b.Inspect(ctx, tenant)
		return reportMsg{ID: id, Report: t, Err: err, Again: again}
	}
}

// Row is the tenant being restored.
func (m *Model) Row() fleet.Row { return m.row }

// SetRow shows the tenant as the table's last refresh has it; found false
// keeps the row the dialog had.
func (m *Model) SetRow(row fleet.Row, found bool) {
	if found {
		m.row = row
	}
}

// Relist lists the restore points again, so that "latest" is not frozen at
// the moment the dialog opened: the root calls it after each refresh.
// Nothing is asked once the restore runs, nor while a listing runs.
func (m *Model) Relist() tea.Cmd {
	if !m.open || m.loading || m.relisting || m.step >= stepRunning || m.c.Backend.Context().Bucket == "" {
		return nil
	}
	m.relisting = true
	return m.inspectCmd(true)
}

// buildChoices lists latest, a TXID, a time, then every snapshot, oldest
// first as everywhere else: LTX level-9 files (a TXID) and v0.3 snapshots
// (a time in their generation). The cursor stays on the point it was on.
func (m *Model) buildChoices() {
	var was choice
	if m.cursor < len(m.choices) {
		was = m.choices[m.cursor]
	}
	m.choices = []choice{
		{label: "latest", kind: "latest"},
		{label: "a TXID…", kind: "txid"},
		{label: "a time…", kind: "time"},
	}
	if t := m.report; t != nil {
		if t.LatestTXID > 0 {
			m.choices[0].label = fmt.Sprintf("latest: TXID %s, uploaded %s", common.TXID(t.LatestTXID), common.Stamp(t.LatestAt))
		} else if !t.LatestAt.IsZero() {
			m.choices[0].label = "latest: uploaded " + common.Stamp(t.LatestAt)
		}
		for _, lv := range t.Levels {
			if lv.Level != layout.SnapshotLevel {
				continue
			}
			for _, f := range lv.Files {
				m.choices = append(m.choices, choice{
					label: fmt.Sprintf("snapshot: TXID %s, %s, %s", common.TXID(f.MaxTXID), common.Bytes(f.Size), common.Stamp(f.ModifiedAt)),
					kind:  "point", txid: f.MaxTXID, source: restore.SourceLTX,
				})
			}
		}
		for _, g := range t.Generations {
			for _, s := range g.Snapshots {
				m.choices = append(m.choices, choice{
					label: fmt.Sprintf("v0.3 snapshot: generation %s index %08x, %s, %s", untrusted.Printable(g.ID), s.Index, common.Bytes(s.Size), common.Stamp(s.ModifiedAt)),
					kind:  "point", at: s.ModifiedAt, source: restore.SourceGenerations,
				})
			}
		}
	}
	m.cursor = 0
	for i, c := range m.choices {
		if c.kind == was.kind && c.txid == was.txid && c.at.Equal(was.at) && c.source == was.source {
			m.cursor = i
		}
	}
}

// DefaultOutput is where a restore goes unless the operator says
// otherwise: beside the live file, or in the current folder for a tenant
// with nothing local, as NAME.restored-TIME.db. It never names the live
// file itself.
func DefaultOutput(row fleet.Row, now time.Time) string {
	name := row.Tenant + tenants.RestoredMarker + now.UTC().Format("20060102T150405Z") + ".db"
	if row.Local != nil {
		return filepath.Join(filepath.Dir(row.Local.Path), name)
	}
	return "." + string(filepath.Separator) + name
}

func (m *Model) focusInput(value, placeholder string) tea.Cmd {
	m.input.Reset()
	m.input.Prompt = "> "
	m.input.Placeholder = placeholder
	m.input.SetValue(value)
	m.input.CursorEnd()
	m.input.SetWidth(max(common.BoxWidth(m.c.Width, 100)-8, 20))
	m.inErr = ""
	return m.input.Focus()
}

// Update handles a key while the dialog is open.
func (m *Model) Update(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	switch m.step {
	case stepPoint:
		switch {
		case key.Matches(msg, k.Back):
			m.open = false
		case key.Matches(msg, k.Up):
			m.cursor = max(m.cursor-1, 0)
		case key.Matches(msg, k.Down):
			m.cursor = min(m.cursor+1, len(m.choices)-1)
		case key.Matches(msg, k.Confirm):
			ch := m.choices[m.cursor]
			m.opt = restore.Options{Tenant: m.row.Tenant, Source: ch.source}
			switch ch.kind {
			case "txid":
				m.step = stepTXID
				return m.focusInput("", "TXID: 16 hex digits as in LTX file names, or decimal")
			case "time":
				m.step = stepTime
				return m.focusInput("", "UTC time (2006-01-02T15:04:05Z) or an age (15m = 15 minutes ago)")
			case "point":
				m.opt.TXID, m.opt.Timestamp = ch.txid, ch.at
				m.point = ch.label
			default:
				m.point = "latest"
			}
			m.step = stepOutput
			return m.focusInput(DefaultOutput(m.row, m.c.Now()), "output file")
		}
		return nil
	case stepTXID, stepTime:
		switch {
		case key.Matches(msg, k.Back):
			m.step = stepPoint
			m.input.Blur()
			return nil
		case key.Matches(msg, k.Confirm):
			if m.step == stepTXID {
				txid, err := ParseTXID(m.input.Value())
				if err != nil {
					m.inErr = err.Error()
					return nil
				}
				m.opt.TXID, m.point = txid, "TXID "+common.TXID(txid)
			} else {
				at, err := ParseTime(m.input.Value(), m.c.Now())
				if err != nil {
					m.inErr = err.Error()
					return nil
				}
				m.opt.Timestamp, m.point = at, "time "+common.StampNano(at)
			}
			m.step = stepOutput
			return m.focusInput(DefaultOutput(m.row, m.c.Now()), "output file")
		}
	case stepOutput:
		switch {
		case key.Matches(msg, k.Back):
			m.step = stepPoint
			m.input.Blur()
			return nil
		case key.Matches(msg, k.Confirm):
			out := strings.TrimSpace(m.input.Value())
			if out == "" {
				m.inErr = "give the file to restore into"
				return nil
			}
			m.opt.Output = out
			m.step = stepPlanning
			m.input.Blur()
			return m.planCmd()
		}
	case stepPlanning:
		if key.Matches(msg, k.Back) {
			m.step = stepOutput
			m.id++ // drop the plan on its way
			m.c.Tasks.Done(TaskID)
			return m.focusInput(m.opt.Output, "output file")
		}
		return nil
	case stepConfirm:
		switch {
		case key.Matches(msg, k.Back):
			m.step = stepOutput
			return m.focusInput(m.opt.Output, "output file")
		case key.Matches(msg, k.Confirm):
			if m.plan == nil || m.plan.Refusal != "" {
				return nil
			}
			if m.input.Value() != m.row.Tenant {
				m.inErr = "that is not the tenant's name: type it exactly to restore"
				return nil
			}
			if m.force {
				m.step = stepOverwrite
				return m.focusInput("", "type "+OverwriteWord+" to replace the file")
			}
			return m.run()
		}
	case stepOverwrite:
		switch {
		case key.Matches(msg, k.Back):
			m.step = stepConfirm
			return m.focusInput("", "tenant name")
		case key.Matches(msg, k.Confirm):
			if m.input.Value() != OverwriteWord {
				m.inErr = "type " + OverwriteWord + " to replace the existing file, or esc"
				return nil
			}
			m.opt.Force = true
			return m.run()
		}
	case stepRunning:
		if key.Matches(msg, k.Back) && m.cancel != nil {
			// Restore removes its temporary files: nothing is left half-written.
			m.cancel()
			m.c.Info("cancelling the restore…")
		}
		return nil
	case stepResult:
		if key.Matches(msg, k.Back) || key.Matches(msg, k.Confirm) {
			m.open = false
		}
		return nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.inErr = ""
	return cmd
}

// planCmd plans the restore. A plan refused only because the output exists
// is planned again as an overwrite: the dialog then asks a second time.
func (m *Model) planCmd() tea.Cmd {
	id, b, opt := m.id, m.c.Backend, m.opt
	m.c.Tasks.Start(TaskID, "planning the restore…", m.c.Now())
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.CallTimeout)
		defer cancel()
		p, err := b.PlanRestore(ctx, opt)
		if err != nil || p.Refusal == "" || (!p.OutputExists && !strings.Contains(p.Refusal, "-force")) {
			return plannedMsg{ID: id, Plan: p, Err: err}
		}
		opt.Force = true
		fp, err := b.PlanRestore(ctx, opt)
		if err != nil {
			return plannedMsg{ID: id, Plan: p, Err: err}
		}
		if fp.Refusal != "" {
			return plannedMsg{ID: id, Plan: fp}
		}
		return plannedMsg{ID: id, Plan: fp, Overwrite: true}
	}
}

// run starts the restore; progress comes back through a channel read by a
// tea.Cmd, one message at a time.
func (m *Model) run() tea.Cmd {
	m.step = stepRunning
	m.input.Blur()
	m.done, m.total = 0, m.plan.Bytes
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.c.Tasks.Start(TaskID, "restoring "+common.Middle(m.row.Display(), 24), m.c.Now())
	m.c.Action(m.commandLine())

	id, b, opt := m.id, m.c.Backend, m.opt
	ch := make(chan progressMsg, 1)
	opt.Progress = func(done, total int64) {
		p := progressMsg{ID: id, Done: done, Total: total, ch: ch}
		// Keep only the newest figure: the screen needs no backlog.
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- p:
		default:
		}
	}
	restore := func() tea.Msg {
		defer close(ch)
		defer cancel()
		res, err := b.Restore(ctx, opt)
		return doneMsg{ID: id, Result: res, Err: err}
	}
	return tea.Batch(restore, waitProgress(ch))
}

func waitProgress(ch chan progressMsg) tea.Cmd {
	return func() tea.Msg {
		p, ok := <-ch
		if !ok {
			return nil
		}
		p.ch = ch
		return p
	}
}

// commandLine is the litefleet restore command doing the same restore.
func (m *Model) commandLine() string {
	ctx := m.c.Backend.Context()
	w := append([]string{"litefleet", "restore"}, ctx.Flags(false)...)
	w = append(w, "-o", m.opt.Output)
	if m.opt.TXID != 0 {
		w = append(w, "-txid", layout.TXIDHex(m.opt.TXID))
	}
	if !m.opt.Timestamp.IsZero() {
		// Every digit: the command must restore the same point.
		w = append(w, "-timestamp", common.StampNano(m.opt.Timestamp))
	}
	if m.opt.Source != "" {
		w = append(w, "-source", m.opt.Source)
	}
	if m.opt.Force {
		w = append(w, "-force")
	}
	return common.CommandLine(append(w, m.row.Tenant)...)
}

// Handle takes the dialog's own messages; it reports whether msg was one.
func (m *Model) Handle(msg tea.Msg) (bool, tea.Cmd) {
	switch msg := msg.(type) {
	case reportMsg:
		if msg.ID != m.id {
			return true, nil
		}
		m.loading, m.relisting = false, false
		if msg.Err != nil {
			if !msg.Again || m.listErr == nil {
				// Once, not at every refresh while S3 stays down.
				m.c.Error(fmt.Errorf("restore points of %s: %w", m.row.Display(), msg.Err))
			}
			m.listErr = msg.Err
			return true, nil // the last good listing, if any, stays
		}
		m.report, m.listedAt, m.listErr = msg.Report, m.c.Now(), nil
		m.listings++
		m.buildChoices()
		return true, nil
	case plannedMsg:
		if msg.ID != m.id || m.step != stepPlanning {
			return true, nil
		}
		m.c.Tasks.Done(TaskID)
		if msg.Err != nil {
			m.c.Error(msg.Err)
			m.step = stepOutput
			m.inErr = msg.Err.Error()
			return true, m.focusInput(m.opt.Output, "output file")
		}
		m.plan, m.force, m.planSeq = msg.Plan, msg.Overwrite, m.listings
		m.opt.Output = msg.Plan.Output
		m.step = stepConfirm
		if msg.Plan.Refusal != "" {
			m.c.Error(errors.New(msg.Plan.Refusal))
			m.input.Blur()
			return true, nil
		}
		return true, m.focusInput("", "tenant name")
	case progressMsg:
		if msg.ID != m.id {
			return true, nil
		}
		m.done, m.total = msg.Done, msg.Total
		if m.total > 0 {
			m.c.Tasks.Progress(TaskID, float64(m.done)/float64(m.total))
		}
		return true, waitProgress(msg.ch)
	case doneMsg:
		if msg.ID != m.id {
			return true, nil
		}
		m.c.Tasks.Done(TaskID)
		m.cancel = nil
		m.result, m.err = msg.Result, msg.Err
		m.step = stepResult
		if msg.Err != nil {
			m.c.Error(msg.Err)
		} else {
			r := msg.Result
			m.c.Info("restored %s to %s: %s, integrity %s", m.row.Display(), untrusted.Printable(r.Output), Position(r.Position), r.Integrity)
		}
		return true, nil
	}
	return false, nil
}

// View draws the dialog box for a screen width cells wide.
func (m *Model) View(width int) string {
	st := m.c.Styles.Box
	w := common.BoxWidth(width, 100)
	inner := w - 4
	var b strings.Builder
	line := func(s string) {
		b.WriteString(common.Cut(s, inner))
		b.WriteByte('\n')
	}
	// kv wraps its value under itself: paths, notes and errors are read
	// whole, never cut.
	kv := func(label, value string) {
		b.WriteString(lipgloss.JoinHorizontal(lipgloss.Top,
			st.Label.Render(common.Fit(label, kvLabel, false)),
			st.Value.Width(inner-kvLabel).Render(value)))
		b.WriteByte('\n')
	}
	// para wraps a message that must be read whole: a refusal, a warning.
	para := func(style lipgloss.Style, s string) {
		b.WriteString(style.Width(inner).Render(s))
		b.WriteByte('\n')
	}
	line(st.Title.Render("Restore ") + m.c.Styles.StatusStyle(m.row.Status).Render(common.Middle(m.row.Display(), inner-8)))
	if ctx := m.c.Backend.Context(); ctx.Bucket != "" {
		kv("from", s3conn.Conn{Bucket: ctx.Bucket, Prefix: ctx.Prefix}.URL(untrusted.Printable(m.row.Tenant)))
	}
	if m.listErr != nil {
		para(st.Error, "✗ listing the restore points failed: "+untrusted.Printable(m.listErr.Error()))
	}
	line("")

	switch m.step {
	case stepPoint:
		line(st.Label.Render("1/3 · restore point"))
		for i, c := range m.choices {
			text := "  " + c.label
			if i == m.cursor {
				line(st.Chosen.Render(common.Fit("› "+c.label, inner, false)))
				continue
			}
			line(st.Choice.Render(text))
		}
		if m.loading {
			line(st.Dim.Render("  listing snapshots…"))
		}
		line("")
		line(st.Dim.Render("j/k choose · enter next · esc cancel"))
	case stepTXID, stepTime:
		what := "TXID"
		if m.step == stepTime {
			what = "time"
		}
		line(st.Label.Render("1/3 · restore to a " + what))
		line(m.input.View())
		m.errLine(para)
		line("")
		line(st.Dim.Render("enter next · esc back"))
	case stepOutput, stepPlanning:
		kv("point", m.point)
		line("")
		line(st.Label.Render("2/3 · output file (it must not be a replicated database)"))
		line(m.input.View())
		m.errLine(para)
		line("")
		if m.step == stepPlanning {
			line(st.Dim.Render("planning…"))
		} else {
			line(st.Dim.Render("enter plan the restore · esc back"))
		}
	case stepConfirm, stepOverwrite:
		m.planLines(kv, line)
		line("")
		switch {
		case m.plan.Refusal != "":
			para(st.Error, "✗ refused: "+untrusted.Printable(m.plan.Refusal))
			line("")
			line(st.Dim.Render("esc back: choose another output file"))
		case m.step == stepConfirm:
			line(st.Label.Render("3/3 · type the tenant's name to restore"))
			line(m.input.View())
			m.errLine(para)
			line("")
			line(st.Dim.Render("enter restore · esc back"))
		default:
			para(st.Warn, fmt.Sprintf("%s exists. Type %q to replace it: the old file and its -wal/-shm are kept as %s.bak-TIME.",
				untrusted.Printable(m.plan.Output), OverwriteWord, untrusted.Printable(filepath.Base(m.plan.Output))))
			line(m.input.View())
			m.errLine(para)
			line("")
			line(st.Dim.Render("enter replace · esc back"))
		}
	case stepRunning:
		kv("point", m.point)
		kv("output", untrusted.Printable(m.opt.Output))
		line("")
		bar := m.bar
		bar.SetWidth(min(inner, 60))
		pct := 0.0
		if m.total > 0 {
			pct = float64(m.done) / float64(m.total)
		}
		line(bar.ViewAs(pct))
		line(st.Dim.Render(fmt.Sprintf("%s of %s downloaded", common.Bytes(m.done), common.Bytes(m.total))))
		line("")
		line(st.Dim.Render("esc cancels: nothing is written until the restored file is complete and checked"))
	case stepResult:
		if m.err != nil {
			line(st.Error.Render("✗ restore failed"))
			para(st.Value, untrusted.Printable(m.err.Error()))
		} else {
			r := m.result
			line(st.OK.Render("✓ restored"))
			kv("output", untrusted.Printable(r.Output))
			kv("reached", Position(r.Position))
			kv("integrity", r.Integrity)
			if r.Checksum != "" {
				kv("checksum", r.Checksum+" (matches the replica's)")
			}
			kv("size", fmt.Sprintf("%s, %s downloaded in %s", common.Bytes(r.Size), common.Bytes(r.Downloaded), (time.Duration(r.DurationMS)*time.Millisecond).String()))
			if r.Backup != "" {
				kv("old file", untrusted.Printable(r.Backup))
			}
			if r.Note != "" {
				kv("note", untrusted.Printable(r.Note))
			}
		}
		line("")
		line(st.Dim.Render("enter or esc closes"))
	}
	return st.Frame.Width(w).Render(strings.TrimSuffix(b.String(), "\n"))
}

func (m *Model) errLine(para func(lipgloss.Style, string)) {
	if m.inErr != "" {
		para(m.c.Styles.Box.Error, untrusted.Printable(m.inErr))
	}
}

func (m *Model) planLines(kv func(string, string), line func(string)) {
	p := m.plan
	kv("point", m.point)
	kv("output", untrusted.Printable(p.Output))
	kv("reaches", Position(p.Position))
	kv("reads", fmt.Sprintf("%d file(s), %s, from the %s layout", len(p.Files), common.Bytes(p.Bytes), p.Source))
	switch t := m.report; {
	case t != nil && t.LatestTXID != 0 && m.listings > m.planSeq:
		// Listed again since the plan: the replica's latest now.
		kv("latest", fmt.Sprintf("TXID %s at %s (listed %s)", common.TXID(t.LatestTXID), common.Stamp(t.LatestAt), common.Stamp(m.listedAt)))
	case p.Latest.TXID != 0 || p.Latest.Generation != "":
		kv("latest", Position(p.Latest))
	}
	for _, n := range p.Notes {
		kv("note", untrusted.Printable(n))
	}
	if m.force {
		kv("replaces", "the existing file, after a second confirmation")
	}
}

// kvLabel is the width of the dialog's labels.
const kvLabel = 10

// Position describes a restore point as the rest of the UI shows one: TXID
// in decimal, then its 16-hex form, and the time.
func Position(p restore.Position) string {
	var s string
	switch {
	case p.Generation != "":
		s = fmt.Sprintf("generation %s, WAL %08x/%08x", untrusted.Printable(p.Generation), p.Index, p.Offset)
	case p.TXID != 0:
		s = "TXID " + common.TXID(p.TXID)
	default:
		return "nothing"
	}
	if !p.Time.IsZero() {
		s += " at " + common.Stamp(p.Time)
	}
	return s
}

// ParseTXID reads a TXID: 16 hex digits as in LTX file names (or 0x…),
// else decimal.
func ParseTXID(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	v, err := layout.ParseTXID(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a TXID: give 16 hex digits (0000000000000042) or a decimal number", s)
	}
	return v, nil
}

// ParseTime reads a time: RFC 3339, "2006-01-02 15:04:05" in UTC, or an age
// ("15m", "2h") counted back from now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), " ago"))
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: give 2006-01-02T15:04:05Z (UTC) or an age such as 15m", s)
}
