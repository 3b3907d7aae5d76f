package validate

import (
	"testing"
	"time"

	"github.com/litefleet/litefleet/tui/common"
	"github.com/litefleet/litefleet/tui/keymap"
	"github.com/litefleet/litefleet/tui/styles"
)

// The overlay's lines are laid out once per check and width, not at every
// frame: drawing it again reuses them.
func TestLinesBuiltOncePerCheck(t *testing.T) {
	now := time.Date(2026, 11, 26, 21, 20, 0, 0, time.UTC)
	c := &common.Common{Styles: styles.DefaultStyles(false), Keys: keymap.Default(false), Now: func() time.Time { return now },
		Tasks: &common.Tasks{}, Status: &common.Status{}, Log: &common.LogBook{}}
	m := New(c)
	m.Done(DoneMsg{ID: m.id, Findings: []common.Finding{
		{Side: "local", Kind: "fallback", Tenant: "default", Path: "/data/notes.db", Note: "file name notes.db is not a GUID: rename the file or pass -db-name"},
		{Side: "S3", Kind: "invalid", Tenant: "Bad\x1b[2J", Path: "s3://b/databases/Bad", Note: "holds control characters"},
	}})
	first := m.View(120, 36)
	if len(m.lines) == 0 {
		t.Fatal("no lines built")
	}
	built := &m.lines[0]
	for range 3 {
		if m.View(120, 36) != first || &m.lines[0] != built {
			t.Fatal("the overlay rebuilt its lines for a frame")
		}
	}
	m.View(80, 24) // another width: laid out again
	if &m.lines[0] == built {
		t.Fatal("a new width kept the old lines")
	}
	m.Done(DoneMsg{ID: m.id, Findings: nil})
	if m.View(80, 24); len(m.lines) != 0 {
		t.Fatalf("a new check kept the old lines: %q", m.lines)
	}
}
