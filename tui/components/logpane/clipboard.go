package logpane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
)

// Clipboard is how `y` reaches a clipboard: OSC 52 on the terminal, which
// works over SSH, and, inside tmux, tmux's own paste buffer: by default
// tmux drops an application's OSC 52 (set-clipboard external), so the
// sequence alone would reach nothing while the UI said "copied".
type Clipboard struct {
	// Getenv reads the environment (TMUX says the UI runs inside tmux).
	Getenv func(string) string
	// Run runs a command with stdin, returning its combined output.
	Run func(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)
}

// DefaultClipboard reads the process's environment and runs commands.
func DefaultClipboard() Clipboard {
	return Clipboard{
		Getenv: os.Getenv,
		Run: func(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
			cmd := exec.CommandContext(ctx, name, args...)
			cmd.Stdin = strings.NewReader(stdin)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			return out.Bytes(), err
		},
	}
}

// CopiedMsg says where a copy went, in words for the status line.
type CopiedMsg struct {
	Text string
	Err  error
}

// tmuxTimeout bounds the tmux call: a wedged tmux server must not leave
// the copy's answer pending forever.
const tmuxTimeout = 5 * time.Second

// Copy sends text to the terminal with OSC 52 and, inside tmux, loads it
// into tmux's paste buffer; the message says which of those happened. A
// terminal does not answer OSC 52, so the message says it was sent, not
// that it arrived.
func (c Clipboard) Copy(text string) tea.Cmd {
	n := len(text)
	osc := tea.SetClipboard(text)
	if c.Getenv("TMUX") == "" {
		return tea.Batch(osc, func() tea.Msg {
			return CopiedMsg{Text: fmt.Sprintf("sent %d characters with OSC 52: pasteable if the terminal allows it", n)}
		})
	}
	return tea.Batch(osc, func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), tmuxTimeout)
		defer cancel()
		// -w also sets the outer terminal's clipboard (tmux 3.2+); an
		// older tmux refuses the flag, and gets the buffer alone.
		if _, err := c.Run(ctx, text, "tmux", "load-buffer", "-w", "-"); err == nil {
			return CopiedMsg{Text: fmt.Sprintf("copied %d characters to tmux's buffer (prefix ]) and clipboard", n)}
		}
		out, err := c.Run(ctx, text, "tmux", "load-buffer", "-")
		if err != nil {
			return CopiedMsg{Err: fmt.Errorf("copy: tmux load-buffer: %w: %s; OSC 52 sent, which tmux passes on only with set-clipboard on",
				err, strings.TrimSpace(string(out)))}
		}
		return CopiedMsg{Text: fmt.Sprintf("copied %d characters to tmux's buffer (prefix ] pastes)", n)}
	})
}
