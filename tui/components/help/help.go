// Package help is the full help overlay (`?`): every key, and what the
// statuses and columns mean.
package help

import (
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/common"
)

// Model is the help overlay.
type Model struct {
	c *common.Common
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

// View draws the overlay box for a screen width×height: sections that do
// not fit a short terminal are left out, the keys first of all kept.
func (m *Model) View(width, height int) string {
	st := m.c.Styles
	k := m.c.Keys
	h := help.New()
	h.Styles = help.Styles{
		FullKey: st.Box.Key, FullDesc: st.Box.Value, FullSeparator: st.Box.Dim,
		ShortKey: st.Box.Key, ShortDesc: st.Box.Value, ShortSeparator: st.Box.Dim, Ellipsis: st.Box.Dim,
	}
	h.FullSeparator = "   "
	inner := common.BoxWidth(width, 100) - 4
	h.SetWidth(inner)

	keys := st.Box.Title.Render("Keys")
	if m.c.ReadOnly {
		keys += st.Box.Warn.Render("  read-only: replicate, stop and restore are off")
	}
	cols := k.FullHelp()
	full := h.FullHelpView(cols)
	if lipgloss.Width(full) > inner {
		// Narrow: the last column goes under the second.
		last := len(cols) - 1
		cols = [][]key.Binding{cols[0], append(append([]key.Binding(nil), cols[1]...), cols[last]...), cols[2]}
		full = h.FullHelpView(cols)
	}
	keys += "\n\n" + full
	dialogs := st.Box.Title.Render("In dialogs") + "  " + h.ShortHelpView([]key.Binding{k.Confirm, k.Cancel, k.NextField}) + "\n" +
		st.Box.Dim.Render("commands: :bucket NAME  :prefix P  :sort KEY  :filter TEXT  :host NAME  :refresh  :q")
	var sb strings.Builder
	sb.WriteString(st.Box.Title.Render("Statuses"))
	for _, s := range fleet.Statuses {
		sb.WriteString("\n")
		sb.WriteString(st.StatusStyle(s).Render(common.Fit(string(s), 17, false)))
		sb.WriteString(st.Box.Dim.Render(statusHelp[s]))
	}
	legend := strings.Join([]string{
		st.Box.Dim.Render("▶ replicating in this process · ● selected · LAG: local TXID − S3 TXID, and the oldest wait"),
		st.Box.Dim.Render("SIZE: the database file (S3 bytes when nothing is local), what s sorts by"),
		st.Box.Dim.Render("HOST: the replicator whose host record reports the tenant; the header counts them"),
		st.Box.Dim.Render("TXIDs: decimal, with the 16-hex LTX form beside where there is room"),
		st.Box.Dim.Render("narrow terminals drop columns: enter shows everything · esc or ? closes"),
	}, "\n")

	body := keys
	for _, sec := range []string{dialogs, sb.String(), legend} {
		if lipgloss.Height(body)+1+lipgloss.Height(sec)+2 > height {
			continue
		}
		body += "\n\n" + sec
	}
	return st.Box.Frame.Width(min(inner+4, lipgloss.Width(body)+4)).Render(body)
}
