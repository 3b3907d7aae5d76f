// Package clockcheck guards a package's one-clock rule from its tests: the
// non-test Go files of a package read the time only through the clock they
// were given, never by calling time.Now, time.Since or time.Until, and
// take time.Now as a value only where the default clock is defined.
package clockcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Violations parses the non-test Go files of dir and returns one line per
// read of the time outside the injected clock, as "file:line: what".
// defaults names the functions that may take time.Now as a value (the
// default clock); calls are allowed only in the functions of exempt, each
// with the reason the test keeps beside it.
func Violations(dir string, defaults []string, exempt map[string]string) ([]string, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	mayDefault := map[string]bool{}
	for _, f := range defaults {
		mayDefault[f] = true
	}
	var out []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		name := timeImport(f)
		if name == "" {
			continue
		}
		for _, decl := range f.Decls {
			fn := ""
			if d, ok := decl.(*ast.FuncDecl); ok {
				fn = d.Name.Name
			}
			called := map[*ast.SelectorExpr]bool{}
			ast.Inspect(decl, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if s, ok := c.Fun.(*ast.SelectorExpr); ok {
						called[s] = true
					}
				}
				s, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := s.X.(*ast.Ident); !ok || x.Name != name {
					return true
				}
				at := fmt.Sprintf("%s:%d", filepath.Base(path), fset.Position(s.Pos()).Line)
				switch sel := s.Sel.Name; {
				case called[s] && (sel == "Now" || sel == "Since" || sel == "Until"):
					if _, ok := exempt[fn]; !ok {
						out = append(out, fmt.Sprintf("%s: time.%s() called in %s: read the clock the package was given", at, sel, cmpOr(fn, "a package-level declaration")))
					}
				case !called[s] && sel == "Now" && !mayDefault[fn]:
					out = append(out, fmt.Sprintf("%s: time.Now taken as a clock in %s: only the default clock's place may", at, cmpOr(fn, "a package-level declaration")))
				}
				return true
			})
		}
	}
	sort.Strings(out)
	return out, nil
}

// timeImport is the name under which f imports package time, "" if not.
func timeImport(f *ast.File) string {
	for _, im := range f.Imports {
		if p, err := strconv.Unquote(im.Path.Value); err != nil || p != "time" {
			continue
		}
		if im.Name != nil {
			return im.Name.Name
		}
		return "time"
	}
	return ""
}

func cmpOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}
