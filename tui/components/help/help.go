// Package help is the full help overlay (`?`): every key, and what the
// statuses and columns mean.
package help

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/common"
)

// Model is the help overlay.
type Model struct {
	c             *common.Common
	width, height int
	offset        int // the first line shown when the overlay is taller than the screen
}

// New returns the help overlay.
func New(c *common.Common) *Model { return &Model{c: c} }

// statusHelp says what each status means, in the table's words.
var statusHelp = map[fleet.Status]string{
	fleet.StatusError:          "something is wrong: enter shows the note",
	fleet.StatusInvalid:        "bad name, or two databases on one prefix",
	fleet.StatusUnknown:        "S3 could not be asked (no bucket, refused): the note says why",
	fleet.StatusFailed:         "its host cannot open, write or lock it: enter shows why",
	fleet.StatusDiverged:       "its host found local and replica histories differ: nothing uploads",
	fleet.StatusHostSilent:     "the host replicating it stopped beating 40s ago or more",
	fleet.StatusLeaseLost:      "its host cannot reach S3 to prove its claim: uploads wait",
	fleet.StatusSyncFailing:    "its host's last sync failed: S3 lacks its latest changes",
	fleet.StatusMissing:        "its host's file is gone",
	fleet.StatusStarting:       "its host is checking and opening it",
	fleet.StatusLeased:         "another host writes the replica",
	fleet.StatusLagging:        "a local change waits too long for S3",
	fleet.StatusNotReplicating: "local changes and no replicator",
	fleet.StatusRemoteOnly:     "in S3 only: restorable",
	fleet.StatusInSync:         "the replica holds every local change",
}

// Open shows the overlay from its top.
func (m *Model) Open() { m.offset = 0 }

// SetSize sets the region the overlay is drawn over.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.offset = m.clamp(m.offset)
}

// Update scrolls the overlay: a short terminal shows it a part at a time,
// never dropping a section.
func (m *Model) Update(msg tea.KeyPressMsg) {
	k := m.c.Keys
	_, rows := m.window()
	switch {
	case key.Matches(msg, k.Down):
		m.offset++
	case key.Matches(msg, k.Up):
		m.offset--
	case key.Matches(msg, k.PageDown):
		m.offset += rows
	case key.Matches(msg, k.PageUp):
		m.offset -= rows
	case key.Matches(msg, k.Top):
		m.offset = 0
	case key.Matches(msg, k.Bottom):
		m.offset = 1 << 30
	}
	m.offset = m.clamp(m.offset)
}

// Scroll moves the overlay by n lines (the mouse wheel).
func (m *Model) Scroll(n int) { m.offset = m.clamp(m.offset + n) }

// window is the overlay's lines and how many of them show at once: all,
// or one fewer than the screen allows, the last line saying where the
// window is.
func (m *Model) window() ([]string, int) {
	inner := common.BoxWidth(m.width, 100) - 4
	lines := strings.Split(m.content(inner), "\n")
	rows := max(m.height-2, 3) // the frame takes two lines
	if len(lines) > rows {
		rows--
	}
	return lines, rows
}

func (m *Model) clamp(offset int) int {
	lines, rows := m.window()
	return max(min(offset, len(lines)-rows), 0)
}

// View draws the overlay box over the region set by SetSize. Every
// section is there; when they do not fit, the box shows a window of them
// that j/k and the pages scroll, and says where it is.
func (m *Model) View() string {
	st := m.c.Styles
	inner := common.BoxWidth(m.width, 100) - 4
	lines, rows := m.window()
	if len(lines) > rows {
		off := m.clamp(m.offset)
		end := off + rows
		more := fmt.Sprintf("lines %d-%d of %d · j/k, pgdn/pgup scroll · esc or ? closes", off+1, end, len(lines))
		lines = append(lines[off:end:end], st.Box.Dim.Render(common.Cut(more, inner)))
	}
	body := strings.Join(lines, "\n")
	return st.Box.Frame.Width(min(inner+4, lipgloss.Width(body)+4)).Render(body)
}

// content is every section of the overlay, inner cells wide: the keys,
// the dialogs' keys and commands, the statuses and the legend. Long lines
// wrap under themselves, never into the next one.
func (m *Model) content(inner int) string {
	st := m.c.Styles
	k := m.c.Keys
	h := help.New()
	h.Styles = help.Styles{
		FullKey: st.Box.Key, FullDesc: st.Box.Value, FullSeparator: st.Box.Dim,
		ShortKey: st.Box.Key, ShortDesc: st.Box.Value, ShortSeparator: st.Box.Dim, Ellipsis: st.Box.Dim,
	}
	h.FullSeparator = "   "
	h.SetWidth(inner)

	keys := st.Box.Title.Render("Keys")
	if m.c.ReadOnly {
		keys += st.Box.Warn.Render("  read-only: replicate, stop and restore are off")
	}
	// The widest arrangement that fits: bubbles' help would cut the
	// columns that do not fit with "…" and drop their keys, so each is
	// measured unbounded first. Narrower, the last column goes under the
	// second; narrower still, the third under the first.
	cols := k.FullHelp()
	cat := func(a, b []key.Binding) []key.Binding { return append(append([]key.Binding(nil), a...), b...) }
	arrangements := [][][]key.Binding{cols}
	if len(cols) == 4 {
		arrangements = append(arrangements,
			[][]key.Binding{cols[0], cat(cols[1], cols[3]), cols[2]},
			[][]key.Binding{cat(cols[0], cols[2]), cat(cols[1], cols[3])})
	}
	measure := h
	measure.SetWidth(0)
	full := h.FullHelpView(arrangements[len(arrangements)-1])
	for _, a := range arrangements {
		if lipgloss.Width(measure.FullHelpView(a)) <= inner {
			full = h.FullHelpView(a)
			break
		}
	}
	keys += "\n\n" + full
	wrap := func(s string) string { return st.Box.Dim.Width(inner).Render(s) }
	dialogs := st.Box.Title.Render("In dialogs") + "  " + h.ShortHelpView([]key.Binding{k.Confirm, k.Cancel, k.NextField}) + "\n" +
		wrap("commands: :bucket NAME  :prefix P  :sort [-]KEY  :filter TEXT  :host NAME  :refresh  :q")
	// The status names' column is as wide as the longest name, so that a
	// name and its meaning never run together.
	nw := 0
	for _, s := range fleet.Statuses {
		nw = max(nw, len(s))
	}
	nw += 2
	var sb strings.Builder
	sb.WriteString(st.Box.Title.Render("Statuses"))
	for _, s := range fleet.Statuses {
		sb.WriteString("\n")
		sb.WriteString(lipgloss.JoinHorizontal(lipgloss.Top,
			st.StatusStyle(s).Render(common.Fit(string(s), nw, false)),
			st.Box.Dim.Width(max(inner-nw, 10)).Render(statusHelp[s])))
	}
	legend := strings.Join([]string{
		wrap("▶ replicating in this process · ● selected · LAG: local TXID − S3 TXID, and the oldest wait"),
		wrap("SIZE: the database file (S3 bytes when nothing is local), what sort by size orders"),
		wrap("HOST: the replicator whose host record reports the tenant; the header counts them"),
		wrap("TXIDs: decimal, with the 16-hex LTX form beside where there is room"),
		wrap("sort by column: N name · L lag · Z size · C changed · T status; again, or S: reversed; a click on a title sorts too"),
		wrap("narrow terminals drop columns, never the sorted one: enter shows everything · esc or ? closes"),
	}, "\n")
	return strings.Join([]string{keys, dialogs, sb.String(), st.Box.Title.Render("Legend") + "\n" + legend}, "\n\n")
}
