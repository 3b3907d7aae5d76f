// Package logpane is the log pane (`l`): the replication supervisor's log
// lines, the errors shown in the status line, and, for each action taken,
// the equivalent litefleet or litestream command line.
package logpane

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/tui/common"
)

// Model draws the tail of the log book.
type Model struct {
	c             *common.Common
	width, height int
}

// New returns a log pane reading c.Log.
func New(c *common.Common) *Model { return &Model{c: c} }

// SetSize sets the pane's size, its top rule included.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Height is the pane's height.
func (m *Model) Height() int { return m.height }

// Add keeps lines from the sink.
func (m *Model) Add(msg LinesMsg) {
	now := m.c.Now()
	if msg.Dropped > 0 {
		m.c.Log.Add(now, common.LogError, fmt.Sprintf("%d log lines dropped: too many at once", msg.Dropped))
	}
	for _, l := range msg.Lines {
		m.c.Log.Add(now, common.LogProcess, l)
	}
}

// View draws the pane: a rule with its title, then the newest lines.
func (m *Model) View() string {
	if m.height < 2 || m.width < 10 {
		return ""
	}
	st := m.c.Styles.Log
	head := fmt.Sprintf("── log · %d lines · l closes ", len(m.c.Log.Lines()))
	var b strings.Builder
	b.WriteString(st.Title.Render(common.Fit(head+strings.Repeat("─", max(m.width-len([]rune(head)), 0)), m.width, false)))

	// Newest at the bottom. Long lines wrap rather than being cut: a
	// command line is there to be copied whole.
	rows := m.height - 1
	var shown []string
	lines := m.c.Log.Lines()
	for i := len(lines) - 1; i >= 0 && len(shown) < rows; i-- {
		wrapped := strings.Split(lipgloss.Wrap(m.line(lines[i]), m.width, " /"), "\n")
		for j := len(wrapped) - 1; j >= 0 && len(shown) < rows; j-- {
			shown = append(shown, wrapped[j])
		}
	}
	for i := len(shown) - 1; i >= 0; i-- {
		b.WriteByte('\n')
		b.WriteString(shown[i])
	}
	return common.PadLines(b.String(), m.width, m.height)
}

func (m *Model) line(l common.LogLine) string {
	st := m.c.Styles.Log
	stamp := l.At.Format("2006/01/02 15:04:05 ")
	var s string
	switch l.Kind {
	case common.LogAction:
		s = st.Time.Render(stamp) + st.Action.Render("$ "+l.Text)
	case common.LogError:
		s = st.Time.Render(stamp) + st.Error.Render("error: "+l.Text)
	default:
		// Supervisor lines carry their own time, in the seed's shape.
		s = st.Process.Render(l.Text)
	}
	return s
}
