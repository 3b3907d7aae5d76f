package tui

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/hostview"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/components/logpane"
)

// cursorTo moves the cursor onto tenant, failing when it is not shown.
func (d *driver) cursorTo(tenant string) {
	d.t.Helper()
	d.press("g")
	for range d.m.table.Visible() {
		if r := d.m.table.Current(); r != nil && r.Tenant == tenant {
			return
		}
		d.press("j")
	}
	d.t.Fatalf("tenant %s not in the table", tenant)
}

// `r` on a tenant a live host holds: the engine stands by, and the status
// line says so instead of "replicating".
func TestReplicateLeasedElsewhereStandsBy(t *testing.T) {
	f := withHosts(newFake())
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.cursorTo(guidSync2) // web-1 reports it sleeping: web-1 holds its claim
	d.press("r")
	st := d.m.c.Status.Text
	if want := guidSync2 + ": leased elsewhere by web-1: standing by"; st != want {
		t.Fatalf("status %q, want %q", st, want)
	}
}

// A selection is spent by `r`: the next `r` acts on the tenant under the
// cursor, not on the old selection again.
func TestSelectionClearedAfterAction(t *testing.T) {
	f := newFake()
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.cursorTo(guidSync2)
	first := d.m.table.Current().Local.Path
	d.press("space") // selects it, the cursor moves down
	second := d.m.table.Current().Local.Path
	d.press("r")
	if n := d.m.table.SelectedCount(); n != 0 {
		t.Fatalf("%d tenant(s) still selected after r", n)
	}
	d.press("r")
	var starts []string
	for _, c := range f.Calls() {
		if p, ok := strings.CutPrefix(c, "start "); ok {
			starts = append(starts, p)
		}
	}
	if want := []string{first, second}; !slices.Equal(starts, want) {
		t.Fatalf("started %q, want %q (the selection, then the cursor's tenant)", starts, want)
	}
	d.notScreen("selected")
}

// `/` matches the tenant's name and host, not its file's path: "/data"
// is in every local path and in no name.
func TestFilterMatchesNameAndHost(t *testing.T) {
	d := newDriver(t, withHosts(newFake()), 120, 36, Options{Color: true})
	d.press("/")
	d.typeText("data")
	if n := d.m.table.Visible(); n != 0 {
		t.Fatalf("/data matches %d tenants: the filter matches paths", n)
	}
	d.press("esc", "/")
	d.typeText("web-1")
	if n := d.m.table.Visible(); n != 3 {
		t.Fatalf("/web-1 matches %d tenants, want web-1's 3", n)
	}
	d.press("esc", "/")
	d.typeText("abcdef")
	if n := d.m.table.Visible(); n != 1 || d.m.table.Current().Tenant != guidLagging {
		t.Fatalf("/abcdef matches %d tenants, want %s", n, guidLagging)
	}
}

// The log's line for `x` can be pasted into a shell, and its pattern
// finds the replicate command that `r`'s line starts, and no other.
func TestStopCommandPasteable(t *testing.T) {
	path := "/data/it's (1).db"
	line := StopCommand(path)
	if strings.ContainsAny(line, "<>") {
		t.Fatalf("%q holds a placeholder", line)
	}
	if out, err := exec.Command("sh", "-n", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("sh -n rejects %q: %v %s", line, err, out)
	}
	// What the shell hands pkill: a stub prints its arguments.
	out, err := exec.Command("sh", "-c", `pkill() { printf '%s\n' "$@"; }; `+line).Output()
	if err != nil {
		t.Fatalf("running %q with a stub pkill: %v", line, err)
	}
	args := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if want := []string{"-TERM", "-f", "--", stopPattern(path)}; !slices.Equal(args, want) {
		t.Fatalf("pkill gets %q, want %q", args, want)
	}
	re := regexp.MustCompile(stopPattern(path))
	started := common.CommandLine("litefleet", "replicate", "-dsn", path, "-bucket", "b")
	unquoted := "bin/litefleet replicate -dsn " + path + " -bucket b"
	if !re.MatchString(unquoted) {
		t.Fatalf("pattern %q misses %q (logged as %q)", stopPattern(path), unquoted, started)
	}
	if re.MatchString("litefleet replicate -dsn " + path + "x -bucket b") {
		t.Fatal("pattern matches another file")
	}

	f := newFake()
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.cursorTo(guidSync)
	d.press("x")
	lines := d.m.c.Log.Lines()
	var actions []string
	for _, l := range lines {
		if l.Kind == common.LogAction {
			actions = append(actions, l.Text)
		}
	}
	if want := StopCommand("/data/" + guidSync + ".db"); !slices.Contains(actions, want) {
		t.Fatalf("log actions %q lack %q", actions, want)
	}
}

// After x, the tenant is not called "in sync" while this process's host
// record still says it replicates it, and a host left with no tenant
// leaves the header.
func TestStoppedTenantNotInSync(t *testing.T) {
	f := withHosts(newFake())
	f.hosts = append(f.hosts, hostview.HostSummary{Name: "ui-host", Age: time.Second, Tenants: 0})
	// 98765432… replicates here too, and sorts after 12345678…, in sync.
	f.replicating["/data/"+guidSync2+".db"] = true
	d := newDriver(t, f, 120, 36, Options{Color: true})
	d.notScreen("ui-host")
	d.wantScreen("2 hosts")
	d.cursorTo(guidSync2) // replicating here; web-1's record says sleeping
	d.press("x")
	r := d.m.table.Current()
	if r == nil || r.Tenant != guidSync2 {
		t.Fatalf("cursor moved off %s", guidSync2)
	}
	if r.Status != fleet.StatusNotReplicating {
		t.Fatalf("stopped tenant is %q (%s), want %q", r.Status, r.Note, fleet.StatusNotReplicating)
	}
	// Sorted by status, it sorts as what it now says.
	d.press("T", "ctrl+r")
	rank := func(s fleet.Status) int { return slices.Index(fleet.Statuses, s) }
	rows := d.m.table.Rows()
	for i := 1; i < len(rows); i++ {
		if rank(rows[i-1].Status) > rank(rows[i].Status) {
			t.Fatalf("by status, %s (%s) before %s (%s)", rows[i-1].Tenant, rows[i-1].Status, rows[i].Tenant, rows[i].Status)
		}
	}
	d.cursorTo(guidSync2)
	// The record catches up: still nothing replicates it.
	f.mu.Lock()
	f.hostReports[guidSync2][0].State = "stopped"
	f.mu.Unlock()
	d.press("ctrl+r")
	if r := d.m.table.Current(); r.Status != fleet.StatusNotReplicating {
		t.Fatalf("stopped tenant is %q after its record caught up", r.Status)
	}
	// Another host takes it: its report stands.
	f.mu.Lock()
	f.hostReports[guidSync2][0].Host, f.hostReports[guidSync2][0].State = "web-3", "replicating"
	f.mu.Unlock()
	d.press("ctrl+r")
	if r := d.m.table.Current(); r.Status != fleet.StatusInSync {
		t.Fatalf("tenant replicated by web-3 is %q", r.Status)
	}
}

// The detail page shows one heartbeat age: the host line's.
func TestDetailOneHeartbeatAge(t *testing.T) {
	f := withHosts(newFake())
	f.reports[guidSync].Lease = &s3browse.Lease{Owner: "litefleet host web-1", Host: "web-1", HostAlive: true, HostBeat: true, HostAge: 7 * time.Second, Generation: 7}
	d := newDriver(t, f, 120, 60, Options{Color: true})
	d.cursorTo(guidSync)
	d.press("enter")
	if n := strings.Count(d.plain(), "heartbeat "); n != 2 { // "heartbeat 3s ago" and "(heartbeat above)"
		t.Fatalf("%d heartbeat mentions:\n%s", n, d.plain())
	}
	d.notScreen("heartbeat 7s ago")
	d.wantScreen("heartbeat 3s ago", "held by host web-1 (heartbeat above), claim generation 7")
}

// At 80×24 the footer ends with `? help` and `q quit` whatever has the
// keyboard: other keys give way first.
func TestFooterKeepsHelpAndQuit(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	last := func() string {
		lines := strings.Split(d.plain(), "\n")
		return lines[len(lines)-1]
	}
	for _, step := range []struct {
		name string
		keys []string
	}{{"table", nil}, {"detail", []string{"j", "enter"}}, {"log pane", []string{"esc", "l", "tab"}}, {"help", []string{"tab", "l", "?"}}} {
		d.press(step.keys...)
		if l := last(); !strings.Contains(l, "? help") && step.name != "help" || !strings.Contains(l, "q quit") {
			t.Fatalf("%s: footer %q lacks ? help or q quit", step.name, l)
		}
	}
}

// The ? overlay keeps every section at 80×24 and scrolls to the legend;
// at 200×50 each status name and its meaning stay apart, and each
// legend line is whole.
func TestHelpOverlayScrollsAndKeepsLegend(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.press("?")
	// Every key on the first page: none cut off with "…".
	d.wantScreen("Keys", "j/k, pgdn/pgup scroll", "stop replicating", "restore", "quit", "sort by column", "reverse sort", "log: copy line")
	d.notScreen("in sync  ")
	if box := d.m.help.View(); strings.Contains(box, "…") {
		t.Fatalf("the help cuts keys off:\n%s", box)
	}
	d.press("G")
	d.wantScreen("Legend", "TXIDs: decimal", "in sync")
	d.press("g")
	d.wantScreen("Keys")

	d = newDriver(t, newFake(), 200, 50, Options{Color: true})
	d.press("?")
	d.wantScreen("lease lost (retrying)  its host cannot reach S3", "not replicating        local changes",
		"TXIDs: decimal, with the 16-hex LTX form beside where there is room")
	d.notScreen("scroll ·") // everything fits
}

// addLog adds n supervisor lines numbered from start, each w cells wide.
func (d *driver) addLog(start, n, w int) {
	for i := start; i < start+n; i++ {
		l := fmt.Sprintf("line %03d ", i)
		d.m.logs.Add(logpane.LinesMsg{Lines: []string{l + strings.Repeat("x", max(w-len(l), 0))}})
	}
}

// The log pane follows new lines until the operator scrolls up, and
// again from G; reopened, it follows and is not scrolled sideways.
func TestLogPaneFollowsLikeTail(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.press("l")
	d.addLog(0, 40, 20)
	d.wantScreen("line 039")
	d.press("tab", "k", "k")
	d.addLog(40, 5, 20)
	d.notScreen("line 044")
	d.wantScreen("paused: G follows")
	d.press("G")
	d.addLog(45, 5, 20)
	d.wantScreen("line 049")
	d.press("k", "tab", "l", "l") // scrolled up, closed, reopened: follows
	d.addLog(50, 1, 20)
	d.wantScreen("line 050")
	d.notScreen("paused")
}

// Scrolled sideways along a long line, then closed and reopened, the
// pane shows its lines from their start, never rows of "…"; and short
// lines beside a long one scrolled far right are blank, not "…".
func TestLogPaneNoRowsOfEllipsis(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.press("l")
	d.addLog(0, 5, 20)
	d.addLog(5, 1, 400)
	d.press("tab", "right", "right", "right", "right", "right", "right")
	pane := func() []string {
		lines := strings.Split(d.plain(), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "── log") {
				return lines[i+1 : len(lines)-2]
			}
		}
		t.Fatalf("no log pane:\n%s", d.plain())
		return nil
	}
	for _, l := range pane() {
		if strings.TrimSpace(l) == "…" {
			t.Fatalf("a row of …:\n%s", d.plain())
		}
	}
	d.press("tab", "l")
	d.addLog(6, 3, 20)
	d.press("l")
	d.wantScreen("line 006 xxx", "line 008 xxx")
	for _, l := range pane() {
		if strings.HasPrefix(strings.TrimSpace(l), "…") {
			t.Fatalf("reopened pane still scrolled sideways:\n%s", d.plain())
		}
	}
}

// fakeClipboard is a clipboard whose TMUX is tmux, and whose tmux answers
// load-buffer -w with errW and load-buffer with err; it records what
// tmux got.
func fakeClipboard(tmux string, errW, err error) logpane.Clipboard {
	return logpane.Clipboard{
		Getenv: func(k string) string {
			if k == "TMUX" {
				return tmux
			}
			return ""
		},
		Run: func(_ context.Context, stdin, name string, args ...string) ([]byte, error) {
			if slices.Contains(args, "-w") {
				return []byte("unknown flag -w"), errW
			}
			return []byte("no server running"), err
		},
	}
}

// y says where the line went: OSC 52 alone outside tmux, tmux's paste
// buffer inside it, and an error when tmux refused it.
func TestCopySaysWhatHappened(t *testing.T) {
	fail := errors.New("exit status 1")
	for _, tc := range []struct {
		name      string
		clip      logpane.Clipboard
		want      string
		wantError bool
	}{
		{"no tmux", fakeClipboard("", nil, nil), "sent 12 characters with OSC 52: pasteable if the terminal allows it", false},
		{"tmux 3.2", fakeClipboard("/tmp/tmux-0/default,1,0", nil, nil), "copied 12 characters to tmux's buffer (prefix ]) and clipboard", false},
		{"old tmux", fakeClipboard("/tmp/tmux-0/default,1,0", fail, nil), "copied 12 characters to tmux's buffer (prefix ] pastes)", false},
		{"tmux gone", fakeClipboard("/tmp/tmux-0/default,1,0", fail, fail), "copy: tmux load-buffer: exit status 1: no server running; OSC 52 sent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, newFake(), 120, 36, Options{Color: true})
			d.m.logs.Clip = tc.clip
			d.m.c.Action("echo \"a b\" c")
			d.press("l", "tab", "G")
			n := len(d.msgs)
			d.press("y")
			osc := false
			for _, msg := range d.msgs[n:] {
				osc = osc || fmt.Sprint(msg) == `echo "a b" c`
			}
			if !osc {
				t.Fatal("no OSC 52 sequence sent")
			}
			st := d.m.c.Status
			if !strings.HasPrefix(st.Text, tc.want) || st.Err != tc.wantError {
				t.Fatalf("status %q (error %v), want %q (error %v)", st.Text, st.Err, tc.want, tc.wantError)
			}
		})
	}
}

// S reverses the order, a column's shift key sorts by it (again:
// reversed), and the sorted column shows at 80×24 even when it is one
// that a narrow terminal drops.
func TestSortReverseAndColumnKeys(t *testing.T) {
	d := newDriver(t, newFake(), 80, 24, Options{Color: true})
	d.notScreen("SIZE", "CHANGED")
	d.press("S", "g")
	if d.current() != legacyTenant {
		t.Fatalf("reversed by name, first is %q", d.current())
	}
	d.wantScreen("sort: name reversed", "TENANT↑")
	d.press("Z", "g")
	if d.current() != guidLeased { // 12M, the largest
		t.Fatalf("by size, first is %q", d.current())
	}
	d.wantScreen("↓SIZE", "sort: size")
	d.press("Z", "g")
	if r := d.m.table.Current(); r == nil || r.Size() != 0 && r.Size() > 48<<10 {
		t.Fatalf("by size reversed, first is %q", d.current())
	}
	d.wantScreen("↑SIZE", "sort: size reversed")
	d.press("C")
	d.wantScreen("↓CHANGED", "sort: changed")
	d.notScreen("SIZE")
	d.press("L")
	d.wantScreen("↓LAG", "sort: lag")
	d.press(":")
	d.typeText("sort -status")
	d.press("enter")
	d.wantScreen("STATUS↑", "sort: status reversed")
}

// Clicking a row puts the cursor on it, clicking a column's title sorts
// by it, and the wheel scrolls the table and the log pane.
func TestMouse(t *testing.T) {
	d := newDriver(t, newFake(), 120, 36, Options{Color: true})
	if mode := d.m.View().MouseMode; mode != tea.MouseModeCellMotion {
		t.Fatalf("mouse mode %v", mode)
	}
	top := d.m.header.Height() // the table's first line
	d.send(tea.MouseClickMsg{X: 10, Y: top + 3 + 4, Button: tea.MouseLeft})
	if d.current() != guidLagging {
		t.Fatalf("clicked the fifth row, cursor on %q", d.current())
	}
	titles := strings.Split(d.plain(), "\n")[top+2]
	x := strings.Index(titles, "LAG")
	d.send(tea.MouseClickMsg{X: len([]rune(titles[:x])), Y: top + 2, Button: tea.MouseLeft})
	if o := d.m.table.Sort(); o.Key != fleet.SortLag || o.Reverse {
		t.Fatalf("clicked LAG, sorted by %v", o)
	}
	d.press("g")
	d.send(tea.MouseWheelMsg{X: 10, Y: top + 5, Button: tea.MouseWheelDown})
	if r := d.m.table.Current(); r == nil || d.m.table.Cursor() != wheelStep {
		t.Fatalf("wheel down: cursor at %d", d.m.table.Cursor())
	}

	d.press("l")
	d.addLog(0, 40, 20)
	d.wantScreen("line 039")
	logTop := top + d.m.bodyHeight() + 1
	d.send(tea.MouseWheelMsg{X: 10, Y: logTop + 2, Button: tea.MouseWheelUp})
	d.wantScreen("paused: G follows")
	d.notScreen("line 039")
	d.send(tea.MouseWheelMsg{X: 10, Y: logTop + 2, Button: tea.MouseWheelDown})
	d.wantScreen("line 039")
	if d.m.table.Cursor() != wheelStep {
		t.Fatal("the wheel over the log pane moved the table")
	}
}
