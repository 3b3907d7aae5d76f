package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/litefleet/litefleet/fleet"
	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/s3browse"
	"github.com/litefleet/litefleet/tenants"
)

// TestWriteViewJSON: the streamed `ls -json` is byte for byte what
// json.Encoder with a two-space indent writes for the whole view.
func TestWriteViewJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 21, 0, 0, 123, time.UTC)
	local := &tenants.Local{Size: 4096, WALSize: 10, Changed: at, TXID: 7, TXIDTime: at,
		L0: []tenants.LTXRef{{MinTXID: 6, MaxTXID: 7, ModTime: at}}, StateErr: "odd <state> & more"}
	local.Path, local.Name = "/data/a.db", "a"
	remote := &s3browse.TenantSummary{Levels: []s3browse.LevelStats{{Level: 0, Count: 2, MaxTXID: 7, MaxTXIDHex: layout.TXIDHex(7)}}}
	remote.Name, remote.Valid, remote.Format, remote.LatestTXID = "a", true, s3browse.FormatLTX, 7
	rows := []fleet.Row{
		{Tenant: "a", Status: fleet.StatusInSync, Local: local, Remote: remote, Lag: time.Second},
		{Tenant: "red\x1b[31m <b>", Status: fleet.StatusInvalid, Note: "contains ESC \u2028 é"},
		{Tenant: "b", Status: fleet.StatusRemoteOnly, Remote: &s3browse.TenantSummary{}},
	}
	for _, v := range []*fleet.View{
		{Rows: rows, Counts: fleet.Counts(rows), At: at, RemoteAt: at.Add(-time.Minute), RemoteErr: "S3 <down>", FromCache: true, LocalErr: "x"},
		{Rows: rows[:1], Counts: fleet.Counts(rows[:1]), At: at},
		{Rows: []fleet.Row{}, Counts: map[fleet.Status]int{}, At: at},
		{Rows: nil, At: at},
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := writeViewJSON(&got, v); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d rows:\ngot\n%s\nwant\n%s", len(v.Rows), got.String(), want.String())
		}
	}
}
