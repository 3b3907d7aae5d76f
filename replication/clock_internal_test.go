package replication

import (
	"testing"
	"time"
)

// deadlineGate lets a tenant write until a fixed fencing deadline.
type deadlineGate struct{ d time.Time }

func (g deadlineGate) writeDeadline() (time.Time, error) { return g.d, nil }
func (g deadlineGate) conditional() bool                 { return true }

// TestBudgetOnTheEnginesClock: a request's budget is the fencing deadline
// less the engine's clock, not the real one: with the clock in 2031, a
// deadline ten seconds after it leaves ten seconds.
func TestBudgetOnTheEnginesClock(t *testing.T) {
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &tenantClient{gate: deadlineGate{d: at.Add(10 * time.Second)}, now: func() time.Time { return at }}
	if got, err := c.budget(); err != nil || got != 10*time.Second {
		t.Fatalf("budget %s (%v), want 10s on the engine's clock", got, err)
	}
}
