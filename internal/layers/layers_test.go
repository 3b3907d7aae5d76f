// Package layers holds the test that keeps litefleet's package arrows
// pointing down: ARCHITECTURE.md's table of layers is this file's, checked
// against every import the code has.
package layers

import (
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/litefleet/litefleet/"

// layer of each package (a folder and what is under it): a package may
// import only packages of a lower layer. Keep ARCHITECTURE.md's table the
// same.
var layer = map[string]int{
	"untrusted":     0,
	"dbfile":        0,
	"layout":        0,
	"logline":       0,
	"hosts":         1,
	"s3conn":        1,
	"s3browse":      2,
	"tenants":       3,
	"hostview":      3,
	"fleet":         4,
	"conf":          4,
	"access":        4,
	"policy":        4,
	"restore":       4,
	"verify":        5,
	"replication":   6,
	"monitor":       7,
	"tui":           7,
	"cmd/litefleet": 8,
}

// layerOf is the layer of a package path relative to the module ("" and
// false for one outside the table: tests' and benchmarks' harnesses).
func layerOf(rel string) (string, int, bool) {
	for p, l := range layer {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return p, l, true
		}
	}
	return "", 0, false
}

func TestArrowsPointDown(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]bool{} // one line per arrow, not per file
	seen := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		// Test files may reach up (a package's tests drive it through
		// the binary or the engine); the code itself may not.
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		from, fl, ok := layerOf(rel)
		if !ok {
			return nil
		}
		seen[from] = true
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if !strings.HasPrefix(p, module) {
				continue
			}
			to, tl, ok := layerOf(strings.TrimPrefix(p, module))
			switch {
			case !ok:
				if !strings.HasPrefix(strings.TrimPrefix(p, module), "internal/") {
					bad[rel+" imports "+p+", which has no layer: add it to the table"] = true
				}
			case to == from:
			case tl >= fl:
				bad[rel+" ("+strconv.Itoa(fl)+") imports "+to+" ("+strconv.Itoa(tl)+"): an arrow up or sideways"] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range layer {
		if !seen[p] {
			bad["no Go files found for "+p+": the table names a package that is gone"] = true
		}
	}
	for _, b := range slices.Sorted(maps.Keys(bad)) {
		t.Error(b)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s", root)
	}
}
