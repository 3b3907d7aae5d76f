package layout_test

import (
	"path/filepath"
	"testing"

	"github.com/benbjohnson/litestream"

	"github.com/litefleet/litefleet/layout"
)

// TestLocalPathsAreLitestreams: the local state folder and LTX paths are
// where Litestream's DB keeps them, for a plain name, a hidden one and a
// name with dots.
func TestLocalPathsAreLitestreams(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"12345678-1234-5678-9abc-123456789012.db", ".hidden.db", "a.b.sqlite3"} {
		path := filepath.Join(dir, name)
		db := litestream.NewDB(path)
		if got, want := layout.LitestreamStateDir(path), db.MetaPath(); got != want {
			t.Errorf("LitestreamStateDir(%s) = %s, litestream's %s", name, got, want)
		}
		for _, level := range []int{0, 1, 9} {
			if got, want := layout.LTXLevelDir(layout.LitestreamStateDir(path), level), db.LTXLevelDir(level); got != want {
				t.Errorf("LTXLevelDir(%s, %d) = %s, litestream's %s", name, level, got, want)
			}
			if got, want := layout.LTXPath(layout.LitestreamStateDir(path), level, 2, 0xff), db.LTXPath(level, 2, 0xff); got != want {
				t.Errorf("LTXPath(%s, %d) = %s, litestream's %s", name, level, got, want)
			}
		}
	}
}
