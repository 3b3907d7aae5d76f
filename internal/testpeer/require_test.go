package testpeer

import (
	"fmt"
	"strings"
	"testing"
)

// recordTB records what Require asks of the test instead of doing it.
type recordTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordTB) Helper()                      {}
func (r *recordTB) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recordTB) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }

// TestRequireFailsInCI: a missing need skips the test on a developer's
// machine and fails it in CI, saying what is missing either way.
func TestRequireFailsInCI(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recordTB{TB: t}
		Require(r, true, "tmux")
		if r.fatal != "" || r.skip != "" {
			t.Fatalf("CI=%q: a met need did something: %+v", ci, r)
		}
		Require(r, false, "tmux")
		switch {
		case ci == "" && (r.fatal != "" || !strings.Contains(r.skip, "needs tmux")):
			t.Errorf("outside CI: fatal %q, skip %q; want a skip naming tmux", r.fatal, r.skip)
		case ci != "" && (r.skip != "" || !strings.Contains(r.fatal, "needs tmux")):
			t.Errorf("in CI: fatal %q, skip %q; want a failure naming tmux", r.fatal, r.skip)
		}
	}
}
