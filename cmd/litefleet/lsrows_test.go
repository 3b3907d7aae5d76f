package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
)

// The rows of `ls` built from a host record: LAG is the row's LOCAL TXID
// minus its REMOTE TXID (the "16  10  0 tx" is 6 tx), the remote
// TXID says how old the record is, a size the record does not know is
// "—", and an unknown lag is "?", never "0 tx".
func TestLsRowsFromHostRecords(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	rec := func(txid uint64) *s3browse.TenantSummary {
		s := &s3browse.TenantSummary{Source: s3browse.SourceHostRecord}
		s.Format, s.LatestTXID, s.LatestAt = s3browse.FormatLTX, txid, at.Add(-20*time.Second)
		return s
	}
	local := &tenants.Local{TXID: 16, Size: 4096, Changed: at}
	rows := []fleet.Row{
		{Tenant: "here", Status: fleet.StatusInSync, Local: local, Remote: rec(10), LagTXIDs: 6, Lag: 3 * time.Second,
			Host: "web-1", State: "replicating", RecordAge: 12 * time.Second, HostLocalTXID: 10},
		{Tenant: "there", Status: fleet.StatusSyncFailing, Note: "host web-2: sync failing for 14s: upload to S3 failed", Remote: rec(10), LagTXIDs: 11,
			Host: "web-2", State: "sync failing", RecordAge: 2 * time.Second, HostLocalTXID: 21},
		{Tenant: "unknown", Status: fleet.StatusNotReplicating, Local: &tenants.Local{}, Remote: rec(10), LagUnknown: "no local Litestream state"},
	}
	var out bytes.Buffer
	if err := printRows(&out, &fleet.View{Rows: rows, At: at, Counts: fleet.Counts(rows)}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	fields := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix+" ") {
				return strings.Join(strings.Fields(l), " ")
			}
		}
		t.Fatalf("no row %s in\n%s", prefix, out.String())
		return ""
	}
	if got := fields("here"); !strings.Contains(got, " 16 10 as of 12s ago 6 tx / 3s ") {
		t.Errorf("row here: %q, want LOCAL 16, REMOTE 10 as of 12s ago, LAG 6 tx / 3s", got)
	}
	if got := fields("there"); !strings.Contains(got, "sync failing web-2 sync failing 21 10 as of 2s ago 11 tx") || !strings.Contains(got, " — ") {
		t.Errorf("row there: %q, want the host's local TXID 21, 11 tx behind, SIZE —", got)
	}
	if got := fields("unknown"); !strings.Contains(got, " - 10 as of ") || !strings.Contains(got, " ago ? ") || strings.Contains(got, "0 tx") {
		t.Errorf("row unknown: %q, want LAG ?, never 0 tx", got)
	}
	if !strings.Contains(out.String(), "1 sync failing") {
		t.Errorf("summary does not count sync failing:\n%s", out.String())
	}
}
