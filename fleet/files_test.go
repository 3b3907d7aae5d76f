package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GUID tenant names of the tests (package tenants' discovery tests have
// the same).
const (
	g1 = "12345678-1234-5678-9abc-123456789012"
	g2 = "9f0c2a4e-7b1d-4c3e-8a5f-0d6e1b2c3a4f"
)

// sqlitePage is a first page as far as discovery looks: SQLite's magic
// string (package tenants' discovery tests have the same).
var sqlitePage = "SQLite format 3\x00" + strings.Repeat("\x00", 4096-16)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
