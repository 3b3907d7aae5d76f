package tui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
)

// checkFrame asserts that a screen is exactly w×h cells: a line too long
// wraps on a real terminal and scrolls the header away.
func checkFrame(t testing.TB, screen string, w, h int) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) != h {
		t.Fatalf("screen has %d lines, want %d:\n%s", len(lines), h, ansi.Strip(screen))
	}
	for i, l := range lines {
		if lw := ansi.StringWidth(l); lw != w {
			t.Fatalf("line %d is %d cells wide, want %d: %q", i+1, lw, w, ansi.Strip(l))
		}
	}
}
