// Package styles holds every style of the terminal UI, built in one place
// by DefaultStyles so that NO_COLOR is honoured everywhere at once.
package styles

import (
	"image/color"

	"charm.land/lipgloss/v2"

	"github.com/litefleet/litefleet/fleet"
)

// The palette is the terminal's own 16 colours: they follow the operator's
// light or dark theme without asking the terminal for its background.
var (
	red     = lipgloss.Color("1")
	green   = lipgloss.Color("2")
	yellow  = lipgloss.Color("3")
	blue    = lipgloss.Color("4")
	magenta = lipgloss.Color("5")
	cyan    = lipgloss.Color("6")
	gray    = lipgloss.Color("8")
	orange  = lipgloss.Color("208") // distinct from lagging's yellow; yellow on 16 colours
	cursor  = lipgloss.Color("237")
)

// Styles are every style the UI draws with.
type Styles struct {
	// Color is false under NO_COLOR: styles then use only bold, faint,
	// underline and reverse, and the cursor row is drawn in reverse.
	Color bool

	Header struct {
		Title, Label, Value, Dim, ReadOnly, Stale, Count lipgloss.Style
	}
	Table struct {
		Group, Column, Cell, Dim, Sep, Cursor, Selected, Replicating, NoRows lipgloss.Style
		FilterPrompt, FilterText                                             lipgloss.Style
	}
	// Status colours a tenant's name and status by its fleet status.
	Status map[fleet.Status]lipgloss.Style

	Footer struct {
		Key, Desc, Sep, Spinner, Task, Info, Error lipgloss.Style
	}
	// Box is an overlay or dialog: help, validation, restore, command line.
	Box struct {
		Frame, Title, Label, Value, Dim, OK, Warn, Error, Choice, Chosen, Key lipgloss.Style
	}
	Detail struct {
		Title, Section, Label, Value, Dim lipgloss.Style
	}
	Log struct {
		Title, Time, Process, Action, Error, Cursor lipgloss.Style
	}
	Input struct {
		Prompt, Text, Placeholder lipgloss.Style
	}
	Progress struct {
		Full, Empty color.Color
	}
}

// DefaultStyles returns the UI's styles; withColor false (NO_COLOR) keeps
// every style colourless.
func DefaultStyles(withColor bool) *Styles {
	s := &Styles{Color: withColor}
	fg := func(c color.Color) lipgloss.Style {
		if !withColor {
			return lipgloss.NewStyle()
		}
		return lipgloss.NewStyle().Foreground(c)
	}
	plain := lipgloss.NewStyle()
	bold := plain.Bold(true)
	faint := plain.Faint(true)
	dim := fg(gray)
	if !withColor {
		dim = faint
	}

	s.Header.Title = bold
	s.Header.Label = dim
	s.Header.Value = plain
	s.Header.Dim = dim
	s.Header.ReadOnly = fg(yellow).Bold(true).Reverse(true)
	s.Header.Stale = fg(red).Bold(true)
	s.Header.Count = bold

	s.Table.Group = dim.Bold(true)
	s.Table.Column = bold.Underline(!withColor)
	if withColor {
		s.Table.Column = fg(blue).Bold(true)
	}
	s.Table.Cell = plain
	s.Table.Dim = dim
	s.Table.Sep = dim
	s.Table.Cursor = plain.Reverse(true)
	if withColor {
		s.Table.Cursor = plain.Background(cursor).Bold(true)
	}
	s.Table.Selected = fg(magenta).Bold(true)
	s.Table.Replicating = fg(green).Bold(true)
	s.Table.NoRows = dim
	s.Table.FilterPrompt = fg(cyan).Bold(true)
	s.Table.FilterText = plain

	s.Status = map[fleet.Status]lipgloss.Style{
		fleet.StatusError:          fg(red).Bold(true),
		fleet.StatusInvalid:        fg(red),
		fleet.StatusUnknown:        dim,
		fleet.StatusFailed:         fg(red).Bold(true),
		fleet.StatusDiverged:       fg(red).Bold(true),
		fleet.StatusHostSilent:     fg(red).Bold(true),
		fleet.StatusLeaseLost:      fg(orange).Bold(true),
		fleet.StatusSyncFailing:    fg(red).Bold(true),
		fleet.StatusMissing:        fg(orange),
		fleet.StatusStarting:       fg(yellow),
		fleet.StatusLeased:         fg(magenta),
		fleet.StatusLagging:        fg(yellow).Bold(true),
		fleet.StatusNotReplicating: fg(orange),
		fleet.StatusRemoteOnly:     fg(cyan),
		fleet.StatusInSync:         fg(green),
	}
	if !withColor {
		// Without colour the alarming ones still stand out.
		s.Status[fleet.StatusError] = bold
		s.Status[fleet.StatusInvalid] = bold
		s.Status[fleet.StatusFailed] = bold
		s.Status[fleet.StatusDiverged] = bold
		s.Status[fleet.StatusHostSilent] = bold
		s.Status[fleet.StatusSyncFailing] = bold
		s.Status[fleet.StatusLagging] = bold
	}

	s.Footer.Key = bold
	s.Footer.Desc = dim
	s.Footer.Sep = dim
	s.Footer.Spinner = fg(cyan)
	s.Footer.Task = plain
	s.Footer.Info = plain
	s.Footer.Error = fg(red).Bold(true)

	s.Box.Frame = plain.Border(lipgloss.RoundedBorder()).Padding(0, 1)
	if withColor {
		s.Box.Frame = s.Box.Frame.BorderForeground(blue)
	}
	s.Box.Title = bold
	if withColor {
		s.Box.Title = fg(blue).Bold(true)
	}
	s.Box.Label = dim
	s.Box.Value = plain
	s.Box.Dim = dim
	s.Box.OK = fg(green).Bold(true)
	s.Box.Warn = fg(yellow).Bold(true)
	s.Box.Error = fg(red).Bold(true)
	s.Box.Choice = plain
	s.Box.Chosen = plain.Reverse(true)
	if withColor {
		s.Box.Chosen = plain.Background(cursor).Bold(true)
	}
	s.Box.Key = bold

	s.Detail.Title = bold
	s.Detail.Section = bold.Underline(true)
	if withColor {
		s.Detail.Section = fg(blue).Bold(true)
	}
	s.Detail.Label = dim
	s.Detail.Value = plain
	s.Detail.Dim = dim

	s.Log.Title = dim.Bold(true)
	s.Log.Time = dim
	s.Log.Process = plain
	s.Log.Action = fg(cyan)
	s.Log.Error = fg(red)
	s.Log.Cursor = s.Table.Cursor
	if !withColor {
		s.Log.Action = bold
		s.Log.Error = bold
	}

	s.Input.Prompt = fg(cyan).Bold(true)
	s.Input.Text = plain
	s.Input.Placeholder = dim

	if withColor {
		s.Progress.Full, s.Progress.Empty = green, gray
	}
	return s
}

// StatusStyle is the style of a status, plain for an unknown one.
func (s *Styles) StatusStyle(st fleet.Status) lipgloss.Style {
	if v, ok := s.Status[st]; ok {
		return v
	}
	return lipgloss.NewStyle()
}
