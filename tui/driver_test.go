package tui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
)

// driver runs the model as the program would, but synchronously: each
// command runs to completion and its message goes through Update, until
// nothing is left to do. Ticks are switched off (their commands sleep);
// tests send the tick messages they need.
type driver struct {
	t    testing.TB
	m    *Model
	fake *fakeBackend
	msgs []tea.Msg // every message Update received, keys excluded
	quit bool      // tea.Quit came out
}

func newDriver(t testing.TB, f *fakeBackend, w, h int, opt Options) *driver {
	t.Helper()
	if opt.Now == nil {
		opt.Now = func() time.Time { return testNow }
	}
	if opt.Refresh == 0 {
		opt.Refresh = DefaultRefresh
	}
	m := New(f, opt)
	m.tick = func(time.Duration, func(time.Time) tea.Msg) tea.Cmd { return nil }
	d := &driver{t: t, m: m, fake: f}
	d.send(tea.WindowSizeMsg{Width: w, Height: h})
	d.run(m.Init())
	return d
}

// run executes cmd and everything it leads to.
func (d *driver) run(cmd tea.Cmd) {
	d.t.Helper()
	queue := []tea.Cmd{cmd}
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 10000 {
			d.t.Fatal("commands never settle")
		}
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg := d.call(c)
		switch msg := msg.(type) {
		case nil:
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case spinner.TickMsg:
			// The spinner's next frame is a sleeping tick: skip it.
		case tea.QuitMsg:
			d.quit = true
		default:
			d.msgs = append(d.msgs, msg)
			_, next := d.m.Update(msg)
			queue = append(queue, next)
		}
	}
}

// call runs one command, failing the test if it blocks.
func (d *driver) call(c tea.Cmd) tea.Msg {
	d.t.Helper()
	done := make(chan tea.Msg, 1)
	go func() { done <- c() }()
	select {
	case msg := <-done:
		return msg
	case <-time.After(10 * time.Second):
		d.t.Fatal("a command blocked for 10s")
		return nil
	}
}

// send delivers msg and runs what it leads to.
func (d *driver) send(msg tea.Msg) {
	d.t.Helper()
	_, cmd := d.m.Update(msg)
	d.run(cmd)
}

// press types keys: single characters, or names such as "enter", "esc",
// "space", "ctrl+r", "up".
func (d *driver) press(keys ...string) {
	d.t.Helper()
	for _, k := range keys {
		d.send(keyMsg(k))
	}
}

// typeText types s one rune at a time.
func (d *driver) typeText(s string) {
	d.t.Helper()
	for _, r := range s {
		d.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	}
	if rest, ok := strings.CutPrefix(k, "ctrl+"); ok {
		return tea.KeyPressMsg{Code: rune(rest[0]), Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	if r >= 'A' && r <= 'Z' {
		return tea.KeyPressMsg{Code: r + ('a' - 'A'), ShiftedCode: r, Text: k, Mod: tea.ModShift}
	}
	return tea.KeyPressMsg{Code: r, Text: k}
}

// screen is the rendered screen, as the program's renderer would draw it
// with the ANSI256 profile: fixed, so goldens do not depend on the
// terminal running the tests.
func (d *driver) screen() string {
	return render(d.m.View().Content, colorprofile.ANSI256)
}

func render(content string, p colorprofile.Profile) string {
	var b bytes.Buffer
	w := &colorprofile.Writer{Forward: &b, Profile: p}
	_, _ = w.Write([]byte(content))
	return b.String()
}

// plain is the screen without escape sequences, for assertions.
func (d *driver) plain() string { return ansi.Strip(d.m.View().Content) }

func (d *driver) wantScreen(subs ...string) {
	d.t.Helper()
	s := d.plain()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			d.t.Fatalf("screen lacks %q:\n%s", sub, s)
		}
	}
}

func (d *driver) notScreen(subs ...string) {
	d.t.Helper()
	s := d.plain()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			d.t.Fatalf("screen shows %q:\n%s", sub, s)
		}
	}
}
