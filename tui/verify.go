package tui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/components/detail"
	"github.com/litefleet/litefleet/verify"
)

// verifyTaskID names a verification (`V`) in the footer.
const verifyTaskID = "verify"

// verifyParallel is how many tenants `V` verifies at once: each restores a
// copy, and the UI shares the machine with the replications it runs.
const verifyParallel = 2

// verifyTimeout bounds one tenant's verification: an S3 that stops
// answering ends in an error, not in a spinner forever.
const verifyTimeout = 15 * time.Minute

// verifiedMsg is one tenant's verification, of the run id.
type verifiedMsg struct {
	id     int
	row    fleet.Row
	report *verify.Report
	err    error
}

// verifyRun is the verification under way: tenants are started from the
// queue as others end, verifyParallel at a time.
type verifyRun struct {
	id        int
	ctx       context.Context
	cancel    context.CancelFunc
	queue     []fleet.Row // not started yet
	first     string      // the first tenant's name, for a run of one
	total     int
	done      int
	running   int
	verified  int
	failed    int
	cancelled bool
	// forget: cancelled by a switch of bucket or prefix, whose tenants
	// are others: nothing of the run is recorded for them.
	forget bool
}

// verifying reports whether a verification runs.
func (m *Model) verifying() bool { return m.verify != nil }

// startVerify verifies rows, a few at a time, with progress in the footer.
func (m *Model) startVerify(rows []fleet.Row) tea.Cmd {
	if m.verifying() {
		m.c.Error(errors.New("a verification is running: esc cancels it first"))
		return nil
	}
	ctx := m.c.Backend.Context()
	if ctx.Bucket == "" {
		m.c.Error(errors.New("no bucket: verify reads the replicas; start with -bucket or -config, or :bucket NAME"))
		return nil
	}
	var todo []fleet.Row
	var skipped []string
	for _, r := range rows {
		if r.Remote == nil || r.Remote.Format == s3browse.FormatEmpty {
			skipped = append(skipped, r.Display()+": nothing in S3")
			continue
		}
		todo = append(todo, r)
	}
	if len(skipped) > 0 {
		m.c.Error(fmt.Errorf("verify skipped: %s", joinMax(skipped, 3)))
	}
	if len(todo) == 0 {
		return nil
	}
	// Without -config: verify would add every database it lists.
	words := append([]string{"litefleet", "verify"}, ctx.ConnFlags()...)
	for _, r := range todo {
		words = append(words, r.Tenant)
	}
	m.c.Action(common.CommandLine(words...))

	m.verifyID++
	vctx, cancel := context.WithCancel(context.Background())
	m.verify = &verifyRun{id: m.verifyID, ctx: vctx, cancel: cancel, queue: todo, first: todo[0].Display(), total: len(todo)}
	m.c.Tasks.Start(verifyTaskID, m.verifyText(), m.c.Now())
	m.c.Tasks.Progress(verifyTaskID, 0)
	var cmds []tea.Cmd
	for range min(verifyParallel, len(todo)) {
		cmds = append(cmds, m.nextVerify())
	}
	return tea.Batch(cmds...)
}

// verifyText is the footer's task text.
func (m *Model) verifyText() string {
	v := m.verify
	if v.total == 1 {
		return "verifying " + common.Middle(v.first, 24) + "…"
	}
	return fmt.Sprintf("verifying %d/%d tenants…", v.done, v.total)
}

// nextVerify starts the next tenant of the queue.
func (m *Model) nextVerify() tea.Cmd {
	v := m.verify
	r := v.queue[0]
	v.queue = v.queue[1:]
	v.running++
	m.detail.SetVerification(r.Tenant, detail.Verification{Running: true, At: m.c.Now()})
	id, ctx, b := v.id, v.ctx, m.c.Backend
	return func() tea.Msg {
		tctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		defer cancel()
		rep, err := b.Verify(tctx, r.Tenant)
		return verifiedMsg{id: id, row: r, report: rep, err: err}
	}
}

// verified shows one tenant's verdict, starts the next, and sums the run
// up after its last.
func (m *Model) verified(msg verifiedMsg) tea.Cmd {
	v := m.verify
	if v == nil || msg.id != v.id {
		return nil
	}
	v.running--
	name := msg.row.Display()
	now := m.c.Now()
	switch {
	case v.forget:
	case msg.err != nil && v.cancelled:
		// Stopped by the cancel (whatever the error says of it): said
		// once for the run, below.
		m.detail.SetVerification(msg.row.Tenant, detail.Verification{Cancelled: true, At: now})
	case msg.err != nil:
		v.done++
		v.failed++
		m.detail.SetVerification(msg.row.Tenant, detail.Verification{Err: msg.err, At: now})
		m.c.Error(fmt.Errorf("verify %s: %w", name, msg.err))
	default:
		v.done++
		r := msg.report
		m.detail.SetVerification(msg.row.Tenant, detail.Verification{Report: r, At: now})
		line := name + ": " + detail.VerdictLine(r)
		switch {
		case verify.Failed(r.Verdict):
			v.failed++
			m.c.Error(errors.New(line))
		default:
			if r.Verdict == verify.Verified {
				v.verified++
				line += " (" + r.Reason + ")"
			}
			m.c.Log.Add(now, common.LogInfo, line)
			m.c.Info("%s", line)
		}
	}
	if v.total > 0 {
		m.c.Tasks.Progress(verifyTaskID, float64(v.done)/float64(v.total))
	}
	var next tea.Cmd
	if !v.cancelled && len(v.queue) > 0 {
		next = m.nextVerify()
	}
	if v.running > 0 || next != nil {
		m.c.Tasks.SetText(verifyTaskID, m.verifyText())
		return next
	}
	return m.verifyEnded()
}

// verifyEnded closes the run: a summary for more than one tenant, and
// the quit it delayed.
func (m *Model) verifyEnded() tea.Cmd {
	v := m.verify
	v.cancel()
	m.verify = nil
	m.c.Tasks.Done(verifyTaskID)
	switch {
	case v.cancelled:
		m.c.Info("verification cancelled after %d of %d tenants (%d failed)", v.done, v.total, v.failed)
	case v.total > 1 && v.failed > 0:
		m.c.Error(fmt.Errorf("verify: %d of %d tenants failed (l: the log has each verdict)", v.failed, v.total))
	case v.total > 1:
		m.c.Info("verify: %d tenants, %d verified, %d unverifiable", v.total, v.verified, v.total-v.verified)
	}
	if m.quitAfterVerify {
		m.quitAfterVerify = false
		m.quitting = false
		m.c.Tasks.Done("quit")
		return m.quit()
	}
	return nil
}

// cancelVerify stops the run: the tenants under way end with their
// context (verify removes their restored copies), the others are not
// started.
func (m *Model) cancelVerify() {
	v := m.verify
	if v == nil || v.cancelled {
		return
	}
	v.cancelled = true
	v.cancel()
	m.c.Info("cancelling the verification…")
}

// verifyCancelKey is the footer's reminder while a verification runs.
var verifyCancelKey = key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel verify"))
