package common

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// Overlay draws box over base, a width×height region, centred across and
// a third of the way down, as k9s draws its dialogs over the table: the
// table stays in sight around it. Each covered line is the base's left
// part, the box's line and the base's right part, with the styles of each
// closed, so no colour leaks from one into the other.
func Overlay(base, box string, width, height int) string {
	lines := strings.Split(PadLines(base, width, height), "\n")
	boxLines := strings.Split(box, "\n")
	bw := lipgloss.Width(box)
	x, y := max((width-bw)/2, 0), max((height-len(boxLines))/3, 0)
	const reset = "\x1b[m"
	for i, bl := range boxLines {
		row := y + i
		if row >= len(lines) {
			break
		}
		l := lines[row]
		left := ansi.Truncate(l, x, "")
		right := ""
		if x+bw < width {
			right = ansi.TruncateLeft(l, x+bw, "")
		}
		bl = Cut(bl, width-x)
		lines[row] = left + reset + bl + reset + right
	}
	return strings.Join(lines, "\n")
}

// BoxWidth is the width of an overlay on a screen width cells wide: most
// of it on a narrow terminal, at most max on a wide one.
func BoxWidth(width, maxWidth int) int {
	return max(min(width-4, maxWidth), 20)
}
