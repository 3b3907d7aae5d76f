package tui

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/components/cmdline"
	"github.com/litefleet/litefleet/tui/components/fleettable"
	"github.com/litefleet/litefleet/untrusted"
)

// Messages of the root's own tasks.
type (
	refreshedMsg struct {
		id       int
		view     *fleet.View
		sortedBy fleettable.Order
		index    *fleettable.Index // the table's index of view.Rows, in that order
		err      error
	}
	autoRefreshMsg struct{ gen int }
	clockMsg       struct{}
	replicationMsg struct {
		row   fleet.Row
		start bool
		err   error
	}
	connMsg struct {
		verb, value string
		err         error
	}
	stoppedMsg     struct{ err error }
	quitRequestMsg struct{}
)

// Timeouts of the root's tasks: an S3 that does not answer must end in an
// error on screen, not a spinner forever.
const (
	refreshTimeout = 2 * time.Minute
	replTimeout    = time.Minute
	closeTimeout   = 2 * time.Minute
)

func (m *Model) clockTick() tea.Cmd {
	return m.tick(time.Second, func(time.Time) tea.Msg { return clockMsg{} })
}

// refresh starts a refresh; its reply replaces any earlier one still on
// its way. manual logs the equivalent command line.
func (m *Model) refresh(manual bool) tea.Cmd {
	m.refreshID++
	m.refreshing = true
	id, b := m.refreshID, m.c.Backend
	m.c.Tasks.Start("refresh", "refreshing…", m.c.Now())
	if manual {
		ctx := b.Context()
		m.c.Action(common.CommandLine(append([]string{"litefleet", "ls"}, ctx.Flags(true)...)...))
	}
	key := m.table.Sort()
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		v, err := b.Refresh(ctx)
		if err != nil {
			return refreshedMsg{id: id, err: err}
		}
		// Sorting and indexing 10,000 rows takes tens of milliseconds: do
		// it here, off the UI goroutine, in the order the table had when
		// asked.
		key.Apply(v.Rows)
		return refreshedMsg{id: id, view: v, sortedBy: key, index: fleettable.NewIndex(v.Rows)}
	}
}

// refreshed shows a refresh and schedules the next one.
func (m *Model) refreshed(msg refreshedMsg) tea.Cmd {
	if msg.id != m.refreshID {
		return nil // a newer refresh, or another bucket, since
	}
	m.refreshing = false
	m.c.Tasks.Done("refresh")
	var follow tea.Cmd
	if msg.err != nil {
		m.c.Error(fmt.Errorf("refresh: %w", msg.err))
	} else {
		m.view = msg.view
		if m.judgeStopped(msg.view) && msg.sortedBy.Key == fleet.SortStatus {
			// Statuses changed after the rows were sorted by them:
			// the table sorts and indexes them again.
			msg.sortedBy, msg.index = fleettable.Order{}, nil
		}
		m.table.SetView(msg.view, msg.sortedBy, msg.index)
		headerWas := m.header.Height()
		m.header.SetView(msg.view)
		m.logViewErrors(msg.view)
		if m.showLogs || m.header.Height() != headerWas {
			// The log pane takes the rows the table does not need; the
			// header has a line of hosts when the bucket has any.
			m.layout()
		}
		follow = m.follow()
	}
	if m.opt.Refresh <= 0 {
		return follow
	}
	m.tickGen++
	gen := m.tickGen
	return tea.Batch(follow, m.tick(m.opt.Refresh, func(time.Time) tea.Msg { return autoRefreshMsg{gen: gen} }))
}

// stopMark is a tenant this process stopped replicating (x): the host
// whose record reported it then.
type stopMark struct{ host string }

// judgeStopped corrects the rows of tenants stopped here that a refresh
// still calls "in sync" or "lagging": this process's host record says
// "replicating" until it is rewritten, seconds later, and after that the
// listing calls a stopped tenant in sync until its unsynced changes are
// 10 s old. Nothing replicates it: the row says "not replicating" until
// it is replicated again, here or by another host. It reports whether it
// changed a row.
func (m *Model) judgeStopped(v *fleet.View) bool {
	if len(m.stoppedHere) == 0 {
		return false
	}
	changed := false
	for i := range v.Rows {
		r := &v.Rows[i]
		if r.Local == nil {
			continue
		}
		mark, ok := m.stoppedHere[r.Local.Path]
		if !ok {
			continue
		}
		if r.Replicating || r.Host != "" && r.Host != mark.host {
			// Replicated again, here or by another host.
			delete(m.stoppedHere, r.Local.Path)
			continue
		}
		if r.Status != fleet.StatusInSync && r.Status != fleet.StatusLagging {
			continue
		}
		if r.Host != "" {
			r.State = "stopped"
		}
		r.Status = fleet.StatusNotReplicating
		r.Note = "stopped in this process (final sync done): no replicator runs it"
		r.LagTXIDs, r.Lag = 0, 0
		changed = true
	}
	if changed {
		v.Counts = fleet.Counts(v.Rows)
	}
	return changed
}

// follow brings the detail page and the restore dialog to the refresh the
// table shows: the same row, so status, lag and TXIDs agree everywhere,
// and a new listing of the tenant's restore points, so that "latest" moves.
func (m *Model) follow() tea.Cmd {
	var cmds []tea.Cmd
	if m.page == pageDetail {
		r, ok := m.table.Find(m.detail.Row())
		m.detail.SetRow(r, m.viewAt(), ok)
		cmds = append(cmds, m.detail.Relist())
	}
	if m.restore.Open() {
		r, ok := m.table.Find(m.restore.Row())
		m.restore.SetRow(r, ok)
		cmds = append(cmds, m.restore.Relist())
	}
	return tea.Batch(cmds...)
}

// logViewErrors puts what a refresh could not read in the log pane (and
// the status line), once each time it changes: the header shows it only
// while it lasts, and `:bucket nosuch` must leave a trace.
func (m *Model) logViewErrors(v *fleet.View) {
	remote := v.RemoteErr
	if m.c.Backend.Context().Bucket == "" {
		remote = "" // local only: "no bucket" is no error
	}
	switch {
	case remote != "" && remote != m.remoteErr:
		m.c.Error(fmt.Errorf("S3: %s", remote))
	case remote == "" && m.remoteErr != "":
		m.c.Log.Add(m.c.Now(), common.LogInfo, "S3 answers again")
	}
	if v.LocalErr != "" && v.LocalErr != m.localErr {
		m.c.Error(fmt.Errorf("local databases: %s", v.LocalErr))
	}
	m.remoteErr, m.localErr = remote, v.LocalErr
}

func errReadOnly(k string) error {
	return fmt.Errorf("read-only: %q writes, and -readonly turns it off", k)
}

// replicate starts (or stops) replicating rows in this process, one
// tea.Cmd per tenant.
func (m *Model) replicate(rows []fleet.Row, start bool) tea.Cmd {
	if m.c.ReadOnly {
		return nil
	}
	verb := "replicate"
	if !start {
		verb = "stop"
	}
	var cmds []tea.Cmd
	var skipped []string
	ctx := m.c.Backend.Context()
	for _, r := range rows {
		switch {
		case r.Local == nil:
			skipped = append(skipped, r.Display()+": nothing local")
			continue
		case start && r.Replicating:
			skipped = append(skipped, r.Display()+": already replicating here")
			continue
		case !start && !r.Replicating:
			skipped = append(skipped, r.Display()+": not replicating here")
			continue
		case start && (!r.Local.Verdict.Usable() || r.Status == fleet.StatusInvalid):
			skipped = append(skipped, r.Display()+": "+r.Note)
			continue
		case start && ctx.Bucket == "":
			skipped = append(skipped, r.Display()+": no bucket")
			continue
		}
		if start {
			w := append([]string{"litefleet", "replicate", "-dsn", r.Local.Path}, ctx.ConnFlags()...)
			if r.Local.Verdict == tenants.VerdictExplicit {
				w = append(w, "-db-name", r.Local.Name)
			}
			m.c.Action(common.CommandLine(w...))
		} else {
			m.c.Action(StopCommand(r.Local.Path))
		}
		cmds = append(cmds, m.replicationCmd(r, start))
	}
	if len(skipped) > 0 {
		m.c.Error(fmt.Errorf("%s skipped: %s", verb, joinMax(skipped, 3)))
	}
	if len(cmds) == 0 {
		return nil
	}
	m.pending += len(cmds)
	text := fmt.Sprintf("starting replication of %d tenant(s)…", m.pending)
	if !start {
		text = fmt.Sprintf("stopping replication of %d tenant(s): final sync…", m.pending)
	}
	m.c.Tasks.Start("replication", text, m.c.Now())
	return tea.Batch(cmds...)
}

// StopCommand is the shell line that does what `x` does to a replication
// started by the line `r` logs (`litefleet replicate -dsn PATH …`): SIGTERM
// to that process, which stops after a final sync. It is pasteable as is:
// the path is matched literally (regexp.QuoteMeta) and shell-quoted.
func StopCommand(path string) string {
	return "pkill -TERM -f -- " + common.ShellQuote(stopPattern(path)) + "  # stops after a final sync"
}

// stopPattern is pkill's pattern for the replicate command of path.
func stopPattern(path string) string {
	return "litefleet replicate -dsn " + regexp.QuoteMeta(path) + "( |$)"
}

// heldElsewhere is the host that holds r's claim, as the last refresh saw
// it, when that is a live host other than this process: `r` then makes
// this process wait, leased elsewhere, rather than replicate. "" when no
// live host holds it.
func heldElsewhere(r fleet.Row) string {
	if r.Replicating {
		return ""
	}
	switch r.State {
	case "replicating", "sleeping", "starting", "lease lost (retrying)":
		// Those states hold the claim; the others released it.
		if r.Host != "" && !r.HostSilent {
			return untrusted.Printable(r.Host)
		}
	}
	if rm := r.Remote; rm != nil && rm.Lease != nil && rm.Lease.Host != "" && rm.Lease.HostAlive {
		return untrusted.Printable(rm.Lease.Host)
	}
	if r.Status == fleet.StatusLeased {
		if rm := r.Remote; rm != nil && rm.Lease != nil && rm.Lease.Owner != "" {
			return untrusted.Printable(fleet.LeaseHolder(rm.Lease.Owner))
		}
		return "another host"
	}
	return ""
}

func joinMax(items []string, n int) string {
	if len(items) <= n {
		return fmt.Sprint(items)
	}
	return fmt.Sprintf("%v and %d more", items[:n], len(items)-n)
}

func (m *Model) replicationCmd(r fleet.Row, start bool) tea.Cmd {
	b := m.c.Backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), replTimeout)
		defer cancel()
		var err error
		if start {
			err = b.StartReplication(ctx, *r.Local)
		} else {
			err = b.StopReplication(ctx, *r.Local)
		}
		return replicationMsg{row: r, start: start, err: err}
	}
}

// replicated shows one tenant's replication started or stopped, and
// refreshes once the last of a batch is done.
func (m *Model) replicated(msg replicationMsg) tea.Cmd {
	m.pending--
	name := msg.row.Display()
	switch {
	case msg.err != nil:
		m.c.Error(msg.err)
	case msg.start:
		m.table.MarkReplicating(msg.row, true)
		if host := heldElsewhere(msg.row); host != "" {
			// The engine stands by until that host's claim goes: saying
			// "replicating" would contradict the log and the table.
			m.c.Info("%s: leased elsewhere by %s: standing by", name, host)
		} else {
			m.c.Info("replicating %s", name)
		}
	default:
		m.table.MarkReplicating(msg.row, false)
		m.c.Info("stopped replicating %s (final sync done)", name)
		if msg.row.Local != nil {
			m.stoppedHere[msg.row.Local.Path] = stopMark{host: msg.row.Host}
		}
	}
	if m.pending > 0 {
		return nil
	}
	m.c.Tasks.Done("replication")
	return m.refresh(false)
}

// replicatingCount is the number of tenants this process replicates.
func (m *Model) replicatingCount() int {
	n := 0
	for _, r := range m.table.Rows() {
		if r.Replicating {
			n++
		}
	}
	return n
}

// quit stops every replication started here, with a final sync, then
// quits. A second request while stopping quits at once.
func (m *Model) quit() tea.Cmd {
	if m.quitting {
		m.stopped = true
		m.stop()
		return tea.Quit
	}
	if m.restore.Running() {
		m.c.Error(errors.New("a restore is running: esc cancels it first"))
		return nil
	}
	m.quitting = true
	if m.verifying() {
		// verify removes its restored copies when its context ends: the
		// quit goes on once it has.
		m.quitAfterVerify = true
		m.cancelVerify()
		m.c.Tasks.Start("quit", "cancelling the verification…", m.c.Now())
		return nil
	}
	n := m.replicatingCount()
	if n == 0 && m.pending == 0 {
		m.stopped = true
		m.stop()
		return tea.Quit
	}
	m.c.Tasks.Start("quit", fmt.Sprintf("stopping %d tenant(s)… final sync", n), m.c.Now())
	b := m.c.Backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		return stoppedMsg{err: b.Close(ctx)}
	}
}

// Filter is the program's message filter (tea.WithFilter): the QuitMsg of
// a SIGTERM and the InterruptMsg of a SIGINT become requests to quit
// cleanly, stopping replication first; a second one quits at once.
func Filter(model tea.Model, msg tea.Msg) tea.Msg {
	m, ok := model.(*Model)
	if !ok || m.stopped {
		return msg
	}
	switch msg.(type) {
	case tea.QuitMsg, tea.InterruptMsg:
		return quitRequestMsg{}
	}
	return msg
}

// Stopped reports whether the UI stopped its replications before quitting.
func (m *Model) Stopped() bool { return m.stopped }

// startRestore opens the restore dialog on the tenant under the cursor,
// or the one of the detail page.
func (m *Model) startRestore() tea.Cmd {
	var row *fleet.Row
	report := m.detail.Report()
	if m.page == pageDetail {
		r := m.detail.Row()
		row = &r
	} else {
		row = m.table.Current()
	}
	switch {
	case row == nil:
		return nil
	case row.Remote == nil || row.Remote.Format == s3browse.FormatEmpty:
		m.c.Error(fmt.Errorf("%s has nothing in S3 to restore from", row.Display()))
		return nil
	}
	if report != nil && report.Name != row.Tenant {
		report = nil
	}
	return m.restore.Start(*row, report)
}

// sortedBy says an order for the status line.
func sortedBy(o fleettable.Order) string {
	if o.Reverse {
		return fmt.Sprintf("sorted by %s, reversed", o.Key)
	}
	return fmt.Sprintf("sorted by %s", o.Key)
}

// runCommand carries out a command-line command.
func (m *Model) runCommand(msg cmdline.RunMsg) tea.Cmd {
	switch msg.Verb {
	case "quit":
		return m.quit()
	case "bucket", "prefix":
		return m.switchConn(msg.Verb, msg.Arg)
	case "sort":
		o, err := fleettable.ParseOrder(msg.Arg)
		if err != nil {
			m.c.Error(err)
			return nil
		}
		m.table.SetSort(o)
		m.c.Info("%s", sortedBy(o))
	case "filter":
		m.table.SetFilter(msg.Arg)
	case "host":
		m.table.SetHost(msg.Arg)
		if msg.Arg == "" {
			m.c.Info("every host's tenants")
		} else {
			m.c.Info("only the tenants of host %s: %d", untrusted.Printable(msg.Arg), m.table.Visible())
		}
	case "refresh":
		return m.refresh(true)
	case "logs":
		m.toggleLogs()
	case "help":
		m.showHelp = true
		m.help.Open()
	}
	return nil
}

// switchConn points the S3 side at another bucket or prefix, then
// refreshes; a refresh of the old one still on its way is dropped.
func (m *Model) switchConn(verb, value string) tea.Cmd {
	// A verification under way reads the old bucket: its verdicts would
	// be shown as the new one's.
	if m.verify != nil {
		m.verify.forget = true
		m.cancelVerify()
	}
	m.refreshID++ // drop the old bucket's reply
	m.refreshing = true
	m.c.Tasks.Start("conn", fmt.Sprintf("switching to %s %s…", verb, value), m.c.Now())
	b := m.c.Backend
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		var err error
		if verb == "bucket" {
			err = b.SetBucket(ctx, value)
		} else {
			err = b.SetPrefix(ctx, value)
		}
		return connMsg{verb: verb, value: value, err: err}
	}
}

func (m *Model) connSwitched(msg connMsg) tea.Cmd {
	m.c.Tasks.Done("conn")
	m.refreshing = false
	if msg.err != nil {
		m.c.Error(fmt.Errorf(":%s %s: %w", msg.verb, msg.value, msg.err))
		return m.refresh(false)
	}
	m.detail.ClearVerifications()
	m.c.Info("now on s3://%s/%s", m.c.Backend.Context().Bucket, m.c.Backend.Context().Prefix)
	m.page = pageTable
	return m.refresh(true)
}
