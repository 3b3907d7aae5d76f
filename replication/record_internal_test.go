package replication

import (
	"testing"

	"github.com/litefleet/litefleet/hosts"
)

// TestHostRecordDelta: the record's delta holds exactly the entries that
// differ from the record last written whole (a change, a new tenant, a
// tenant gone), drops one that changed back, ignores a lag that moved
// within its second, and counts a change only when there is one.
func TestHostRecordDelta(t *testing.T) {
	r := newHostRecord()
	a, b, c := &tenant{name: "a"}, &tenant{name: "b"}, &tenant{name: "c"}
	sleepA := hosts.TenantRecord{Name: "a", State: "sleeping", Local: 5, Replicated: 5}
	sleepB := hosts.TenantRecord{Name: "b", State: "sleeping", Local: 7, Replicated: 7}
	r.full = map[*tenant]hosts.TenantRecord{a: sleepA, b: sleepB}

	r.note(a, sleepA, true)
	if len(r.delta) != 0 || r.ver != 0 {
		t.Fatalf("an unchanged entry made a delta: %v (ver %d)", r.delta, r.ver)
	}
	awake := hosts.TenantRecord{Name: "a", State: "replicating", Local: 6, Replicated: 5, LagMillis: 1200}
	r.note(a, awake, true)
	if got := r.delta[a]; got != awake || r.ver != 1 || !r.lagging[a] {
		t.Fatalf("a's change: delta %+v, ver %d, lagging %v", got, r.ver, r.lagging[a])
	}
	awake.LagMillis = 1900 // the same second: not a change
	r.note(a, awake, true)
	if r.ver != 1 {
		t.Fatalf("a lag within its second counted as a change (ver %d)", r.ver)
	}
	r.note(a, sleepA, true) // back as the whole record says
	if _, ok := r.delta[a]; ok || r.ver != 2 || r.lagging[a] {
		t.Fatalf("a changed back: still in the delta %v (ver %d, lagging %v)", r.delta, r.ver, r.lagging[a])
	}
	r.note(b, hosts.TenantRecord{}, false)
	if got := r.delta[b]; !got.Gone || got.Name != "b" {
		t.Fatalf("b gone: delta entry %+v, want a Gone entry named b", got)
	}
	r.note(b, hosts.TenantRecord{}, false)
	if r.ver != 3 {
		t.Fatalf("b gone twice counted twice (ver %d)", r.ver)
	}
	newC := hosts.TenantRecord{Name: "c", State: "starting"}
	r.note(c, newC, true)
	if got := r.delta[c]; got != newC {
		t.Fatalf("new tenant c: delta entry %+v", got)
	}
	r.note(c, hosts.TenantRecord{}, false) // gone before any whole record named it
	if _, ok := r.delta[c]; ok {
		t.Fatalf("c, never in the whole record, left a Gone entry: %+v", r.delta[c])
	}
	if len(r.delta) != 1 {
		t.Fatalf("delta %v, want b's Gone entry alone", r.delta)
	}
}
