// Package keymap holds every key binding of the terminal UI with its help
// text: the footer, the help overlay and the README's key table read them.
package keymap

import (
	"charm.land/bubbles/v2/key"

	"github.com/litefleet/litefleet/fleet"
)

// KeyMap is every binding, grouped as the help overlay shows them.
type KeyMap struct {
	// Moving.
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	// The log pane: focus it, scroll sideways, copy a line.
	Focus, Left, Right, Copy key.Binding
	// Looking.
	Open, Back, Filter, Sort, Reverse, SortColumn, Refresh, Logs, Help, Command, Validate key.Binding
	// Acting: all but Select and Verify write, and -readonly turns those
	// off. Verify only reads S3 (its restored copies are temporary files
	// it removes), so -readonly keeps it.
	Select, Replicate, Stop, Restore, Verify key.Binding
	// Dialogs.
	Confirm, Cancel, NextField key.Binding
	Quit                       key.Binding
}

// Default returns the key map; readOnly disables the bindings that write,
// which hides them from help too.
func Default(readOnly bool) *KeyMap {
	k := &KeyMap{
		Up:       key.NewBinding(key.WithKeys("k", "up"), key.WithHelp("k/↑", "up")),
		Down:     key.NewBinding(key.WithKeys("j", "down"), key.WithHelp("j/↓", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+u", "b"), key.WithHelp("pgup/ctrl+u", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+d", "f"), key.WithHelp("pgdn/ctrl+d", "page down")),
		Top:      key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g/home", "first")),
		Bottom:   key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G/end", "last")),

		Focus: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "log focus")),
		Left:  key.NewBinding(key.WithKeys("left"), key.WithHelp("←", "log: left")),
		Right: key.NewBinding(key.WithKeys("right"), key.WithHelp("→", "log: right")),
		Copy:  key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "log: copy line")),

		Open:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Sort:    key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
		Reverse: key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "reverse sort")),
		// k9s's shift+letter per column; again reverses.
		SortColumn: key.NewBinding(key.WithKeys("N", "L", "Z", "C", "T"), key.WithHelp("N/L/Z/C/T", "sort by column")),
		Refresh:    key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "refresh")),
		Logs:       key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "log pane")),
		Help:       key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Command:    key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "command")),
		Validate:   key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "validate names")),

		Select:    key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "select")),
		Replicate: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "replicate")),
		Stop:      key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop replicating")),
		Restore:   key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "restore")),
		Verify:    key.NewBinding(key.WithKeys("V"), key.WithHelp("V", "verify")),

		Confirm:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "confirm")),
		Cancel:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
		NextField: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next")),
		Quit:      key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
	if readOnly {
		for _, b := range k.Writes() {
			b.SetEnabled(false)
		}
	}
	return k
}

// Writes are the bindings of actions that write: to S3 (replicate, stop)
// or to disk (restore).
func (k *KeyMap) Writes() []*key.Binding {
	return []*key.Binding{&k.Replicate, &k.Stop, &k.Restore}
}

// IsWrite reports whether s is the key of an action that writes, enabled or
// not: -readonly refuses it with a message rather than ignoring it.
func (k *KeyMap) IsWrite(s string) bool {
	for _, b := range k.Writes() {
		for _, kk := range b.Keys() {
			if kk == s {
				return true
			}
		}
	}
	return false
}

// sortKeys are the sort keys of SortColumn's keys.
var sortKeys = map[string]fleet.SortKey{"N": fleet.SortName, "L": fleet.SortLag, "Z": fleet.SortSize, "C": fleet.SortChanged, "T": fleet.SortStatus}

// SortKey is the sort key that key s orders by, or "".
func (k *KeyMap) SortKey(s string) fleet.SortKey {
	if !k.SortColumn.Enabled() {
		return ""
	}
	return sortKeys[s]
}

// ShortHelp is the footer's line for the fleet table.
func (k *KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Open, k.Filter, k.Sort, k.Select, k.Replicate, k.Restore, k.Verify, k.Logs, k.Help, k.Quit}
}

// LogHelp is the footer's line while the log pane has the keyboard.
func (k *KeyMap) LogHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Left, k.Right, k.Copy, k.Focus, k.Logs, k.Help, k.Quit}
}

// FullHelp is the help overlay, in columns.
func (k *KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Open, k.Back, k.Filter, k.Sort, k.Reverse, k.SortColumn, k.Refresh, k.Validate},
		{k.Select, k.Replicate, k.Stop, k.Restore, k.Verify, k.Command, k.Help, k.Quit},
		{k.Logs, k.Focus, k.Left, k.Right, k.Copy},
	}
}
