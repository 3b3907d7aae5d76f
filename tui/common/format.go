package common

import (
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/dustin/go-humanize"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/layout"
)

// Bytes prints n compactly, in binary units: 0B, 812B, 4.0K, 38K, 1.2M,
// 3.4G. It is go-humanize's IBytes, the command line's format, without its
// space and "iB": table cells are narrow.
func Bytes(n int64) string {
	s := strings.Replace(humanize.IBytes(uint64(max(n, 0))), " ", "", 1)
	return strings.TrimSuffix(s, "iB")
}

// Duration prints d in its largest unit: 850ms, 42s, 5m, 3h, 2d
// (fleet.Duration: the command line prints the same).
func Duration(d time.Duration) string { return fleet.Duration(d) }

// Ago prints how long before now t was, or "" for the zero time.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return Duration(now.Sub(t)) + " ago"
}

// Stamp prints t in UTC to the second, as the CLI's -timestamp takes it.
func Stamp(t time.Time) string { return fleet.Stamp(t) }

// TXID prints a Litestream transaction ID the one way litefleet shows it
// where there is room: decimal, then the 16 hex digits of LTX file names
// and `restore -txid`, as in "1841 (0000000000000731)". Narrow table
// cells show the decimal alone.
func TXID(txid uint64) string {
	if txid == 0 {
		return "-"
	}
	return strconv.FormatUint(txid, 10) + " (" + layout.TXIDHex(txid) + ")"
}

// StampNano prints t in UTC with every sub-second digit it has: a point in
// time given to a restore must come back as the same point.
func StampNano(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Middle shortens s (plain text, no escapes) to at most w cells by taking
// cells out of its middle, marked with "…": both ends of a name tell it
// apart from its neighbours (the last digits of a GUID), so neither is cut.
func Middle(s string, w int) string {
	sw := ansi.StringWidth(s)
	switch {
	case sw <= w:
		return s
	case w <= 0:
		return ""
	case w == 1:
		return "…"
	}
	tail := (w - 1) / 2
	head := ansi.Truncate(s, w-1-tail, "")
	// A wide rune that does not fit leaves the head a cell short: give the
	// cell to the tail.
	tail = w - 1 - ansi.StringWidth(head)
	end := ansi.TruncateLeft(s, sw-tail, "")
	for cut := sw - tail + 1; ansi.StringWidth(end) > tail; cut++ {
		end = ansi.TruncateLeft(s, cut, "") // a wide rune straddled the cut
	}
	return head + "…" + end
}

// FitMiddle is Fit for names: a cut is made in the middle.
func FitMiddle(s string, w int, right bool) string {
	return Fit(Middle(s, w), w, right)
}

// Fit pads or cuts s (plain text, no escapes) to exactly w cells; a cut is
// marked with "…". Right-aligned when right is set.
func Fit(s string, w int, right bool) string {
	if w <= 0 {
		return ""
	}
	sw := ansi.StringWidth(s)
	if sw > w {
		return ansi.Truncate(s, w, "…")
	}
	pad := strings.Repeat(" ", w-sw)
	if right {
		return pad + s
	}
	return s + pad
}

// Cut shortens s (which may hold escapes) to at most w cells.
func Cut(s string, w int) string {
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// PadLines makes s exactly h lines of exactly w cells, so that a region of
// the screen keeps its size whatever it holds.
func PadLines(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		lw := ansi.StringWidth(l)
		switch {
		case lw > w:
			lines[i] = ansi.Truncate(l, w, "")
		case lw < w:
			lines[i] = l + strings.Repeat(" ", w-lw)
		}
	}
	for len(lines) < h {
		lines = append(lines, strings.Repeat(" ", w))
	}
	return strings.Join(lines, "\n")
}

// Spread puts left and right (styled) at the two ends of a width-wide
// line; when both do not fit, the left side wins.
func Spread(left, right string, width int) string {
	lw, rw := lipgloss.Width(left), lipgloss.Width(right)
	if lw+1+rw > width {
		left = Cut(left, width)
		return left + strings.Repeat(" ", max(width-lipgloss.Width(left), 0))
	}
	return left + strings.Repeat(" ", width-lw-rw) + right
}
