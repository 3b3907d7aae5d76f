// Package validate is the name check overlay (`v`): every invalid tenant
// name, every fallback to "default" and every collision, on both sides of
// the fleet.
package validate

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

// TaskID names the check in the footer.
const TaskID = "validate"

// DoneMsg carries the findings of one check.
type DoneMsg struct {
	ID       int
	Findings []common.Finding
	Err      error
}

// Model is the overlay.
type Model struct {
	c        *common.Common
	id       int
	open     bool
	findings []common.Finding
	offset   int
	height   int

	// The overlay's lines, built once per check and width, not per frame.
	lines  []string
	linesW int
	counts map[string]int
}

// New returns a closed overlay.
func New(c *common.Common) *Model { return &Model{c: c} }

// Open reports whether the overlay shows.
func (m *Model) Open() bool { return m.open }

// Close hides the overlay.
func (m *Model) Close() { m.open = false }

// Start runs a check; the overlay opens with its result.
func (m *Model) Start() tea.Cmd {
	m.id++
	id := m.id
	m.c.Tasks.Start(TaskID, "checking tenant names…", m.c.Now())
	ctx := m.c.Backend.Context()
	if len(ctx.Roots) > 0 {
		m.c.Action(common.CommandLine(append([]string{"litefleet", "validate"}, ctx.Roots...)...))
	}
	if ctx.Bucket != "" {
		m.c.Action(common.CommandLine(append(append([]string{"litefleet", "ls"}, ctx.Flags(false)...), "-sort", "status")...))
	}
	b := m.c.Backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.CallTimeout)
		defer cancel()
		f, err := b.Validate(ctx)
		return DoneMsg{ID: id, Findings: f, Err: err}
	}
}

// Done shows the result of the check id; a stale one is dropped.
func (m *Model) Done(msg DoneMsg) {
	if msg.ID != m.id {
		return
	}
	m.c.Tasks.Done(TaskID)
	if msg.Err != nil {
		m.c.Error(fmt.Errorf("name check: %w", msg.Err))
		return
	}
	m.findings, m.offset, m.open = msg.Findings, 0, true
	m.lines, m.linesW = nil, -1
	if len(msg.Findings) == 0 {
		m.c.Info("name check: every tenant name is valid, no fallback, no collision")
	} else {
		m.c.Info("name check: %d problem(s)", len(msg.Findings))
	}
}

// Update scrolls the list; esc or v closes it.
func (m *Model) Update(msg tea.KeyPressMsg) {
	k := m.c.Keys
	switch {
	case key.Matches(msg, k.Back), key.Matches(msg, k.Validate), key.Matches(msg, k.Quit) && msg.String() == "q":
		m.open = false
	case key.Matches(msg, k.Down):
		m.offset++
	case key.Matches(msg, k.Up):
		m.offset--
	case key.Matches(msg, k.PageDown):
		m.offset += m.height
	case key.Matches(msg, k.PageUp):
		m.offset -= m.height
	case key.Matches(msg, k.Top):
		m.offset = 0
	case key.Matches(msg, k.Bottom):
		m.offset = 3 * len(m.findings) // View clamps it to the last page
	}
	m.offset = max(m.offset, 0)
}

var kinds = []struct{ kind, title string }{
	{"invalid", "Invalid names"},
	{"fallback", "Fallbacks to \"default\""},
	{"collision", "Collisions"},
}

// build lays the findings out as lines inner cells wide.
func (m *Model) build(inner int) {
	st := m.c.Styles.Box
	m.lines, m.linesW = nil, inner
	m.counts = map[string]int{}
	for _, f := range m.findings {
		m.counts[f.Kind]++
	}
	for _, k := range kinds {
		if m.counts[k.kind] == 0 {
			continue
		}
		m.lines = append(m.lines, st.Title.Render(fmt.Sprintf("%s (%d)", k.title, m.counts[k.kind])))
		for _, f := range m.findings {
			if f.Kind != k.kind {
				continue
			}
			style := st.Error
			if f.Kind == "fallback" {
				style = st.Warn
			}
			head := common.Fit(f.Side, 6, false) + common.Middle(untrusted.Printable(f.Tenant), inner-6)
			m.lines = append(m.lines, style.Render(common.Cut(head, inner)))
			if f.Path != "" {
				m.lines = append(m.lines, st.Dim.Render("      "+common.Middle(untrusted.Printable(f.Path), inner-6)))
			}
			if f.Note != "" {
				// Wrapped: the note says what to do, read whole.
				note := st.Value.Width(max(inner-6, 10)).Render(untrusted.Printable(f.Note))
				for _, l := range strings.Split(note, "\n") {
					m.lines = append(m.lines, "      "+l)
				}
			}
		}
	}
}

// View draws the overlay for a screen width×height.
func (m *Model) View(width, height int) string {
	st := m.c.Styles.Box
	w := common.BoxWidth(width, 110)
	inner := w - 4
	m.height = max(height-8, 3)
	if m.linesW != inner {
		m.build(inner)
	}
	lines, counts := m.lines, m.counts
	title := st.Title.Render("Name check")
	var summary string
	if len(m.findings) == 0 {
		summary = st.OK.Render("✓ every tenant name is valid: no fallback to \"default\", no collision")
	} else {
		summary = st.Warn.Render(fmt.Sprintf("%d problem(s): %d invalid, %d fallback, %d collision",
			len(m.findings), counts["invalid"], counts["fallback"], counts["collision"]))
	}
	m.offset = max(min(m.offset, len(lines)-m.height), 0)
	end := min(m.offset+m.height, len(lines))
	body := strings.Join(lines[m.offset:end], "\n")
	var b strings.Builder
	b.WriteString(title + "  " + summary + "\n")
	if body != "" {
		b.WriteString("\n" + body + "\n")
	}
	more := ""
	if end < len(lines) {
		more = fmt.Sprintf("%d more lines · j/k scroll · ", len(lines)-end)
	}
	b.WriteString("\n" + st.Dim.Render(more+"esc closes · rename the file or give it a -db-name in the config"))
	return st.Frame.Width(w).Render(b.String())
}
