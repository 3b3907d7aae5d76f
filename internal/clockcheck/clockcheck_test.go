package clockcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestViolations: each way of reading the real clock is found, in the
// function it is in; the default clock's place and the exempt function
// are not, nor are test files.
func TestViolations(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.go", `package p

import tm "time"

var started = tm.Now()

type Options struct{ Now func() tm.Time }

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = tm.Now
	}
	return o
}

func since(t tm.Time) tm.Duration { return tm.Since(t) }

func until(t tm.Time) tm.Duration { return tm.Until(t) }

func stamp() int64 { return tm.Now().UnixMilli() }

func clock() func() tm.Time { return tm.Now }

func fine(o Options) tm.Time { return o.Now().Add(tm.Second) }
`)
	write("a_test.go", `package p

import "time"

func helper() time.Time { return time.Now() }
`)
	got, err := Violations(dir, []string{"withDefaults"}, map[string]string{"stamp": "a format's own stamp"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a.go:16: time.Since() called in since",
		"a.go:18: time.Until() called in until",
		"a.go:22: time.Now taken as a clock in clock",
		"a.go:5: time.Now() called in a package-level declaration",
	}
	if len(got) != len(want) {
		t.Fatalf("found %d:\n%s\nwant %d", len(got), strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("finding %d: %q, want it to begin %q", i, got[i], want[i])
		}
	}
}
