// Package header is the top of the screen: where the fleet lives, tenant
// counts by status, the age of the last refresh, and the read-only badge.
package header

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

// Height is the header's height in lines without replicating hosts; with
// them, a third line counts each host's tenants (see Model.Height).
const Height = 2

// Height is the header's height in lines for the last refresh.
func (m *Model) Height() int {
	if len(m.hosts()) > 0 {
		return Height + 1
	}
	return Height
}

// Model draws the header.
type Model struct {
	c        *common.Common
	width    int
	view     *fleet.View
	interval time.Duration
}

// New returns a header refreshed every interval (0: never by itself).
func New(c *common.Common, interval time.Duration) *Model {
	return &Model{c: c, interval: interval}
}

// SetWidth sets the header's width.
func (m *Model) SetWidth(w int) { m.width = w }

// SetView records the last refresh.
func (m *Model) SetView(v *fleet.View) { m.view = v }

// View draws the header lines.
func (m *Model) View() string {
	out := m.contextLine() + "\n" + m.countsLine()
	if m.Height() > Height {
		out += "\n" + m.hostsLine()
	}
	return out
}

// hosts are the hosts the header counts: those that report tenants of
// this prefix, and silent or unreadable ones, which need a look. A live
// host with no tenant (the UI's own after its last x, a replicator of
// another prefix) says nothing about this fleet.
func (m *Model) hosts() []hostview.HostSummary {
	if m.view == nil {
		return nil
	}
	var out []hostview.HostSummary
	for _, h := range m.view.Hosts {
		if h.Tenants > 0 || h.Silent || h.Error != "" {
			out = append(out, h)
		}
	}
	return out
}

// hostsLine: each replicating host with the number of tenants it reports,
// a silent one in the alarm colour with its heartbeat's age.
func (m *Model) hostsLine() string {
	st := m.c.Styles
	hosts := m.hosts()
	hostsWord := "hosts"
	if len(hosts) == 1 {
		hostsWord = "host"
	}
	parts := []string{st.Header.Count.Render(fmt.Sprintf("%d %s", len(hosts), hostsWord))}
	for _, h := range hosts {
		text := fmt.Sprintf("%s %d", untrusted.Printable(h.Name), h.Tenants)
		switch {
		case h.Silent:
			parts = append(parts, st.StatusStyle(fleet.StatusHostSilent).Render(text+" silent "+common.Duration(h.Age)))
		case h.Error != "":
			parts = append(parts, st.Header.Stale.Render(text+" (record unreadable)"))
		default:
			parts = append(parts, st.Header.Label.Render(text))
		}
	}
	line := strings.Join(parts, st.Header.Dim.Render(" · "))
	line = common.Cut(line, m.width)
	return line + strings.Repeat(" ", max(m.width-lipgloss.Width(line), 0))
}

// contextLine: litefleet, the bucket and prefix, endpoint, region or
// profile, the read-only badge; on the right the refresh age and interval.
// The refresh age always shows: when the line is too narrow, the region,
// then the endpoint give way, then the age takes a shorter form, then the
// bucket URL is shortened in its middle.
func (m *Model) contextLine() string {
	st := m.c.Styles.Header
	ctx := m.c.Backend.Context()
	sep := st.Dim.Render(" · ")

	url := st.Dim.Render("S3 not configured (local only)")
	urlText := ""
	if ctx.Bucket != "" {
		urlText = "s3://" + untrusted.Printable(ctx.Bucket) + "/" + untrusted.Printable(strings.Trim(ctx.Prefix, "/"))
		url = st.Value.Render(urlText)
	}
	var endpoint, where string
	if ctx.Endpoint != "" {
		endpoint = st.Label.Render("at ") + st.Value.Render(untrusted.Printable(ctx.Endpoint))
	}
	switch {
	case ctx.Profile != "":
		where = st.Label.Render("profile ") + st.Value.Render(untrusted.Printable(ctx.Profile))
	case ctx.Region != "":
		where = st.Label.Render("region ") + st.Value.Render(untrusted.Printable(ctx.Region))
	}
	var badge string
	if m.c.ReadOnly {
		badge = st.ReadOnly.Render(" READ-ONLY ")
	}
	left := func() string {
		parts := []string{st.Title.Render("litefleet"), url}
		for _, p := range []string{endpoint, where, badge} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		return strings.Join(parts, sep)
	}

	age, every := "loading…", "auto-refresh off"
	if m.view != nil {
		if d := m.c.Now().Sub(m.view.At); d < time.Second {
			age = "just now"
		} else {
			age = common.Duration(d) + " ago"
		}
	}
	if m.interval > 0 {
		every = "every " + m.interval.String()
	}
	right := "refreshed " + age + " · " + every
	if m.view == nil {
		right = age + " · " + every
	}
	fits := func() bool { return lipgloss.Width(left())+1+lipgloss.Width(right) <= m.width }
	// shorten gives the URL what the rest leaves, down to min cells.
	shorten := func(min int) {
		if urlText == "" || fits() {
			return
		}
		room := m.width - 1 - lipgloss.Width(right) - (lipgloss.Width(left()) - lipgloss.Width(url))
		url = st.Value.Render(common.Middle(urlText, max(room, min)))
	}
	if !fits() {
		where = ""
	}
	if !fits() {
		endpoint = ""
	}
	if !fits() {
		right = "refreshed " + age // the age is what the operator checks
		if m.view == nil {
			right = age
		}
	}
	shorten(24)
	if !fits() {
		right = age
	}
	shorten(8)
	return common.Spread(left(), st.Dim.Render(right), m.width)
}

// countsLine: tenants by status, most alarming first, and what is stale.
func (m *Model) countsLine() string {
	st := m.c.Styles
	if m.view == nil {
		return ""
	}
	v := m.view
	parts := []string{st.Header.Count.Render(fmt.Sprintf("%d tenants", len(v.Rows)))}
	for _, s := range fleet.Statuses {
		if n := v.Counts[s]; n > 0 {
			parts = append(parts, st.StatusStyle(s).Render(fmt.Sprintf("%d %s", n, s)))
		}
	}
	line := strings.Join(parts, st.Header.Dim.Render(" · "))
	var warn string
	switch {
	case v.LocalErr != "":
		warn = "local: " + v.LocalErr
	case v.RemoteErr != "" && v.RemoteAt.IsZero() && m.c.Backend.Context().Bucket != "":
		warn = "S3 unknown: " + v.RemoteErr
	case v.Stale() && m.c.Backend.Context().Bucket != "":
		warn = "S3 side from " + common.Duration(v.RemoteAge()) + " ago"
		if v.FromCache && v.RemoteErr == "" {
			warn += " (cache)"
		}
		if v.RemoteErr != "" {
			warn += ": " + v.RemoteErr
		}
	}
	if warn != "" {
		line += "  " + st.Header.Stale.Render("⚠ "+untrusted.Printable(warn))
	}
	return common.Cut(line, m.width) + strings.Repeat(" ", max(m.width-lipgloss.Width(common.Cut(line, m.width)), 0))
}
