package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/litefleet/litefleet/hosts"
	"github.com/litefleet/litefleet/internal/s3test"
	"github.com/litefleet/litefleet/layout"
)

// A host's delta record is applied by the view: a tenant's newer state
// and position come from it, and a refresh reads the delta again when it
// changed, not the whole record.
func TestRefreshAppliesDeltaRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	srv := s3test.Start(t)
	conn := srv.Conn(t)
	client := srv.Client(t, conn)
	putTenant(t, client, conn, gA, 4)
	putTenant(t, client, conn, gB, 3)
	at := time.Now().UTC().Add(-time.Minute)
	putHost(t, client, conn.Bucket, &hosts.Record{Host: "web-1", At: at, Tenants: []hosts.TenantRecord{
		{Name: gA, State: "sleeping", Local: 4, Replicated: 4},
		{Name: gB, State: "sleeping", Local: 3, Replicated: 3},
	}})
	putDelta := func(recAt time.Time, trs ...hosts.TenantRecord) {
		t.Helper()
		body, err := hosts.EncodeRecord(&hosts.Record{Host: "web-1", At: recAt, Base: at, Tenants: trs})
		if err != nil {
			t.Fatal(err)
		}
		put(t, client, conn.Bucket, layout.DeltaKey("web-1"), body)
	}
	putDelta(at.Add(10*time.Second), hosts.TenantRecord{Name: gA, State: "replicating", Local: 6, Replicated: 4, LagMillis: 2000})

	api := &countingAPI{API: client}
	fl := &Fleet{Conn: conn, API: api}
	row := func(name string) Row {
		t.Helper()
		v, err := fl.Refresh(context.Background())
		if err != nil || v.RemoteErr != "" {
			t.Fatalf("refresh: %v %s", err, v.RemoteErr)
		}
		for _, r := range v.Rows {
			if r.Tenant == name {
				return r
			}
		}
		t.Fatalf("no row for %s: %+v", name, v.Rows)
		return Row{}
	}
	if r := row(gA); r.State != "replicating" || r.LagTXIDs != 2 || r.Host != "web-1" {
		t.Errorf("%s: state %q, lag %d tx, host %q; want the delta's replicating, 2 behind, web-1", gA, r.State, r.LagTXIDs, r.Host)
	}
	if _, gets := api.take(); gets != 2 {
		t.Errorf("first refresh: %d GETs, want 2 (the record and its delta)", gets)
	}
	putDelta(at.Add(20*time.Second),
		hosts.TenantRecord{Name: gA, State: "sleeping", Local: 6, Replicated: 6},
		hosts.TenantRecord{Name: gB, State: "failed", Reason: "open database: permission denied", Local: 3, Replicated: 3})
	if r := row(gB); r.State != "failed" {
		t.Errorf("%s after the new delta: state %q, want failed", gB, r.State)
	}
	// A changed delta is read with its record (the cache is per host).
	if _, gets := api.take(); gets != 2 {
		t.Errorf("refresh after a new delta: %d GETs, want 2", gets)
	}
	row(gA)
	if _, gets := api.take(); gets != 0 {
		t.Errorf("refresh with nothing changed: %d GETs, want 0", gets)
	}
}
