// Package logpane is the log pane (`l`): the replication supervisor's log
// lines, the errors shown in the status line, and, for each action taken,
// the equivalent litefleet or litestream command line.
package logpane

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/litefleet/litefleet/tui/common"
)

// Model draws the log book, one entry per screen line: a command line is
// never broken over two lines, where copying it would break it. A line
// wider than the pane is clipped with a "…" marker; ←/→ scroll sideways
// and y copies the whole entry to the clipboard.
type Model struct {
	c             *common.Common
	width, height int

	focused bool
	// cursor is the entry under the cursor, by its number in the log
	// book (LogBook.Added counts them): the book drops old entries, and
	// the cursor must stay on its own.
	cursor int
	follow bool // the cursor stays on the newest entry as entries come
	offset int  // the first entry shown, by number
	xoff   int  // cells scrolled sideways

	// Clip is where y copies to; tests replace it.
	Clip Clipboard
}

// New returns a log pane reading c.Log, following its newest entries.
func New(c *common.Common) *Model { return &Model{c: c, follow: true, Clip: DefaultClipboard()} }

// SetSize sets the pane's size, its top rule included.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.clamp()
}

// Height is the pane's height.
func (m *Model) Height() int { return m.height }

// Focused reports whether the pane has the keyboard.
func (m *Model) Focused() bool { return m.focused }

// Focus gives the pane the keyboard (or takes it back).
func (m *Model) Focus(on bool) { m.focused = on }

// Open readies the pane as it opens: following the newest entry, as
// `tail -f` does, and not scrolled sideways, where an earlier session's
// offset would leave short lines showing nothing but "…".
func (m *Model) Open() {
	m.focused, m.follow, m.xoff = false, true, 0
	m.clamp()
}

// Following reports whether the pane keeps to the newest entry.
func (m *Model) Following() bool { return m.follow }

// Scroll moves the pane by n entries (the mouse wheel): up stops
// following, down to the newest follows again.
func (m *Model) Scroll(n int) {
	m.clamp()
	last := m.c.Log.Added - 1
	m.cursor = max(min(m.cursor+n, last), m.first())
	if !m.focused {
		// Unfocused, the window moves, not a cursor the operator cannot see.
		m.offset = max(min(m.offset+n, last-m.rows()+1), m.first())
		m.cursor = min(m.offset+m.rows()-1, last)
	}
	m.follow = m.cursor == last
	m.clamp()
}

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

// first is the number of the oldest entry kept.
func (m *Model) first() int { return m.c.Log.Added - len(m.c.Log.Lines()) }

// rows is the number of entries on screen.
func (m *Model) rows() int { return max(m.height-1, 1) }

// clamp keeps the cursor on a kept entry and on screen; following, on the
// newest one.
func (m *Model) clamp() {
	first, last := m.first(), m.c.Log.Added-1
	if m.follow || m.cursor > last {
		m.cursor = last
	}
	m.cursor = max(m.cursor, first)
	rows := m.rows()
	if m.follow {
		m.offset = last - rows + 1
	}
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+rows {
		m.offset = m.cursor - rows + 1
	}
	m.offset = max(min(m.offset, last-rows+1), first)
}

// Update handles a key while the pane has the keyboard; it reports
// whether the key was the pane's, and may return a command (the copy).
func (m *Model) Update(msg tea.KeyPressMsg) (bool, tea.Cmd) {
	k := m.c.Keys
	last := m.c.Log.Added - 1
	m.clamp()
	switch {
	case key.Matches(msg, k.Up):
		m.cursor--
	case key.Matches(msg, k.Down):
		m.cursor++
	case key.Matches(msg, k.PageUp):
		m.cursor -= m.rows()
	case key.Matches(msg, k.PageDown):
		m.cursor += m.rows()
	case key.Matches(msg, k.Top):
		m.cursor = m.first()
	case key.Matches(msg, k.Bottom):
		m.cursor = last
	case key.Matches(msg, k.Left):
		m.xoff = max(m.xoff-m.width/2, 0)
		return true, nil
	case key.Matches(msg, k.Right):
		m.xoff = min(m.xoff+m.width/2, max(m.widest()-m.width/2, 0))
		return true, nil
	case key.Matches(msg, k.Copy):
		return true, m.copy()
	case key.Matches(msg, k.Back), key.Matches(msg, k.Focus):
		m.focused = false
		return true, nil
	default:
		return false, nil
	}
	m.cursor = max(min(m.cursor, last), m.first())
	m.follow = m.cursor == last
	m.clamp()
	return true, nil
}

// Entry is the text of the entry under the cursor, whole: what y copies.
func (m *Model) Entry() (common.LogLine, bool) {
	m.clamp()
	lines := m.c.Log.Lines()
	i := m.cursor - m.first()
	if i < 0 || i >= len(lines) {
		return common.LogLine{}, false
	}
	return lines[i], true
}

// copy puts the entry under the cursor on the clipboard (OSC 52): for a
// command line, the command alone, ready to paste into a shell.
func (m *Model) copy() tea.Cmd {
	l, ok := m.Entry()
	if !ok {
		return nil
	}
	return m.Clip.Copy(l.Text)
}

// widest is the width of the widest entry on screen.
func (m *Model) widest() int {
	w := 0
	lines := m.c.Log.Lines()
	start := max(m.offset-m.first(), 0)
	for _, l := range lines[start:min(start+m.rows(), len(lines))] {
		w = max(w, ansi.StringWidth(prefix(l)+l.Text))
	}
	return w
}

// prefix is what an entry's line starts with: the time and the kind.
// Supervisor lines carry their own time, in the seed's shape.
func prefix(l common.LogLine) string {
	stamp := l.At.Format("2006/01/02 15:04:05 ")
	switch l.Kind {
	case common.LogAction:
		return stamp + "$ "
	case common.LogError:
		return stamp + "error: "
	case common.LogInfo:
		return stamp
	}
	return ""
}

// View draws the pane: a rule with its title, then one line per entry.
func (m *Model) View() string {
	if m.height < 2 || m.width < 10 {
		return ""
	}
	m.clamp()
	st := m.c.Styles.Log
	lines := m.c.Log.Lines()
	var head string
	if m.focused {
		head = fmt.Sprintf("── log · %d/%d · j/k ←/→ move · y copy · tab back ", m.cursor-m.first()+1, len(lines))
	} else {
		head = fmt.Sprintf("── log · %d lines · tab focus · l closes ", len(lines))
	}
	if !m.follow {
		head += "· paused: G follows "
	}
	var b strings.Builder
	b.WriteString(st.Title.Render(common.Fit(head+strings.Repeat("─", max(m.width-ansi.StringWidth(head), 0)), m.width, false)))
	first := m.first()
	// Never scrolled past what the lines on screen hold: new lines may be
	// shorter than the one the operator scrolled along.
	xoff := min(m.xoff, max(m.widest()-m.width/2, 0))
	for n := m.offset; n < m.offset+m.rows() && n-first < len(lines); n++ {
		if n < first {
			continue
		}
		b.WriteByte('\n')
		b.WriteString(m.line(lines[n-first], m.focused && n == m.cursor, xoff))
	}
	return common.PadLines(b.String(), m.width, m.height)
}

// line draws one entry on one line: scrolled by xoff cells, clipped at the
// pane's edge, with "…" where text goes on beyond either side.
func (m *Model) line(l common.LogLine, cursor bool, xoff int) string {
	st := m.c.Styles.Log
	pre, text := prefix(l), l.Text
	full := pre + text
	fw := ansi.StringWidth(full)
	x := xoff
	cut := full
	switch {
	case x >= fw-1:
		// Nothing of this entry lies this far right: blank, as less -S
		// draws it, not a row of "…".
		cut, x = "", 0
	case x > 0:
		cut = "…" + ansi.TruncateLeft(full, x+1, "")
	}
	if ansi.StringWidth(cut) > m.width {
		cut = ansi.Truncate(cut, m.width, "…")
	}
	var style lipgloss.Style
	switch l.Kind {
	case common.LogAction:
		style = st.Action
	case common.LogError:
		style = st.Error
	case common.LogInfo:
		style = st.Time
	default:
		style = st.Process
	}
	if cursor {
		return st.Cursor.Render(common.Fit(cut, m.width, false))
	}
	// The time is dim when it shows; the rest in the entry's colour.
	if x == 0 && l.Kind != common.LogProcess && l.Kind != common.LogInfo {
		stamp := len("2006/01/02 15:04:05 ")
		if len(cut) > stamp && strings.HasPrefix(full, cut[:stamp]) {
			return st.Time.Render(cut[:stamp]) + style.Render(cut[stamp:])
		}
	}
	return style.Render(cut)
}
