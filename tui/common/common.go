// Package common holds what every component of the terminal UI shares: the
// size, styles, key map, clock and backend, and the footer's tasks, the
// status line and the log book that components write to.
package common

import (
	"fmt"
	"slices"
	"time"

	"github.com/litefleet/litefleet/tui/keymap"
	"github.com/litefleet/litefleet/tui/styles"
	"github.com/litefleet/litefleet/untrusted"
)

// CallTimeout bounds a backend call made for one screen (a tenant's
// restore points, a restore plan, the name check): an S3 that does not
// answer ends in an error on screen, not in a spinner forever.
const CallTimeout = 15 * time.Second

// Common is embedded (as a pointer) by every component. Only the root's
// Update goroutine touches it, so it needs no lock.
type Common struct {
	Width, Height int
	Styles        *styles.Styles
	Keys          *keymap.KeyMap
	Backend       Backend
	Now           Clock
	ReadOnly      bool

	Tasks  *Tasks
	Status *Status
	Log    *LogBook
}

// SetSize records the terminal size.
func (c *Common) SetSize(w, h int) { c.Width, c.Height = w, h }

// Info sets the status line.
func (c *Common) Info(format string, args ...any) {
	c.Status.Set(fmt.Sprintf(format, args...), false, c.Now())
}

// Error sets the status line to an error and keeps it in the log.
func (c *Common) Error(err error) {
	msg := err.Error()
	c.Status.Set(msg, true, c.Now())
	c.Log.Add(c.Now(), LogError, msg)
}

// Action records, in the log pane, the command line that does what the
// operator just did, so it can be scripted or run elsewhere.
func (c *Common) Action(line string) { c.Log.Add(c.Now(), LogAction, line) }

// Task is a long piece of work shown in the footer with a spinner.
type Task struct {
	ID      string
	Text    string
	Started time.Time
	// Progress is a fraction in [0,1], or negative when unknown.
	Progress float64
}

// Tasks are the running tasks, oldest first (gh-dash's StartTask).
type Tasks struct{ list []Task }

// Start adds or replaces the task id.
func (t *Tasks) Start(id, text string, now time.Time) {
	t.Done(id)
	t.list = append(t.list, Task{ID: id, Text: text, Started: now, Progress: -1})
}

// Progress updates a running task's fraction done.
func (t *Tasks) Progress(id string, f float64) {
	for i := range t.list {
		if t.list[i].ID == id {
			t.list[i].Progress = f
		}
	}
}

// SetText changes a running task's text, keeping its start and progress.
func (t *Tasks) SetText(id, text string) {
	for i := range t.list {
		if t.list[i].ID == id {
			t.list[i].Text = text
		}
	}
}

// Done removes the task id.
func (t *Tasks) Done(id string) {
	t.list = slices.DeleteFunc(t.list, func(x Task) bool { return x.ID == id })
}

// Running reports whether task id runs.
func (t *Tasks) Running(id string) bool {
	return slices.ContainsFunc(t.list, func(x Task) bool { return x.ID == id })
}

// List returns the running tasks, oldest first.
func (t *Tasks) List() []Task { return t.list }

// Len is the number of running tasks.
func (t *Tasks) Len() int { return len(t.list) }

// Status is the one-line message under the table: the last result or error.
type Status struct {
	Text string
	Err  bool
	At   time.Time
}

// Clear empties the status line.
func (s *Status) Clear() { *s = Status{} }

// Set replaces the message.
func (s *Status) Set(text string, isErr bool, at time.Time) {
	s.Text, s.Err, s.At = untrusted.Printable(text), isErr, at
}

// LogKind says where a log line came from.
type LogKind int

const (
	LogProcess LogKind = iota // a line from the replication supervisor (slog)
	LogAction                 // the command line equivalent of an action
	LogError                  // an error shown in the status line
	LogInfo                   // a note of the UI's own: an error gone
)

// LogLine is one line of the log pane.
type LogLine struct {
	At   time.Time
	Kind LogKind
	Text string
}

// MaxLogLines bounds the log book: a long session replicating many tenants
// logs a line per sync.
const MaxLogLines = 5000

// LogBook keeps the log pane's lines.
type LogBook struct {
	lines []LogLine
	// Added counts every line ever added, so a view can tell new lines.
	Added int
}

// Add appends a line; text is made printable, one line per entry.
func (l *LogBook) Add(at time.Time, kind LogKind, text string) {
	l.lines = append(l.lines, LogLine{At: at, Kind: kind, Text: untrusted.Printable(text)})
	l.Added++
	if n := len(l.lines); n > MaxLogLines {
		// Drop in chunks so appends stay amortised O(1).
		l.lines = slices.Delete(l.lines, 0, n-MaxLogLines+MaxLogLines/10)
	}
}

// Lines returns the kept lines, oldest first.
func (l *LogBook) Lines() []LogLine { return l.lines }
