package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/term"
)

// termProgress is a progress bar on a terminal: bubbles/progress, drawn by
// a Bubble Tea program that reads no input and leaves signals to the
// command, with lines printed above it as work finishes. Anywhere but on a
// terminal it is nil and its methods do nothing: callers print their lines
// themselves.
type termProgress struct {
	p    *tea.Program
	done chan struct{}

	mu     sync.Mutex
	last   time.Time
	closed bool
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

func newTermProgress(w io.Writer, title string) *termProgress {
	if !isTerminal(w) {
		return nil
	}
	m := progressModel{title: title, bar: progress.New(progress.WithWidth(30)), start: time.Now(), width: 80}
	t := &termProgress{
		p:    tea.NewProgram(m, tea.WithOutput(w), tea.WithInput(nil), tea.WithoutSignalHandler()),
		done: make(chan struct{}),
	}
	go func() {
		defer close(t.done)
		_, _ = t.p.Run()
	}()
	return t
}

// Set shows frac done with label, at most ten times a second (and always
// when done).
func (t *termProgress) Set(frac float64, label string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	now := time.Now()
	skip := t.closed || (frac < 1 && now.Sub(t.last) < 100*time.Millisecond)
	if !skip {
		t.last = now
	}
	t.mu.Unlock()
	if !skip {
		t.p.Send(progressMsg{frac: frac, label: label})
	}
}

// Println prints line above the bar, where it stays.
func (t *termProgress) Println(line string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.p.Println(line)
	}
}

// Close takes the bar off the screen, after the lines printed above it,
// and returns when it is gone.
func (t *termProgress) Close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.p.Send(closeMsg{})
	<-t.done
}

type progressMsg struct {
	frac  float64
	label string
}

type closeMsg struct{}

// progressModel is the one line of the bar: title, bar, label, elapsed.
type progressModel struct {
	title, label string
	frac         float64
	bar          progress.Model
	start        time.Time
	width        int
	closing      bool
}

func (m progressModel) Init() tea.Cmd { return nil }

func (m progressModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case progressMsg:
		m.frac, m.label = min(max(msg.frac, 0), 1), msg.label
	case tea.WindowSizeMsg:
		m.width = msg.Width
	case closeMsg:
		m.closing = true
		return m, tea.Quit
	}
	return m, nil
}

func (m progressModel) View() tea.View {
	if m.closing {
		return tea.NewView("")
	}
	line := fmt.Sprintf("%s %s %s %s", m.title, m.bar.ViewAs(m.frac), m.label, time.Since(m.start).Round(100*time.Millisecond))
	return tea.NewView(ansi.Truncate(line, max(m.width-1, 10), "…"))
}
