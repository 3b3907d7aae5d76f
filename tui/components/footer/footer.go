// Package footer is the bottom of the screen: the status line (the last
// result or error, and the running tasks with a spinner, as gh-dash shows
// them) and the short key help.
package footer

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/tui/common"
)

// Height is the footer's height in lines.
const Height = 2

// Model draws the footer.
type Model struct {
	c        *common.Common
	width    int
	spin     spinner.Model
	spinning bool
	help     help.Model
}

// New returns a footer.
func New(c *common.Common) *Model {
	st := c.Styles.Footer
	h := help.New()
	h.Styles = help.Styles{
		ShortKey: st.Key, ShortDesc: st.Desc, ShortSeparator: st.Sep, Ellipsis: st.Sep,
		FullKey: st.Key, FullDesc: st.Desc, FullSeparator: st.Sep,
	}
	return &Model{
		c:    c,
		spin: spinner.New(spinner.WithSpinner(spinner.MiniDot), spinner.WithStyle(st.Spinner)),
		help: h,
	}
}

// SetWidth sets the footer's width.
func (m *Model) SetWidth(w int) {
	m.width = w
	m.help.SetWidth(w)
}

// Spin starts the spinner when a task runs and it is not turning yet.
func (m *Model) Spin() tea.Cmd {
	if m.spinning || m.c.Tasks.Len() == 0 {
		return nil
	}
	m.spinning = true
	return m.spin.Tick
}

// Update turns the spinner while tasks run.
func (m *Model) Update(msg tea.Msg) tea.Cmd {
	t, ok := msg.(spinner.TickMsg)
	if !ok || t.ID != m.spin.ID() {
		return nil
	}
	if m.c.Tasks.Len() == 0 {
		m.spinning = false
		return nil
	}
	var cmd tea.Cmd
	m.spin, cmd = m.spin.Update(msg)
	return cmd
}

// StatusLine is the running tasks, with a spinner, and the last result or
// error.
func (m *Model) StatusLine() string {
	st := m.c.Styles.Footer
	var parts []string
	tasks := m.c.Tasks.List()
	if len(tasks) > 0 {
		t := tasks[len(tasks)-1]
		text := t.Text
		if t.Progress >= 0 {
			text += fmt.Sprintf(" %d%%", int(t.Progress*100))
		}
		s := m.spin.View() + " " + st.Task.Render(text)
		if len(tasks) > 1 {
			s += st.Desc.Render(fmt.Sprintf(" (+%d)", len(tasks)-1))
		}
		parts = append(parts, s)
	}
	if s := m.c.Status; s.Text != "" {
		if s.Err {
			parts = append(parts, st.Error.Render("✗ "+s.Text))
		} else {
			parts = append(parts, st.Info.Render(s.Text))
		}
	}
	line := strings.Join(parts, st.Sep.Render(" · "))
	if m.c.Status.Err && lipgloss.Width(line) > m.width {
		// The whole error is in the log pane: say so where it is cut.
		const more = " (l: whole error)"
		line = common.Cut(line, max(m.width-len(more), 1)) + st.Desc.Render(more)
	}
	return common.PadLines(common.Cut(line, m.width), m.width, 1)
}

// HelpLine is the short help: the keys of what has the keyboard. `? help`
// and `q quit` always show, as in k9s and lazygit: on a narrow terminal
// the other keys give way, the last first, rather than those two being cut.
func (m *Model) HelpLine(bindings []key.Binding) string {
	var keep, rest []key.Binding
	for _, b := range bindings {
		if k := b.Help().Key; k == "?" || k == "q" {
			keep = append(keep, b)
		} else {
			rest = append(rest, b)
		}
	}
	// Measured unbounded: bubbles' help cuts at its width with "…",
	// which would hide the keys kept last.
	h := m.help
	h.SetWidth(0)
	line := func(n int) string { return h.ShortHelpView(append(rest[:n:n], keep...)) }
	n := len(rest)
	for n > 0 && lipgloss.Width(line(n)) > m.width {
		n--
	}
	return common.PadLines(common.Cut(line(n), m.width), m.width, 1)
}
