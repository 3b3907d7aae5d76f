package hosts_test

import (
	"encoding/json"
	"github.com/litefleet/litefleet/layout"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/clockcheck"
)

// TestOneClock: the host protocol reads the time only through the clock
// it is given (Options.Now, List's now, an Observer's); time.Now is the
// default in those three places alone.
func TestOneClock(t *testing.T) {
	bad, err := clockcheck.Violations(".", []string{"New", "List", "NewObserver"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("hosts reads the time outside its clock:\n%s", strings.Join(bad, "\n"))
	}
}

// TestBeaterReadsOnlyItsClock: with its clock five years ahead of the real
// one, a host's heartbeat, last beat, write deadline and fence are all on
// that clock: the real one would start the heartbeat now, and fence the
// host, or never, at the wrong time.
func TestBeaterReadsOnlyItsClock(t *testing.T) {
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &clock{now: at}
	m := newMem(c)
	b := beater(t, m, c, "host-a")
	var hb hosts.Heartbeat
	m.mu.Lock()
	err := json.Unmarshal(m.objects[layout.HeartbeatKey("host-a")].body, &hb)
	m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !hb.At.Equal(at) || !hb.Started.Equal(at) {
		t.Fatalf("heartbeat started %s at %s, want both at the clock's %s", hb.Started, hb.At, at)
	}
	if last, _ := b.LastBeat(); !last.Equal(at) {
		t.Fatalf("last beat %s, want the clock's %s", last, at)
	}
	timing := b.Timing()
	if d, want := b.WriteDeadline(), at.Add(timing.DeadAfter-timing.WriteMargin); !d.Equal(want) {
		t.Fatalf("write deadline %s, want %s on the clock", d, want)
	}
	c.Add(timing.FenceAfter - time.Millisecond)
	if b.Fenced() {
		t.Fatal("fenced before FenceAfter on its clock")
	}
	c.Add(time.Millisecond)
	if !b.Fenced() {
		t.Fatal("not fenced FenceAfter after its last beat on its clock")
	}
}
