package tui

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/restore"
	"github.com/litefleet/litefleet/tenants"
	"github.com/litefleet/litefleet/tui/components/cmdline"
	"github.com/litefleet/litefleet/tui/components/logpane"
	"github.com/litefleet/litefleet/tui/components/restoredialog"
)

func (d *driver) restores() []restore.Options {
	d.fake.mu.Lock()
	defer d.fake.mu.Unlock()
	return append([]restore.Options(nil), d.fake.restores...)
}

func TestRestoreLatest(t *testing.T) {
	d := start(t) // cursor on 0badc0de…, remote only
	d.press("R")
	if !d.m.restore.Open() {
		t.Fatal("R does not open the restore dialog")
	}
	d.wantScreen("Restore "+guidRemote, "latest: TXID 1841 (0000000000000731)", "a TXID…", "a time…", "snapshot: TXID 1699 (00000000000006a3)")
	d.press("enter") // latest
	want := "./" + guidRemote + ".restored-20261126T212000Z.db"
	d.wantScreen("2/3 · output file", want)
	d.press("enter") // keep the default output
	d.wantScreen("reaches", "TXID 1841 (0000000000000731)", "3/3 · type the tenant's name")
	d.typeText("0badc0de")
	d.press("enter")
	d.wantScreen("that is not the tenant's name")
	if len(d.restores()) != 0 {
		t.Fatal("restored without the name")
	}
	d.typeText(strings.TrimPrefix(guidRemote, "0badc0de"))
	d.press("enter")
	rs := d.restores()
	if len(rs) != 1 || rs[0].Output != want || rs[0].Force || rs[0].TXID != 0 || !rs[0].Timestamp.IsZero() {
		t.Fatalf("restore options: %+v", rs)
	}
	d.wantScreen("✓ restored", "reached", "TXID 1841 (0000000000000731)", "integrity ok")
	if !strings.Contains(d.logText(), "litefleet restore -bucket saas-backups -endpoint http://127.0.0.1:7070 -region us-east-1 -o "+want+" "+guidRemote) {
		t.Fatalf("log lacks the restore line:\n%s", d.logText())
	}
	d.press("enter")
	if d.m.restore.Open() {
		t.Fatal("enter on the result does not close")
	}
}

func TestRestoreProgressBar(t *testing.T) {
	d := start(t)
	gate := make(chan struct{})
	d.fake.gate = gate
	d.press("R", "enter", "enter")
	d.typeText(guidRemote)
	// Run the restore's commands on their own: the fake restore stops
	// half way until the gate opens.
	out := make(chan tea.Msg, 16)
	_, cmd := d.m.Update(keyMsg("enter"))
	spawn(cmd, out)
	d.wantScreen("esc cancels", "0B of 4.0M downloaded")
	progress := waitMsg(t, out, "restoredialog.progressMsg")
	d.m.Update(progress)
	d.wantScreen("2.0M of 4.0M downloaded", "50%", "restoring "+guidRemote[:12]+"…"+guidRemote[len(guidRemote)-11:])
	// Quitting during a restore is refused, not a torn file.
	d.m.Update(keyMsg("ctrl+c"))
	d.wantScreen("a restore is running")
	close(gate)
	d.send(waitMsg(t, out, "restoredialog.doneMsg"))
	d.wantScreen("✓ restored")
}

// spawn runs cmd and the commands of its batches on their own goroutines,
// sending their messages to out.
func spawn(cmd tea.Cmd, out chan<- tea.Msg) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		if b, ok := msg.(tea.BatchMsg); ok {
			for _, c := range b {
				spawn(c, out)
			}
			return
		}
		if msg != nil {
			out <- msg
		}
	}()
}

func waitMsg(t *testing.T, out <-chan tea.Msg, typ string) tea.Msg {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-out:
			if fmt.Sprintf("%T", msg) == typ {
				return msg
			}
		case <-deadline:
			t.Fatalf("no %s within 10s", typ)
		}
	}
}

func TestRestoreSnapshotTXIDTime(t *testing.T) {
	d := start(t)
	// The newest snapshot: the last choice, snapshots oldest first.
	d.press("R", "j", "j", "j", "j", "j", "enter", "enter")
	d.typeText(guidRemote)
	d.press("enter")
	if rs := d.restores(); len(rs) != 1 || rs[0].TXID != 1699 || rs[0].Source != restore.SourceLTX {
		t.Fatalf("snapshot restore: %+v", rs)
	}
	d.press("esc")

	d.press("R", "j", "enter")
	d.typeText("zz")
	d.press("enter")
	d.wantScreen("is not a TXID")
	d.press("backspace", "backspace")
	d.typeText("0000000000000200")
	d.press("enter", "enter")
	d.typeText(guidRemote)
	d.press("enter")
	if rs := d.restores(); len(rs) != 2 || rs[1].TXID != 512 {
		t.Fatalf("TXID restore: %+v", rs[len(rs)-1])
	}
	if !strings.Contains(d.logText(), "-txid 0000000000000200") {
		t.Fatalf("log lacks -txid:\n%s", d.logText())
	}
	d.press("esc")

	d.press("R", "j", "j", "enter")
	d.typeText("15m")
	d.press("enter", "enter")
	d.typeText(guidRemote)
	d.press("enter")
	if rs := d.restores(); len(rs) != 3 || !rs[2].Timestamp.Equal(testNow.Add(-15*time.Minute)) {
		t.Fatalf("time restore: %+v", rs[len(rs)-1])
	}
	if !strings.Contains(d.logText(), "-timestamp 2026-11-26T21:05:00Z") {
		t.Fatalf("log lacks -timestamp:\n%s", d.logText())
	}
}

func TestRestoreOverwriteNeedsSecondConfirmation(t *testing.T) {
	out := filepath.Join(t.TempDir(), "existing.db")
	if err := os.WriteFile(out, []byte("SQLite format 3\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t)
	d.press("R", "enter")
	d.m.restore.Update(keyMsg("ctrl+u")) // clear the default path
	d.typeText(out)
	d.press("enter")
	d.typeText(guidRemote)
	d.press("enter")
	// Single words: the message wraps where the temporary folder's
	// path, of varying length, puts the line's end.
	d.wantScreen("existing.db", "exists.", "\"overwrite\"", "replace")
	if len(d.restores()) != 0 {
		t.Fatal("restored over a file without the second confirmation")
	}
	d.typeText("yes")
	d.press("enter")
	d.wantScreen("type overwrite to replace the existing file")
	d.press("backspace", "backspace", "backspace")
	d.typeText("overwrite")
	d.press("enter")
	if rs := d.restores(); len(rs) != 1 || !rs[0].Force || rs[0].Output != out {
		t.Fatalf("restore options: %+v", rs)
	}
	if !strings.Contains(d.logText(), "-force") {
		t.Fatalf("log lacks -force:\n%s", d.logText())
	}
}

func TestRestoreRefusesReplicatedDatabase(t *testing.T) {
	d := start(t)
	d.press("j", "R", "enter") // 12345678…, replicating here
	d.m.restore.Update(keyMsg("ctrl+u"))
	d.typeText("/data/" + guidSync + ".db")
	d.press("enter")
	d.wantScreen("✗ refused", "being replicated by this process")
	d.typeText(guidSync)
	d.press("enter")
	if len(d.restores()) != 0 {
		t.Fatal("restored over a replicated database")
	}
	// esc goes back to the output, then to the point, then closes.
	d.press("esc")
	d.wantScreen("2/3 · output file")
	d.press("esc")
	d.wantScreen("1/3 · restore point")
	d.press("esc")
	if d.m.restore.Open() {
		t.Fatal("esc does not close the dialog")
	}
}

func TestRestoreOnlyWhatS3Has(t *testing.T) {
	d := start(t)
	d.press("j", "j", "R") // 5eed5eed: local only
	if d.m.restore.Open() {
		t.Fatal("restore opened for a tenant with nothing in S3")
	}
	d.wantScreen("has nothing in S3 to restore from")
}

func TestRestoreFromDetailReusesReport(t *testing.T) {
	d := start(t)
	d.press("enter")
	n := len(d.fake.Calls())
	d.press("R")
	if len(d.fake.Calls()) != n {
		t.Fatalf("the dialog listed again what the detail page has: %v", d.fake.Calls()[n:])
	}
	d.wantScreen("snapshot: TXID 1699 (00000000000006a3)")
}

func TestParseTXIDAndTime(t *testing.T) {
	for in, want := range map[string]uint64{"0000000000000200": 512, "0x200": 512, "512": 512} {
		got, err := restoredialog.ParseTXID(in)
		if err != nil || got != want {
			t.Errorf("ParseTXID(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0", "xyz", "-1"} {
		if _, err := restoredialog.ParseTXID(bad); err == nil {
			t.Errorf("ParseTXID(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Time{
		"2026-11-26T20:00:00Z":      time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC),
		"2026-11-26T21:00:00+01:00": time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC),
		"2026-11-26 20:00:00":       time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC),
		"1h":                        testNow.Add(-time.Hour),
		"90s ago":                   testNow.Add(-90 * time.Second),
	} {
		got, err := restoredialog.ParseTime(in, testNow)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := restoredialog.ParseTime("yesterday", testNow); err == nil {
		t.Error("ParseTime accepted yesterday")
	}
}

func TestValidateOverlay(t *testing.T) {
	d := start(t)
	d.press("v")
	if !d.m.validate.Open() {
		t.Fatal("v does not open the overlay")
	}
	d.wantScreen("Name check", "2 problem(s): 1 invalid, 1 fallback, 0 collision",
		"Invalid names (1)", `"evil\x1b[31mred\x1b]0;pwned\a"`, "Fallbacks to \"default\" (1)", "/data/notes.db")
	if !strings.Contains(d.logText(), "litefleet validate /data") {
		t.Fatalf("log lacks validate:\n%s", d.logText())
	}
	d.press("j", "k", "G", "g")
	d.press("esc")
	if d.m.validate.Open() {
		t.Fatal("esc does not close the overlay")
	}
}

func TestFindingsCollisions(t *testing.T) {
	v := &fleet.View{Rows: fleet.Join([]tenants.Local{
		{Entry: tenants.Entry{Path: "/a/x.db", Naming: tenants.Naming{Name: "t1", Verdict: tenants.VerdictCollision, Note: "prefix t1 is also claimed by /b/x.db"}}},
		{Entry: tenants.Entry{Path: "/b/x.db", Naming: tenants.Naming{Name: "t1", Verdict: tenants.VerdictCollision, Note: "prefix t1 is also claimed by /a/x.db"}}},
		{Entry: tenants.Entry{Path: "/c/Bad.db", Naming: tenants.Naming{Name: "Bad", Verdict: tenants.VerdictInvalid, Note: "characters outside a-z"}}},
	}, nil, testNow, fleet.ViewOptions{})}
	f := fleet.Findings(v, nil)
	kinds := map[string]int{}
	for _, x := range f {
		kinds[x.Kind]++
	}
	if kinds["collision"] != 2 || kinds["invalid"] != 1 {
		t.Fatalf("findings: %+v", f)
	}
}

func TestCommandLine(t *testing.T) {
	d := start(t)
	d.press(":")
	d.typeText("bucket saas-backups-eu")
	d.wantScreen(":bucket saas-backups-eu")
	d.press("enter")
	calls := d.fake.Calls()
	if calls[len(calls)-2] != "bucket saas-backups-eu" || calls[len(calls)-1] != "refresh" {
		t.Fatalf("calls: %v", calls)
	}
	d.wantScreen("s3://saas-backups-eu/databases")

	d.press(":")
	d.typeText("bucket missing")
	d.press("enter")
	d.wantScreen(`✗ :bucket missing: bucket "missing" does not exist`)

	d.press(":")
	d.typeText("prefix tenants")
	d.press("enter")
	d.wantScreen("s3://saas-backups-eu/tenants")

	d.press(":")
	d.typeText("sort lag")
	d.press("enter")
	d.wantScreen("sort: lag")

	d.press(":")
	d.typeText("frobnicate")
	d.press("enter")
	d.wantScreen("✗ unknown command :frobnicate")

	d.press(":", "esc")
	if d.m.cmdline.Active() {
		t.Fatal("esc does not close the command line")
	}
	d.press(":")
	d.typeText("q")
	d.press("enter")
	if !d.quit {
		t.Fatal(":q does not quit")
	}
}

func TestParseCommand(t *testing.T) {
	for in, want := range map[string]cmdline.RunMsg{
		"q":            {Verb: "quit"},
		":quit":        {Verb: "quit"},
		"bucket b1":    {Verb: "bucket", Arg: "b1"},
		"b b1":         {Verb: "bucket", Arg: "b1"},
		"prefix":       {Verb: "prefix"},
		"sort  size ":  {Verb: "sort", Arg: "size"},
		"filter ab cd": {Verb: "filter", Arg: "ab cd"},
		"host web-1":   {Verb: "host", Arg: "web-1"},
		"ho":           {Verb: "host"},
		"":             {},
	} {
		got, err := cmdline.Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"bucket", "sort", "xyz", "re x"} {
		if _, err := cmdline.Parse(bad); err == nil && bad != "re x" {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestQuitStopsReplicationFirst(t *testing.T) {
	d := start(t) // one tenant replicates here
	_, cmd := d.m.Update(keyMsg("q"))
	d.wantScreen("stopping 1 tenant(s)… final sync")
	if d.quit {
		t.Fatal("quit before stopping")
	}
	// Keys are ignored while stopping.
	d.m.Update(keyMsg("j"))
	d.run(cmd)
	if !d.quit || d.fake.closed != 1 || !d.m.Stopped() {
		t.Fatalf("quit %v, closed %d", d.quit, d.fake.closed)
	}
}

func TestQuitWithoutReplication(t *testing.T) {
	f := newFake()
	f.replicating = map[string]bool{}
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.press("ctrl+c")
	if !d.quit {
		t.Fatal("ctrl+c does not quit")
	}
}

func TestSignalQuitIsClean(t *testing.T) {
	d := start(t)
	// The program's filter turns a SIGTERM's QuitMsg into a clean stop.
	if _, ok := Filter(d.m, tea.QuitMsg{}).(quitRequestMsg); !ok {
		t.Fatal("QuitMsg not turned into a quit request")
	}
	d.send(quitRequestMsg{})
	if !d.quit || d.fake.closed != 1 {
		t.Fatal("quit request did not stop replication")
	}
	if _, ok := Filter(d.m, tea.QuitMsg{}).(tea.QuitMsg); !ok {
		t.Fatal("after stopping, QuitMsg must pass")
	}
	// SIGINT arrives as InterruptMsg.
	d2 := start(t)
	d2.send(Filter(d2.m, tea.InterruptMsg{}))
	if !d2.quit || d2.fake.closed != 1 {
		t.Fatal("interrupt did not stop replication")
	}
}

func TestHelpOverlay(t *testing.T) {
	d := start(t)
	d.press("?")
	d.wantScreen("Keys", "validate names", "stop replicating", "Statuses", "leased elsewhere")
	d.press("?")
	if d.m.showHelp {
		t.Fatal("? does not close help")
	}
	d.press("?", "esc")
	if d.m.showHelp {
		t.Fatal("esc does not close help")
	}
}

func TestLogPane(t *testing.T) {
	sink := logpane.NewSink()
	d := newDriver(t, newFake(), 120, 36, Options{Color: true})
	// Set after Init: the driver runs commands one by one, and the log
	// reader blocks until a line comes.
	d.m.opt.Logs = sink
	d.press("l")
	d.wantScreen("── log ·")
	// The supervisor writes through a slog handler into the sink.
	_, _ = sink.Write([]byte("2026/11/26 21:20:00 new transaction: db=" + guidSync + " pre=0000000000000001 post=0000000000000002 elapsed=2ms\n"))
	_, _ = sink.Write([]byte("evil \x1b[2J line\n"))
	// The next Wait would block: deliver the lines without running it.
	d.m.Update(d.call(sink.Wait(d.m.ctx)))
	d.wantScreen("new transaction: db="+guidSync, `"evil \x1b[2J line"`)
	if strings.Contains(d.m.View().Content, "\x1b[2J") {
		t.Fatal("a log line cleared the screen")
	}
	d.press("l")
	d.notScreen("── log ·")
}

func TestSinkConcurrentWrites(t *testing.T) {
	s := logpane.NewSink()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				_, _ = s.Write([]byte(strings.Repeat("x", g+1) + " line " + string(rune('0'+i%10)) + "\n"))
			}
		}()
	}
	got := 0
	ctx := t.Context()
	for finished := 0; finished < 4 || got < 400; {
		select {
		case <-done:
			finished++
			continue
		default:
		}
		if finished == 4 && got >= 400 {
			break
		}
		m := s.Wait(ctx)().(logpane.LinesMsg)
		got += len(m.Lines) + m.Dropped
	}
	if got != 400 {
		t.Fatalf("%d lines, want 400", got)
	}
}

func TestNoEscapeInjection(t *testing.T) {
	d := start(t)
	d.press("G", "k", "k") // the hostile name
	content := d.m.View().Content
	for _, bad := range []string{"\x1b[31mred", "\x1b]0;pwned", "\x07"} {
		if strings.Contains(content, bad) {
			t.Fatalf("screen holds %q from a tenant name", bad)
		}
	}
	d.wantScreen(`"evil\x1b[31mred\x1b]0;pwned\a"`)
	d.press("enter")
	content = d.m.View().Content
	if strings.Contains(content, "\x1b]0;pwned") {
		t.Fatal("detail page holds the raw name")
	}
	// An invalid name is never sent to S3.
	for _, c := range d.fake.Calls() {
		if strings.Contains(c, "pwned") {
			t.Fatalf("called the backend with a hostile name: %q", c)
		}
	}
}

func TestNoColor(t *testing.T) {
	d := start(t, Options{Color: false})
	content := d.m.View().Content
	// Any SGR parameter 30-49 or 90-107 is a colour.
	colour := regexp.MustCompile(`\x1b\[(?:[0-9]+;)*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9]+)*m`)
	if c := colour.FindString(content); c != "" {
		t.Fatalf("NO_COLOR screen holds colour %q", c)
	}
	if !strings.Contains(content, "\x1b[7m") {
		t.Fatal("without colour the cursor row must be reversed")
	}
}

func TestResize(t *testing.T) {
	d := start(t)
	for _, s := range [][2]int{{80, 24}, {200, 50}, {100, 30}, {60, 15}, {120, 36}} {
		d.send(tea.WindowSizeMsg{Width: s[0], Height: s[1]})
		checkFrame(t, d.m.View().Content, s[0], s[1])
	}
	d.press("l", "enter")
	d.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	checkFrame(t, d.m.View().Content, 80, 24)
	d.press("esc", "v")
	checkFrame(t, d.m.View().Content, 80, 24)
	if w := ansi.StringWidth(strings.Split(d.m.View().Content, "\n")[0]); w != 80 {
		t.Fatalf("header %d wide", w)
	}
}

func TestEmptyFleet(t *testing.T) {
	f := newFake()
	f.locals, f.remotes = nil, nil
	d := newDriver(t, f, 80, 24, Options{Color: true})
	d.wantScreen("no tenants", "0 tenants")
	d.press("enter", "R", "r", "j", "space")
	checkFrame(t, d.m.View().Content, 80, 24)
}
