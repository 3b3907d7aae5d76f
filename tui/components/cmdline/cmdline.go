// Package cmdline is the command line (`:`), k9s's command palette for
// what has no key: switching bucket or prefix, sorting, filtering, quitting.
package cmdline

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/litefleet/litefleet/tui/common"
)

// RunMsg is a command the operator entered; the root carries it out.
type RunMsg struct {
	Verb string // bucket, prefix, sort, filter, host, refresh, logs, help, quit
	Arg  string
}

// Verbs are the commands, for completion and help.
var Verbs = []string{"bucket", "prefix", "sort", "filter", "host", "help", "refresh", "logs", "quit", "q"}

// Model is the command line.
type Model struct {
	c      *common.Common
	input  textinput.Model
	active bool
}

// New returns an inactive command line.
func New(c *common.Common) *Model {
	in := textinput.New()
	in.Prompt = ":"
	in.Placeholder = "bucket NAME · prefix P · sort KEY · q"
	st := c.Styles.Input
	in.SetStyles(textinput.Styles{
		Focused: textinput.StyleState{Prompt: st.Prompt, Text: st.Text, Placeholder: st.Placeholder, Suggestion: st.Placeholder},
		Blurred: textinput.StyleState{Prompt: st.Prompt, Text: st.Text, Placeholder: st.Placeholder, Suggestion: st.Placeholder},
	})
	in.ShowSuggestions = true
	var sugg []string
	for _, v := range Verbs {
		sugg = append(sugg, v+" ")
	}
	in.SetSuggestions(sugg)
	return &Model{c: c, input: in}
}

// Active reports whether the command line has the keyboard.
func (m *Model) Active() bool { return m.active }

// Open gives the command line the keyboard.
func (m *Model) Open() tea.Cmd {
	m.active = true
	m.input.Reset()
	m.input.SetWidth(max(m.c.Width-4, 10))
	return m.input.Focus()
}

func (m *Model) close() {
	m.active = false
	m.input.Blur()
}

// Update handles a key while the command line is open.
func (m *Model) Update(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		m.close()
		return nil
	case "enter":
		line := m.input.Value()
		m.close()
		run, err := Parse(line)
		if err != nil {
			m.c.Error(err)
			return nil
		}
		if run.Verb == "" {
			return nil
		}
		return func() tea.Msg { return run }
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return cmd
}

// Parse reads a command line: a verb, maybe abbreviated to a unique
// prefix, and its argument.
func Parse(line string) (RunMsg, error) {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), ":"))
	if line == "" {
		return RunMsg{}, nil
	}
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch verb {
	case "q", "q!", "quit", "exit":
		return RunMsg{Verb: "quit"}, nil
	}
	var match []string
	for _, v := range Verbs {
		if strings.HasPrefix(v, verb) && v != "q" {
			match = append(match, v)
		}
	}
	if len(match) != 1 {
		return RunMsg{}, fmt.Errorf("unknown command :%s: try :bucket NAME, :prefix P, :sort KEY, :filter TEXT, :host NAME, :refresh or :q", common.ShellQuote(verb))
	}
	verb = match[0]
	switch verb {
	case "bucket":
		if arg == "" {
			return RunMsg{}, fmt.Errorf(":bucket needs a NAME")
		}
	case "sort":
		if arg == "" {
			return RunMsg{}, fmt.Errorf(":sort needs name, lag, size, changed or status")
		}
	}
	return RunMsg{Verb: verb, Arg: arg}, nil
}

// View draws the command line.
func (m *Model) View(width int) string {
	return common.PadLines(m.input.View(), width, 1)
}
