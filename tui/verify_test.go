package tui

import (
	"errors"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/verify"
)

// verifyCalls are the tenants Verify was asked for, in order.
func (d *driver) verifyCalls() []string {
	var out []string
	for _, c := range d.fake.Calls() {
		if t, ok := strings.CutPrefix(c, "verify "); ok {
			out = append(out, t)
		}
	}
	return out
}

// `V` verifies the tenant under the cursor: the equivalent command line
// in the log, the verdict on the status line and in the log, and on the
// tenant's page. -readonly keeps it: verify only reads S3.
func TestVerifyRow(t *testing.T) {
	d := start(t, Options{Color: true, ReadOnly: true})
	d.cursorTo(guidRemote)
	d.press("V")
	if got := d.verifyCalls(); !slices.Equal(got, []string{guidRemote}) {
		t.Fatalf("Verify calls: %v", got)
	}
	if len(d.fake.noDeadline) > 0 {
		t.Fatalf("calls without a deadline: %v", d.fake.noDeadline)
	}
	if d.m.c.Status.Err || !strings.Contains(d.m.c.Status.Text, guidRemote+": verified TXID 1841 (0000000000000731) at ") {
		t.Fatalf("status line: %q", d.m.c.Status.Text)
	}
	log := d.logText()
	for _, want := range []string{
		"litefleet verify -bucket saas-backups -endpoint http://127.0.0.1:7070 -region us-east-1 " + guidRemote,
		guidRemote + ": verified TXID 1841", "checksum 0123456789abcdef equals host web-1's record",
	} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	if d.m.c.Tasks.Running(verifyTaskID) || d.m.verifying() {
		t.Fatal("the verification still runs after its verdict")
	}
	d.press("enter")
	d.wantScreen("verify (V)", "verified TXID 1841 (0000000000000731)", "equals host web-1's record")
	// V on the page verifies the page's tenant.
	d.press("V")
	if got := d.verifyCalls(); !slices.Equal(got, []string{guidRemote, guidRemote}) {
		t.Fatalf("Verify calls from the page: %v", got)
	}
}

// On a selection, `V` verifies each selected tenant, sums the run up and
// spends the selection; a tenant with nothing in S3 is skipped, said why.
func TestVerifySelection(t *testing.T) {
	d := start(t)
	picked := []string{guidSync, guidRemote, guidLeased}
	for _, g := range picked {
		d.cursorTo(g)
		d.press("space")
	}
	d.cursorTo(guidLocal)
	d.press("space")
	d.press("V")
	got := d.verifyCalls()
	slices.Sort(got)
	want := slices.Clone(picked)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Verify calls: %v, want %v", got, want)
	}
	if n := d.m.table.SelectedCount(); n != 0 {
		t.Fatalf("%d tenants still selected after V", n)
	}
	if !strings.Contains(d.m.c.Status.Text, "verify: 3 tenants, 3 verified, 0 unverifiable") {
		t.Fatalf("status line: %q", d.m.c.Status.Text)
	}
	log := d.logText()
	if !strings.Contains(log, "verify skipped: ["+guidLocal+": nothing in S3]") {
		t.Fatalf("the skipped tenant is not said:\n%s", log)
	}
	for _, g := range picked {
		if !strings.Contains(log, g+": verified TXID 1841") {
			t.Fatalf("no verdict of %s in the log:\n%s", g, log)
		}
	}
}

// A failed verdict is an error, on the status line, in the log and on the
// tenant's page; a verification that could not be made is one too.
func TestVerifyFailureIsError(t *testing.T) {
	d := start(t)
	d.fake.verdicts = map[string]*verify.Report{guidRemote: {Tenant: guidRemote, Verdict: verify.Mismatch, TXID: 2210,
		Reason: "the database restored at TXID 2210 has checksum 1111111111111111, but host web-1 recorded 2222222222222222 at that TXID"}}
	d.fake.verifyErrs = map[string]error{guidLeased: errors.New("S3 at http://127.0.0.1:7070 is unreachable")}
	d.cursorTo(guidRemote)
	d.press("V")
	if !d.m.c.Status.Err || !strings.Contains(d.m.c.Status.Text, guidRemote+": mismatch: the database restored at TXID 2210") {
		t.Fatalf("status line: %+v", *d.m.c.Status)
	}
	if !strings.Contains(d.logText(), "mismatch: the database restored") {
		t.Fatalf("the mismatch is not in the log:\n%s", d.logText())
	}
	d.wantScreen("✗ " + guidRemote + ": mismatch")
	d.press("enter")
	d.wantScreen("verify (V)", "mismatch: the database restored at TXID 2210")
	d.press("esc")

	d.cursorTo(guidLeased)
	d.press("V")
	if !d.m.c.Status.Err || !strings.Contains(d.m.c.Status.Text, "verify "+guidLeased+": S3 at http://127.0.0.1:7070 is unreachable") {
		t.Fatalf("status line: %+v", *d.m.c.Status)
	}
	d.press("enter")
	d.wantScreen("could not verify: S3 at http://127.0.0.1:7070 is unreachable")
}

// Verifications run a few at a time, with progress in the footer; esc
// cancels the run: the ones under way end with their context, the others
// are never started.
func TestVerifyProgressAndCancel(t *testing.T) {
	d := start(t)
	gate := make(chan struct{})
	d.fake.verifyGate = gate
	for _, g := range []string{guidSync, guidRemote, guidLeased} {
		d.cursorTo(g)
		d.press("space")
	}
	out := make(chan tea.Msg, 16)
	_, cmd := d.m.Update(keyMsg("V"))
	spawn(cmd, out)
	d.wantScreen("verifying 0/3 tenants… 0%", "esc cancel verify")

	// One ends: the footer moves and the third starts.
	gate <- struct{}{}
	_, cmd = d.m.Update(waitMsg(t, out, "tui.verifiedMsg"))
	spawn(cmd, out)
	d.wantScreen("verifying 1/3 tenants… 33%")

	d.m.Update(keyMsg("esc"))
	d.wantScreen("cancelling the verification…")
	for d.m.verifying() {
		_, cmd = d.m.Update(waitMsg(t, out, "tui.verifiedMsg"))
		spawn(cmd, out)
	}
	d.wantScreen("verification cancelled after 1 of 3 tenants (0 failed)")
	if n := len(d.verifyCalls()); n != 3 {
		t.Fatalf("%d Verify calls, want 3 (two at a time, the third after the first)", n)
	}
	if d.m.c.Tasks.Running(verifyTaskID) {
		t.Fatal("the task stays in the footer")
	}
	// The third started after the first ended, and was under way at the
	// cancel: its page says so. The next esc is the page's again.
	d.cursorTo(d.verifyCalls()[2])
	d.press("enter")
	d.wantScreen("verify (V)", "cancelled, no verdict")
	d.press("esc")
	if d.m.page != pageTable {
		t.Fatal("esc no longer goes back after the verification ended")
	}
}

// Another bucket's tenants are others: `:bucket` forgets the verdicts.
func TestVerifyForgottenOnBucketSwitch(t *testing.T) {
	d := start(t)
	d.cursorTo(guidSync)
	d.press("V", "enter")
	d.wantScreen("verify (V)", "verified TXID 1841")
	d.press("esc", ":")
	d.typeText("bucket saas-backups-eu")
	d.press("enter")
	d.cursorTo(guidSync)
	d.press("enter")
	d.notScreen("verify (V)")

	// A run under way at the switch is cancelled, and its late replies
	// are not recorded for the new bucket's tenants.
	d.press("esc")
	d.fake.verifyGate = make(chan struct{})
	out := make(chan tea.Msg, 16)
	_, cmd := d.m.Update(keyMsg("V"))
	spawn(cmd, out)
	d.press(":")
	d.typeText("bucket saas-backups")
	d.press("enter")
	d.send(waitMsg(t, out, "tui.verifiedMsg"))
	if d.m.verifying() {
		t.Fatal("the run did not end")
	}
	d.cursorTo(guidSync)
	d.press("enter")
	d.notScreen("verify (V)")
}

// Quitting while a verification runs cancels it and waits for it to end
// (verify removes its restored copies on the way), then quits.
func TestVerifyQuitWaits(t *testing.T) {
	d := start(t)
	d.fake.verifyGate = make(chan struct{})
	d.cursorTo(guidRemote)
	out := make(chan tea.Msg, 16)
	_, cmd := d.m.Update(keyMsg("V"))
	spawn(cmd, out)
	d.send(quitRequestMsg{})
	if d.quit {
		t.Fatal("quit before the verification ended")
	}
	d.wantScreen("cancelling the verification…")
	d.send(waitMsg(t, out, "tui.verifiedMsg"))
	if !d.quit || !d.m.Stopped() {
		t.Fatal("no quit after the cancelled verification ended")
	}
}
