package hosts_test

import (
	"context"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
)

// TestDeltaRecordApplied: a delta record written beside a host's record
// replaces, adds and removes entries as ReadRecord reads it, and the
// listing says it is there; a delta written against an older record, or
// older than the record, is left out and the record stands alone.
func TestDeltaRecordApplied(t *testing.T) {
	ctx := context.Background()
	b := newBucket(t)
	bt := b.started(t, "web-1")
	at := time.Now().UTC().Truncate(time.Millisecond)
	full := &hosts.Record{At: at, Tenants: []hosts.TenantRecord{
		{Name: "a", State: "sleeping", Local: 5, Replicated: 5},
		{Name: "b", State: "sleeping", Local: 7, Replicated: 7},
		{Name: "c", State: "failed", Reason: "permission denied"},
	}}
	if err := bt.Publish(ctx, full); err != nil {
		t.Fatal(err)
	}
	delta := &hosts.Record{At: at.Add(10 * time.Second), Base: at, Tenants: []hosts.TenantRecord{
		{Name: "a", State: "replicating", Local: 9, Replicated: 8, LagMillis: 1500},
		{Name: "c", Gone: true},
		{Name: "d", State: "starting"},
	}}
	if err := bt.Publish(ctx, delta); err != nil {
		t.Fatal(err)
	}
	got, err := hosts.ReadRecord(ctx, b.api, b.name, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]hosts.TenantRecord{
		"a": {Name: "a", State: "replicating", Local: 9, Replicated: 8, LagMillis: 1500},
		"b": {Name: "b", State: "sleeping", Local: 7, Replicated: 7},
		"d": {Name: "d", State: "starting"},
	}
	if !got.Delta || !got.At.Equal(delta.At) {
		t.Errorf("read record: delta applied %v, at %v; want true, %v", got.Delta, got.At, delta.At)
	}
	if len(got.Tenants) != len(want) {
		t.Fatalf("read %d entries, want %d: %+v", len(got.Tenants), len(want), got.Tenants)
	}
	for _, tr := range got.Tenants {
		if w, ok := want[tr.Name]; !ok || w != tr {
			t.Errorf("entry %+v, want %+v", tr, w)
		}
	}
	list, err := hosts.List(ctx, b.api, b.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := list["web-1"]; !h.HasRecord || !h.HasDelta || h.DeltaSize == 0 {
		t.Errorf("listing: %+v, want the record and its delta", h)
	}

	// A new record, written whole: the old delta (its base another
	// record's time) is ignored.
	full2 := &hosts.Record{At: at.Add(20 * time.Second), Tenants: []hosts.TenantRecord{{Name: "e", State: "sleeping"}}}
	if err := bt.Publish(ctx, full2); err != nil {
		t.Fatal(err)
	}
	got, err = hosts.ReadRecord(ctx, b.api, b.name, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Delta || len(got.Tenants) != 1 || got.Tenants[0].Name != "e" {
		t.Errorf("after a whole record, read %+v (delta %v), want e alone", got.Tenants, got.Delta)
	}
	// A delta newer than the record but for another one (written by a
	// racing or confused writer): the record stands alone.
	if err := bt.Publish(ctx, &hosts.Record{At: at.Add(30 * time.Second), Base: at.Add(5 * time.Second), Tenants: []hosts.TenantRecord{{Name: "f", State: "sleeping"}}}); err != nil {
		t.Fatal(err)
	}
	got, err = hosts.ReadRecord(ctx, b.api, b.name, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Delta || len(got.Tenants) != 1 || got.Tenants[0].Name != "e" {
		t.Errorf("with a delta of another record, read %+v (delta %v), want e alone", got.Tenants, got.Delta)
	}
}
