// Package tui is litefleet's terminal UI, a Bubble Tea v2 program over the
// fleet view: a header with the context and counts, the fleet table, a
// tenant's detail page, overlays (help, name check, restore, command line),
// a log pane and a footer. The root model below only routes: behaviour
// lives in the components under tui/components, I/O in tea.Cmds that call
// the Backend.
package tui

import (
	"context"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/components/cmdline"
	"github.com/litefleet/litefleet/tui/components/detail"
	"github.com/litefleet/litefleet/tui/components/fleettable"
	"github.com/litefleet/litefleet/tui/components/footer"
	"github.com/litefleet/litefleet/tui/components/header"
	"github.com/litefleet/litefleet/tui/components/help"
	"github.com/litefleet/litefleet/tui/components/logpane"
	"github.com/litefleet/litefleet/tui/components/restoredialog"
	"github.com/litefleet/litefleet/tui/components/validate"
	"github.com/litefleet/litefleet/tui/keymap"
	"github.com/litefleet/litefleet/tui/styles"
	"github.com/litefleet/litefleet/untrusted"
)

// DefaultRefresh is how often the fleet is refreshed unless -refresh says.
const DefaultRefresh = 5 * time.Second

// StatusTTL is how long the status line keeps a message the operator has
// not moved on from; the log pane keeps every error.
const StatusTTL = 8 * time.Second

// Options configure the UI.
type Options struct {
	// ReadOnly hides and refuses every action that writes.
	ReadOnly bool
	// Refresh is the auto-refresh interval; 0 turns it off.
	Refresh time.Duration
	// Color false (NO_COLOR) draws without colour.
	Color bool
	// Logs, when set, is where the process's slog lines are written; the
	// log pane shows them.
	Logs *logpane.Sink
	// Now is the clock; tests fix it. time.Now when nil.
	Now func() time.Time
}

type page int

const (
	pageTable page = iota
	pageDetail
)

// Model is the root model.
type Model struct {
	c    *common.Common
	opt  Options
	ctx  context.Context // ends when the program quits: stops the log reader
	stop context.CancelFunc

	header   *header.Model
	table    *fleettable.Model
	detail   *detail.Model
	help     *help.Model
	validate *validate.Model
	restore  *restoredialog.Model
	cmdline  *cmdline.Model
	logs     *logpane.Model
	footer   *footer.Model

	page     page
	showHelp bool
	showLogs bool

	view       *fleet.View
	remoteErr  string // the S3 error of the last refresh, logged once
	localErr   string // the local discovery error of the last refresh, logged once
	refreshID  int    // the refresh whose reply is awaited; older ones are dropped
	refreshing bool   // a refresh is in flight
	tickGen    int    // the auto-refresh chain; older ticks are dropped
	pending    int    // replication starts and stops in flight
	// stoppedHere are the tenants (by local path) this process stopped
	// while their host record may still say it replicates them.
	stoppedHere map[string]stopMark

	// verify is the verification (`V`) under way, nil when none;
	// verifyID numbers the runs, so a cancelled run's late replies go.
	verify   *verifyRun
	verifyID int
	// quitAfterVerify: a quit waits for the cancelled verification to
	// end, so that its temporary files are removed before the exit.
	quitAfterVerify bool

	quitting bool // stopping replication before quitting
	stopped  bool // replication stopped: the next QuitMsg really quits

	// tick is tea.Tick; tests replace it, as a tick's command sleeps.
	tick func(time.Duration, func(time.Time) tea.Msg) tea.Cmd
}

// New returns the UI over b.
func New(b Backend, opt Options) *Model {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	c := &common.Common{
		Styles:   styles.DefaultStyles(opt.Color),
		Keys:     keymap.Default(opt.ReadOnly),
		Backend:  b,
		Now:      opt.Now,
		ReadOnly: opt.ReadOnly,
		Tasks:    &common.Tasks{},
		Status:   &common.Status{},
		Log:      &common.LogBook{},
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Model{
		c: c, opt: opt, ctx: ctx, stop: stop,
		header:   header.New(c, opt.Refresh),
		table:    fleettable.New(c),
		detail:   detail.New(c),
		help:     help.New(c),
		validate: validate.New(c),
		restore:  restoredialog.New(c),
		cmdline:  cmdline.New(c),
		logs:     logpane.New(c),
		footer:   footer.New(c),
		tick:     tea.Tick,

		stoppedHere: map[string]stopMark{},
	}
}

// Init starts the first refresh and the log reader.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.refresh(false), m.clockTick()}
	if m.opt.Logs != nil {
		cmds = append(cmds, m.opt.Logs.Wait(m.ctx))
	}
	return tea.Batch(append(cmds, m.footer.Spin())...)
}

// Update routes a message to the component it is for.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	// A task started by any of the above needs the spinner turning.
	return m, tea.Batch(cmd, m.footer.Spin())
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	if ok, cmd := m.restore.Handle(msg); ok {
		return cmd
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.c.SetSize(msg.Width, msg.Height)
		m.layout()
	case tea.KeyPressMsg:
		return m.key(msg)
	case tea.MouseClickMsg:
		m.mouse(msg.Mouse(), false)
	case tea.MouseWheelMsg:
		m.mouse(msg.Mouse(), true)
	case quitRequestMsg:
		return m.quit()
	case refreshedMsg:
		return m.refreshed(msg)
	case autoRefreshMsg:
		if msg.gen != m.tickGen || m.refreshing {
			return nil
		}
		return m.refresh(false)
	case clockMsg:
		// Redraw, so the header's refresh age moves, and let an old
		// message go.
		if st := m.c.Status; st.Text != "" && m.c.Now().Sub(st.At) >= StatusTTL {
			st.Clear()
		}
		return m.clockTick()
	case replicationMsg:
		return m.replicated(msg)
	case verifiedMsg:
		return m.verified(msg)
	case connMsg:
		return m.connSwitched(msg)
	case stoppedMsg:
		m.c.Tasks.Done("quit")
		m.stopped = true
		m.stop()
		return tea.Quit
	case cmdline.RunMsg:
		return m.runCommand(msg)
	case detail.InspectedMsg:
		m.detail.Inspected(msg)
	case validate.DoneMsg:
		m.validate.Done(msg)
	case logpane.CopiedMsg:
		if msg.Err != nil {
			m.c.Error(msg.Err)
		} else {
			m.c.Info("%s", msg.Text)
		}
	case logpane.LinesMsg:
		m.logs.Add(msg)
		return m.opt.Logs.Wait(m.ctx)
	case spinner.TickMsg:
		return m.footer.Update(msg)
	}
	return nil
}

// key routes a key press: to the open dialog or overlay, else to the
// page, else to the global keys.
func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	if m.quitting {
		return nil
	}
	// The operator moves on: an error about what came before goes (the
	// log pane keeps it). What this key does may set a new one.
	if m.c.Status.Err {
		m.c.Status.Clear()
	}
	switch {
	case m.cmdline.Active():
		return m.cmdline.Update(msg)
	case m.restore.Open():
		if msg.String() == "ctrl+c" {
			return m.quit() // refused while a restore runs
		}
		return m.restore.Update(msg)
	case m.showHelp:
		if key.Matches(msg, k.Help, k.Back) || msg.String() == "q" {
			m.showHelp = false
		} else {
			m.help.Update(msg)
		}
		return nil
	case m.validate.Open():
		m.validate.Update(msg)
		return nil
	case m.page == pageTable && m.table.Filtering():
		_, cmd := m.table.Update(msg)
		return cmd
	case m.showLogs && m.logs.Focused():
		if ok, cmd := m.logs.Update(msg); ok {
			return cmd
		}
	}

	if k.IsWrite(msg.String()) && m.c.ReadOnly {
		m.c.Error(errReadOnly(msg.String()))
		return nil
	}
	switch {
	case key.Matches(msg, k.Quit):
		return m.quit()
	case key.Matches(msg, k.Help):
		m.showHelp = true
		m.help.Open()
	case key.Matches(msg, k.Command):
		return m.cmdline.Open()
	case key.Matches(msg, k.Logs):
		m.toggleLogs()
	case key.Matches(msg, k.Focus) && m.showLogs:
		m.logs.Focus(true)
	case key.Matches(msg, k.Refresh):
		return m.refresh(true)
	case key.Matches(msg, k.Validate):
		return m.validate.Start()
	case key.Matches(msg, k.Restore):
		return m.startRestore()
	case key.Matches(msg, k.Verify):
		if m.page == pageDetail {
			return m.startVerify([]fleet.Row{m.detail.Row()})
		}
		// The selection is spent, as r and x spend it.
		targets := m.table.Targets()
		m.table.ClearSelection()
		return m.startVerify(targets)
	case key.Matches(msg, k.Back) && m.verifying() && !m.verify.cancelled:
		// esc stops a verification before it goes back or clears a
		// filter: the next esc does that.
		m.cancelVerify()
	case m.page == pageDetail:
		return m.detailKey(msg)
	case key.Matches(msg, k.Open):
		if r := m.table.Current(); r != nil {
			m.page = pageDetail
			return m.detail.Open(*r, m.viewAt())
		}
	case key.Matches(msg, k.Sort):
		m.c.Info("%s", sortedBy(m.table.CycleSort()))
	case key.Matches(msg, k.Reverse):
		o := m.table.Sort()
		o.Reverse = !o.Reverse
		m.table.SetSort(o)
		m.c.Info("%s", sortedBy(o))
	case k.SortKey(msg.String()) != "":
		m.c.Info("%s", sortedBy(m.table.SortBy(k.SortKey(msg.String()))))
	case key.Matches(msg, k.Replicate), key.Matches(msg, k.Stop):
		// The selection is spent by the action: the next r or x acts on
		// the tenant under the cursor, not on an old selection.
		targets := m.table.Targets()
		m.table.ClearSelection()
		return m.replicate(targets, key.Matches(msg, k.Replicate))
	default:
		_, cmd := m.table.Update(msg)
		return cmd
	}
	return nil
}

// wheelStep is how many lines one turn of the wheel scrolls.
const wheelStep = 3

// mouse handles a click (a left button) or the wheel, wherever it is: the
// wheel scrolls what it is over (the log pane, the help overlay, the
// detail page, the table); a click on the table's column titles sorts by
// that column, on a row puts the cursor there. Dialogs that take typing
// ignore the mouse.
func (m *Model) mouse(ms tea.Mouse, wheel bool) {
	if m.quitting || m.cmdline.Active() || m.restore.Open() || m.validate.Open() {
		return
	}
	step := 0
	switch {
	case !wheel && ms.Button != tea.MouseLeft:
		return
	case wheel && ms.Button == tea.MouseWheelUp:
		step = -wheelStep
	case wheel && ms.Button == tea.MouseWheelDown:
		step = wheelStep
	case wheel:
		return
	}
	y := ms.Y - m.header.Height()
	bh := m.bodyHeight()
	switch {
	case y < 0:
	case m.showHelp:
		if wheel {
			m.help.Scroll(step)
		}
	case m.showLogs && y >= bh && y < bh+m.logs.Height():
		if wheel {
			m.logs.Scroll(step)
		}
	case y >= bh:
	case m.page == pageDetail:
		if wheel {
			m.detail.Scroll(step)
		}
	case m.table.Filtering():
	case wheel:
		m.table.Scroll(step)
	default:
		if o, ok := m.table.Click(ms.X, y); ok {
			m.c.Info("%s", sortedBy(o))
		}
	}
}

func (m *Model) detailKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	switch {
	case key.Matches(msg, k.Back):
		m.page = pageTable
		m.c.Tasks.Done(detail.TaskID)
	case key.Matches(msg, k.Replicate):
		return m.replicate([]fleet.Row{m.detail.Row()}, true)
	case key.Matches(msg, k.Stop):
		return m.replicate([]fleet.Row{m.detail.Row()}, false)
	default:
		m.detail.Update(msg)
	}
	return nil
}

func (m *Model) viewAt() time.Time {
	if m.view != nil {
		return m.view.At
	}
	return m.c.Now()
}

// toggleLogs opens or closes the log pane; it opens without the keyboard,
// following the newest line.
func (m *Model) toggleLogs() {
	m.showLogs = !m.showLogs
	m.logs.Open()
	m.layout()
}

// minTable is what the table keeps beside the log pane: its titles and a
// few rows.
const minTable = 6

// layout hands every component its share of the screen. The log pane
// takes half the body, or more: every line the table does not need.
func (m *Model) layout() {
	w, h := m.c.Width, m.c.Height
	m.header.SetWidth(w)
	m.footer.SetWidth(w)
	body := max(h-m.header.Height()-footer.Height, 1)
	if m.showLogs {
		lh := max(body/2, body-m.table.Needed())
		lh = max(min(lh, body-minTable), min(body-1, 3))
		m.logs.SetSize(w, lh)
		body = max(body-lh, 1)
	}
	m.table.SetSize(w, body)
	m.detail.SetSize(w, body)
	m.help.SetSize(w, body)
}

// bodyHeight is the height of the table or detail page.
func (m *Model) bodyHeight() int {
	body := max(m.c.Height-m.header.Height()-footer.Height, 1)
	if m.showLogs {
		body = max(body-m.logs.Height(), 1)
	}
	return body
}

// View draws the screen. It reads state only: no I/O, no changes.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	// Clicks and the wheel (shift+drag still selects text in most
	// terminals).
	v.MouseMode = tea.MouseModeCellMotion
	v.WindowTitle = "litefleet"
	if b := m.c.Backend.Context().Bucket; b != "" {
		v.WindowTitle = "litefleet · " + untrusted.Printable(b)
	}
	return v
}

// Render is the screen's content: what View shows and golden tests keep.
func (m *Model) Render() string {
	if m.c.Width <= 0 || m.c.Height <= 0 {
		return ""
	}
	w := m.c.Width
	body := m.table.View()
	if m.page == pageDetail {
		body = m.detail.View()
	}
	bh := m.bodyHeight()
	switch {
	case m.restore.Open():
		body = common.Overlay(body, m.restore.View(w), w, bh)
	case m.showHelp:
		body = common.Overlay(body, m.help.View(), w, bh)
	case m.validate.Open():
		body = common.Overlay(body, m.validate.View(w, bh), w, bh)
	}
	out := m.header.View() + "\n" + common.PadLines(body, w, bh)
	if m.showLogs {
		out += "\n" + m.logs.View()
	}
	status := m.footer.StatusLine()
	if m.cmdline.Active() {
		status = m.cmdline.View(w)
	}
	return out + "\n" + status + "\n" + m.footer.HelpLine(m.helpKeys())
}

// helpKeys are the bindings the footer shows for what has the keyboard.
func (m *Model) helpKeys() []key.Binding {
	k := m.c.Keys
	switch {
	case m.cmdline.Active():
		return []key.Binding{k.Confirm, k.Cancel, k.NextField}
	case m.restore.Open():
		return []key.Binding{k.Confirm, k.Cancel, k.Up, k.Down}
	case m.showHelp:
		return []key.Binding{k.Up, k.Down, k.Back, k.Quit}
	case m.validate.Open():
		return []key.Binding{k.Up, k.Down, k.Back}
	case m.page == pageTable && m.table.Filtering():
		return []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")), key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear"))}
	case m.showLogs && m.logs.Focused():
		return k.LogHelp()
	case m.verifying() && !m.verify.cancelled && m.page == pageDetail:
		return []key.Binding{verifyCancelKey, k.Up, k.Down, k.PageDown, k.Restore, k.Replicate, k.Stop, k.Help, k.Quit}
	case m.page == pageDetail:
		return []key.Binding{k.Up, k.Down, k.PageDown, k.Restore, k.Replicate, k.Stop, k.Back, k.Verify, k.Help, k.Quit}
	case m.verifying() && !m.verify.cancelled:
		return append([]key.Binding{verifyCancelKey}, k.ShortHelp()...)
	}
	return k.ShortHelp()
}
