// Package fleettable is the fleet table: one row per tenant, its local
// side and its S3 side side by side, coloured by status. Only the rows on
// screen are drawn, so ten thousand tenants scroll as fast as ten.
package fleettable

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/untrusted"
)

// headerLines are the lines above the rows: the info or filter line, the
// group titles and the column titles.
const headerLines = 3

// Model is the fleet table.
type Model struct {
	c             *common.Common
	width, height int

	at      time.Time   // when the rows were judged: ages are relative to it
	rows    []fleet.Row // sorted
	keys    []string    // identity of each row, for cursor and selection
	search  []string    // lower-case text the filter matches, per row
	visible []int       // indices into rows that pass the filter
	order   Order
	filter  string
	host    string // :host NAME: only the tenants that host reports
	layout  layout

	filtering bool // the filter input has the keyboard
	input     textinput.Model

	cursor, offset int // into visible
	selected       map[string]bool
}

// New returns an empty table sorted by name.
func New(c *common.Common) *Model {
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "tenant or host"
	st := c.Styles.Input
	in.SetStyles(textinput.Styles{
		Focused: textinput.StyleState{Prompt: st.Prompt, Text: st.Text, Placeholder: st.Placeholder},
		Blurred: textinput.StyleState{Prompt: st.Prompt, Text: st.Text, Placeholder: st.Placeholder},
	})
	return &Model{c: c, input: in, order: Order{Key: fleet.SortName}, selected: map[string]bool{}}
}

// SetSize sets the table's size, header lines included.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.input.SetWidth(max(w-30, 10))
	m.layout = computeLayout(w, m.rows, m.order.Key)
	m.clamp()
}

func rowKey(r *fleet.Row) string {
	if r.Local != nil {
		return r.Tenant + "\x00" + r.Local.Path
	}
	return r.Tenant + "\x00"
}

// Index is what the table derives from a refresh's rows, in their order:
// each row's identity and the lower-case text the filter matches. A
// refresh builds it in its tea.Cmd: for ten thousand rows it is thousands
// of allocations the UI goroutine should not make.
type Index struct {
	keys   []string
	search []string
}

// NewIndex indexes rows as they are ordered.
func NewIndex(rows []fleet.Row) *Index {
	x := &Index{keys: make([]string, len(rows)), search: make([]string, len(rows))}
	for i := range rows {
		r := &rows[i]
		x.keys[i] = rowKey(r)
		// What the row shows: the tenant's name, its file's name and its
		// host. The whole path would match every tenant on "/d" or "a".
		s := strings.ToLower(r.Display())
		if r.Local != nil {
			s += "\x00" + strings.ToLower(untrusted.Printable(filepath.Base(r.Local.Path)))
		}
		if r.Host != "" {
			s += "\x00" + strings.ToLower(untrusted.Printable(r.Host))
		}
		x.search[i] = s
	}
	return x
}

// SetView shows a new refresh, keeping the cursor on the same tenant, the
// selection, the sort and the filter. sortedBy says the rows are already
// in that order (sorted off the UI goroutine), and idx, when not nil, is
// their index; when the order asked for has changed since, the rows are
// sorted and indexed again here.
func (m *Model) SetView(v *fleet.View, sortedBy Order, idx *Index) {
	cur := m.currentKey()
	m.at = v.At
	m.rows = append(m.rows[:0:0], v.Rows...)
	switch {
	case sortedBy != m.order:
		m.resort(cur)
	case idx == nil || len(idx.keys) != len(m.rows):
		m.index(cur)
	default:
		m.keys, m.search = idx.keys, idx.search
		m.refilter(cur)
	}
	m.layout = computeLayout(m.width, m.rows, m.order.Key)
	// Forget selected tenants that are gone.
	present := make(map[string]bool, len(m.keys))
	for _, k := range m.keys {
		present[k] = true
	}
	for k := range m.selected {
		if !present[k] {
			delete(m.selected, k)
		}
	}
}

func (m *Model) currentKey() string {
	if m.cursor < len(m.visible) {
		return m.keys[m.visible[m.cursor]]
	}
	return ""
}

// resort sorts the rows and reapplies the filter, putting the cursor back
// on key when it is still visible.
func (m *Model) resort(key string) {
	m.order.Apply(m.rows)
	m.index(key)
}

// index computes the rows' keys and search text, then filters.
func (m *Model) index(key string) {
	x := NewIndex(m.rows)
	m.keys, m.search = x.keys, x.search
	m.refilter(key)
}

// refilter recomputes the visible rows. A filter matches the tenant name,
// its file's name or its host, case-insensitively.
func (m *Model) refilter(key string) {
	prevCursor := m.cursor
	m.visible = m.visible[:0]
	f := strings.ToLower(m.filter)
	for i := range m.rows {
		if (f == "" || strings.Contains(m.search[i], f)) && (m.host == "" || m.rows[i].Host == m.host) {
			m.visible = append(m.visible, i)
		}
	}
	m.cursor = prevCursor
	if key != "" {
		for vi, ri := range m.visible {
			if m.keys[ri] == key {
				m.cursor = vi
				break
			}
		}
	}
	m.clamp()
}

// Needed is the height that shows every row, filter or not: the log pane
// takes the rest, and must not jump as a filter is typed.
func (m *Model) Needed() int { return headerLines + max(len(m.rows), 1) }

// rowsHeight is the number of rows on screen.
func (m *Model) rowsHeight() int { return max(m.height-headerLines, 1) }

func (m *Model) clamp() {
	m.cursor = max(min(m.cursor, len(m.visible)-1), 0)
	h := m.rowsHeight()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+h {
		m.offset = m.cursor - h + 1
	}
	m.offset = max(min(m.offset, len(m.visible)-h), 0)
}

// Order is a row order: a sort key, and whether it is reversed.
type Order struct {
	Key     fleet.SortKey
	Reverse bool
}

// Apply sorts rows in the order: fleet.Sort's, or its reverse.
func (o Order) Apply(rows []fleet.Row) {
	fleet.Sort(rows, o.Key)
	if o.Reverse {
		slices.Reverse(rows)
	}
}

// String is the order as :sort takes it: "lag", or "-lag" reversed.
func (o Order) String() string {
	if o.Reverse {
		return "-" + string(o.Key)
	}
	return string(o.Key)
}

// ParseOrder reads :sort's argument: a key, reversed with a leading "-".
func ParseOrder(s string) (Order, error) {
	rest, rev := strings.CutPrefix(strings.TrimSpace(s), "-")
	k, err := fleet.ParseSortKey(rest)
	if err != nil {
		return Order{}, err
	}
	return Order{Key: k, Reverse: rev}, nil
}

// CycleSort moves to the next key: name, lag, size, last change, status,
// in each key's own direction.
func (m *Model) CycleSort() Order {
	i := 0
	for j, k := range fleet.SortKeys {
		if k == m.order.Key {
			i = j
		}
	}
	m.SetSort(Order{Key: fleet.SortKeys[(i+1)%len(fleet.SortKeys)]})
	return m.order
}

// SortBy orders the rows by k; asked for the key they are already sorted
// by, it reverses the order, as k9s does.
func (m *Model) SortBy(k fleet.SortKey) Order {
	o := Order{Key: k}
	if m.order.Key == k {
		o.Reverse = !m.order.Reverse
	}
	m.SetSort(o)
	return m.order
}

// SetSort orders the rows by o. The sorted column always shows: the
// layout keeps it, dropping others first.
func (m *Model) SetSort(o Order) {
	m.order = o
	m.layout = computeLayout(m.width, m.rows, o.Key)
	m.resort(m.currentKey())
}

// Sort is the current order.
func (m *Model) Sort() Order { return m.order }

// SetFilter shows only the rows matching f.
func (m *Model) SetFilter(f string) {
	m.filter = f
	m.input.SetValue(f)
	m.refilter(m.currentKey())
}

// Filter is the current filter.
func (m *Model) Filter() string { return m.filter }

// SetHost shows only the tenants whose host record is host's (:host NAME);
// "" shows every tenant again.
func (m *Model) SetHost(host string) {
	m.host = host
	m.refilter(m.currentKey())
}

// Host is the host the table is limited to, or "".
func (m *Model) Host() string { return m.host }

// Filtering reports that the filter input has the keyboard.
func (m *Model) Filtering() bool { return m.filtering }

// Current is the row under the cursor, or nil.
func (m *Model) Current() *fleet.Row {
	if m.cursor < len(m.visible) {
		return &m.rows[m.visible[m.cursor]]
	}
	return nil
}

// Targets are the rows an action applies to: the selected ones still
// visible, or else the row under the cursor.
func (m *Model) Targets() []fleet.Row {
	var out []fleet.Row
	for _, ri := range m.visible {
		if m.selected[m.keys[ri]] {
			out = append(out, m.rows[ri])
		}
	}
	if len(out) == 0 {
		if r := m.Current(); r != nil {
			out = append(out, *r)
		}
	}
	return out
}

// Find returns the row of the last refresh that is r's tenant (and local
// file): the detail page and the restore dialog show that one, so that
// they never contradict the table.
func (m *Model) Find(r fleet.Row) (fleet.Row, bool) {
	k := rowKey(&r)
	for i, x := range m.keys {
		if x == k {
			return m.rows[i], true
		}
	}
	return fleet.Row{}, false
}

// ClearSelection unselects every row.
func (m *Model) ClearSelection() { clear(m.selected) }

// SelectedCount is the number of selected rows.
func (m *Model) SelectedCount() int { return len(m.selected) }

// Rows is every row, sorted; Visible the number passing the filter.
func (m *Model) Rows() []fleet.Row { return m.rows }

// Visible is the number of rows passing the filter.
func (m *Model) Visible() int { return len(m.visible) }

// MarkReplicating shows a replication started or stopped here at once,
// before the next refresh confirms it.
func (m *Model) MarkReplicating(r fleet.Row, on bool) {
	k := rowKey(&r)
	for i := range m.rows {
		if m.keys[i] == k {
			m.rows[i].Replicating = on
		}
	}
}

// Update handles a key meant for the table: moving, selecting, and the
// filter input while it has the keyboard. It reports whether it used it.
func (m *Model) Update(msg tea.KeyPressMsg) (bool, tea.Cmd) {
	k := m.c.Keys
	if m.filtering {
		switch {
		case msg.String() == "enter":
			m.filtering = false
			m.input.Blur()
			return true, nil
		case msg.String() == "esc":
			m.filtering = false
			m.input.Blur()
			m.SetFilter("")
			return true, nil
		case msg.String() == "up" || msg.String() == "down":
			// Arrows still move while typing, as in k9s.
		default:
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			if v := m.input.Value(); v != m.filter {
				m.filter = v
				m.refilter(m.currentKey())
			}
			return true, cmd
		}
	}
	h := m.rowsHeight()
	switch {
	case key.Matches(msg, k.Up):
		m.cursor--
	case key.Matches(msg, k.Down):
		m.cursor++
	case key.Matches(msg, k.PageUp):
		m.cursor -= h
	case key.Matches(msg, k.PageDown):
		m.cursor += h
	case key.Matches(msg, k.Top):
		m.cursor = 0
	case key.Matches(msg, k.Bottom):
		m.cursor = len(m.visible) - 1
	case key.Matches(msg, k.Select):
		if cur := m.currentKey(); cur != "" {
			if m.selected[cur] {
				delete(m.selected, cur)
			} else {
				m.selected[cur] = true
			}
			m.cursor++
		}
	case key.Matches(msg, k.Filter):
		m.filtering = true
		m.input.SetValue(m.filter)
		m.input.CursorEnd()
		return true, m.input.Focus()
	case key.Matches(msg, k.Back) && m.filter != "":
		m.SetFilter("")
	case key.Matches(msg, k.Back) && m.host != "":
		m.SetHost("")
	default:
		return false, nil
	}
	m.clamp()
	return true, nil
}

// Cursor is the cursor's position among the visible rows.
func (m *Model) Cursor() int { return m.cursor }

// Scroll moves the cursor by n rows (the mouse wheel).
func (m *Model) Scroll(n int) {
	m.cursor += n
	m.clamp()
}

// Click handles a click at x, y of the table (0, 0 its top left corner):
// on a column's title it sorts by that column (again: reversed), on a row
// it puts the cursor there. It reports the new order when it sorted.
func (m *Model) Click(x, y int) (Order, bool) {
	switch {
	case y == headerLines-1:
		if ci := m.columnAt(x); ci >= 0 && columns[ci].sort != "" {
			return m.SortBy(columns[ci].sort), true
		}
	case y >= headerLines:
		if vi := m.offset + y - headerLines; vi < len(m.visible) && vi < m.offset+m.rowsHeight() {
			m.cursor = vi
			m.clamp()
		}
	}
	return Order{}, false
}

// columnAt is the column (an index into columns) drawn at cell x, or -1.
func (m *Model) columnAt(x int) int {
	at, prev := markerWidth, -1
	for i, ci := range m.layout.cols {
		c := columns[ci]
		if i > 0 {
			if c.group != prev {
				at += len([]rune(groupSep))
			} else {
				at++
			}
		}
		prev = c.group
		if x >= at && x < at+m.layout.widths[i] {
			return ci
		}
		at += m.layout.widths[i]
	}
	return -1
}

// View draws the table: the info line, the group and column titles, and
// the visible rows only.
func (m *Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	var b strings.Builder
	b.Grow((m.width + 64) * m.height)
	b.WriteString(m.infoLine())
	b.WriteByte('\n')
	m.writeTitles(&b)
	h := m.rowsHeight()
	if len(m.visible) == 0 {
		msg := "no tenants: nothing local in the -dir folders, nothing under the bucket's prefix"
		switch {
		case m.filter != "":
			msg = fmt.Sprintf("no tenant matches /%s (esc clears the filter)", untrusted.Printable(m.filter))
		case m.host != "":
			msg = fmt.Sprintf("no tenant of host %s (esc or :host shows every host)", untrusted.Printable(m.host))
		}
		b.WriteByte('\n')
		b.WriteString(m.c.Styles.Table.NoRows.Render(common.Fit("  "+msg, m.width, false)))
		for i := 1; i < h; i++ {
			b.WriteByte('\n')
		}
		return common.PadLines(b.String(), m.width, m.height)
	}
	end := min(m.offset+h, len(m.visible))
	for vi := m.offset; vi < end; vi++ {
		b.WriteByte('\n')
		m.writeRow(&b, vi)
	}
	for i := end - m.offset; i < h; i++ {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", m.width))
	}
	return b.String()
}

// infoLine says what the table shows: the count, the order, the filter and
// the selection; while typing a filter, it is the filter input.
func (m *Model) infoLine() string {
	st := m.c.Styles
	right := "sort: " + string(m.order.Key)
	if m.order.Reverse {
		right += " reversed"
	}
	if n := len(m.selected); n > 0 {
		right = fmt.Sprintf("%d selected · %s", n, right)
	}
	if len(m.visible) > 0 {
		right = fmt.Sprintf("%d/%d · %s", m.cursor+1, len(m.visible), right)
	}
	var left string
	switch {
	case m.filtering:
		left = m.input.View()
	case m.filter != "":
		left = st.Table.FilterPrompt.Render("/") + st.Table.FilterText.Render(untrusted.Printable(m.filter)) +
			st.Table.Dim.Render(fmt.Sprintf("  %d of %d tenants", len(m.visible), len(m.rows)))
	case m.host != "":
		left = st.Table.FilterPrompt.Render(":host ") + st.Table.FilterText.Render(untrusted.Printable(m.host)) +
			st.Table.Dim.Render(fmt.Sprintf("  %d of %d tenants", len(m.visible), len(m.rows)))
	default:
		left = st.Header.Title.Render("Tenants") + st.Table.Dim.Render(fmt.Sprintf(" %d", len(m.rows)))
	}
	if m.host != "" && m.filter != "" && !m.filtering {
		left += st.Table.Dim.Render(" · host " + untrusted.Printable(m.host))
	}
	right = st.Table.Dim.Render(right)
	gap := m.width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return common.Cut(left, m.width)
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) writeTitles(b *strings.Builder) {
	st := m.c.Styles.Table
	var groups, titles strings.Builder
	groups.WriteString(strings.Repeat(" ", markerWidth))
	titles.WriteString(strings.Repeat(" ", markerWidth))
	prev := -1
	for i, ci := range m.layout.cols {
		c := columns[ci]
		newGroup := c.group != prev
		if i > 0 {
			if newGroup {
				groups.WriteString(st.Sep.Render(groupSep))
				titles.WriteString(st.Sep.Render(groupSep))
			} else {
				titles.WriteByte(' ')
			}
		}
		if newGroup {
			// The group's title spans all its columns.
			gw := 0
			for j := i; j < len(m.layout.cols) && columns[m.layout.cols[j]].group == c.group; j++ {
				if j > i {
					gw++
				}
				gw += m.layout.widths[j]
			}
			title := groupTitles[c.group]
			groups.WriteString(st.Group.Render(common.Fit(title, gw, false)))
		}
		title := c.title
		if c.sort != "" && c.sort == m.order.Key {
			// The sorted column says so, and which way.
			arrow := "↓"
			if m.order.Reverse {
				arrow = "↑"
			}
			if c.right {
				title = arrow + title
			} else {
				title += arrow
			}
		}
		titles.WriteString(st.Column.Render(common.Fit(title, m.layout.widths[i], c.right)))
		prev = c.group
	}
	b.WriteString(padTo(groups.String(), m.width))
	b.WriteByte('\n')
	b.WriteString(padTo(titles.String(), m.width))
}

func padTo(s string, w int) string {
	sw := lipgloss.Width(s)
	if sw > w {
		return common.Cut(s, w)
	}
	return s + strings.Repeat(" ", w-sw)
}

// writeRow draws one row. Cells are plain text cut to width first, then
// styled, so a hostile name can neither break the layout nor inject escapes
// (Display quotes it).
func (m *Model) writeRow(b *strings.Builder, vi int) {
	ri := m.visible[vi]
	r := &m.rows[ri]
	st := m.c.Styles
	isCursor := vi == m.cursor
	plain, sep := st.Table.Cell, st.Table.Sep
	status := st.StatusStyle(r.Status)
	sel, repl := st.Table.Selected, st.Table.Replicating
	if isCursor {
		cur := st.Table.Cursor
		plain, sep = cur, cur
		status = mergeCursor(status, cur, st.Color)
		sel, repl = mergeCursor(sel, cur, st.Color), mergeCursor(repl, cur, st.Color)
	}
	k := m.keys[ri]
	switch {
	case m.selected[k]:
		b.WriteString(sel.Render("●"))
	default:
		b.WriteString(plain.Render(" "))
	}
	if r.Replicating {
		b.WriteString(repl.Render("▶"))
	} else {
		b.WriteString(plain.Render(" "))
	}
	// Runs of plain cells are rendered at once: fewer escapes, faster.
	var run strings.Builder
	flush := func(s lipgloss.Style) {
		if run.Len() > 0 {
			b.WriteString(s.Render(run.String()))
			run.Reset()
		}
	}
	prev := -1
	for i, ci := range m.layout.cols {
		c := columns[ci]
		if i > 0 {
			if c.group != prev {
				flush(plain)
				b.WriteString(sep.Render(groupSep))
			} else {
				run.WriteByte(' ')
			}
		}
		prev = c.group
		var text string
		if c.name {
			text = common.FitMiddle(c.cell(r, m.at), m.layout.widths[i], c.right)
		} else {
			text = common.Fit(c.cell(r, m.at), m.layout.widths[i], c.right)
		}
		if c.status {
			flush(plain)
			b.WriteString(status.Render(text))
			continue
		}
		run.WriteString(text)
	}
	flush(plain)
	if m.layout.total < m.width {
		b.WriteString(plain.Render(strings.Repeat(" ", m.width-m.layout.total)))
	}
}

// mergeCursor draws s on the cursor row: on the cursor's background with
// colour, reversed without.
func mergeCursor(s, cur lipgloss.Style, withColor bool) lipgloss.Style {
	if withColor {
		return s.Background(cur.GetBackground()).Bold(true)
	}
	return s.Reverse(true)
}
