package s3browse

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/litefleet/litefleet/layout"
)

// TestJSONShape pins the JSON field names: `litefleet ls -json` and
// `inspect -json` print these types and the README documents them, so a
// rename is a breaking change and must show up here.
func TestJSONShape(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	summary := TenantSummary{
		Prefix:   Prefix{Name: "t1", Valid: true},
		Totals:   Totals{Format: FormatLTX, Objects: 3, Bytes: 300, LatestTXID: 255, LatestTXIDHex: layout.TXIDHex(255), LatestLTXAt: at, LatestAt: at, Snapshots: 1},
		Levels:   []LevelStats{{Level: 0, Count: 1, Bytes: 100, MaxTXID: 255, MaxTXIDHex: layout.TXIDHex(255)}},
		HasLease: true, LeaseModifiedAt: at,
	}
	tenant := Tenant{
		Name: "t1", URL: "s3://b/databases/t1",
		Totals: Totals{Format: FormatGenerations, Objects: 2, Bytes: 20, LatestAt: at, Snapshots: 1, WALSegments: 1},
		Levels: []Level{{LevelStats{Level: 9, Count: 1, Bytes: 10, MaxTXID: 2, MaxTXIDHex: layout.TXIDHex(2)},
			[]LTXFile{{Level: 9, MinTXID: 1, MaxTXID: 2, MinTXIDHex: layout.TXIDHex(1), MaxTXIDHex: layout.TXIDHex(2), Size: 10, ModifiedAt: at}}}},
		Generations: []Generation{{ID: "0123456789abcdef", FirstAt: at, LastAt: at, Bytes: 20,
			Snapshots: []Snapshot{{Index: 0, Size: 10, ModifiedAt: at}}, WALSegments: []WALSegment{{Index: 0, Offset: 4096, Size: 10, ModifiedAt: at}}}},
		Lease: &Lease{Owner: "host:1", Generation: 2, ExpiresAt: at, ModifiedAt: at, Size: 90},
	}
	invalid := TenantSummary{Prefix: newPrefix("a/b"), Totals: Totals{Format: FormatEmpty}, Levels: []LevelStats{}}
	for _, tt := range []struct {
		v    any
		want string
	}{
		{summary, `{"name":"t1","valid":true,"format":"ltx","objects":3,"bytes":300,"unknown_objects":0,` +
			`"latest_txid":255,"latest_txid_hex":"00000000000000ff","latest_ltx_at":"2025-03-01T12:00:00Z",` +
			`"latest_at":"2025-03-01T12:00:00Z","snapshots":1,"wal_segments":0,` +
			`"levels":[{"level":0,"count":1,"bytes":100,"max_txid":255,"max_txid_hex":"00000000000000ff"}],` +
			`"generations":0,"has_lease":true,"lease_modified_at":"2025-03-01T12:00:00Z"}`},
		{invalid, `{"name":"a/b","valid":false,"problem":"contains the path separator '/'","format":"empty","objects":0,"bytes":0,` +
			`"unknown_objects":0,"latest_txid":0,"snapshots":0,"wal_segments":0,"levels":[],"generations":0,"has_lease":false}`},
		{tenant, `{"name":"t1","url":"s3://b/databases/t1","format":"generations","objects":2,"bytes":20,"unknown_objects":0,` +
			`"latest_txid":0,"latest_at":"2025-03-01T12:00:00Z","snapshots":1,"wal_segments":1,` +
			`"levels":[{"level":9,"count":1,"bytes":10,"max_txid":2,"max_txid_hex":"0000000000000002","files":[` +
			`{"level":9,"min_txid":1,"max_txid":2,"min_txid_hex":"0000000000000001","max_txid_hex":"0000000000000002","size":10,"modified_at":"2025-03-01T12:00:00Z"}]}],` +
			`"generations":[{"id":"0123456789abcdef","first_at":"2025-03-01T12:00:00Z","last_at":"2025-03-01T12:00:00Z","bytes":20,` +
			`"snapshots":[{"index":0,"size":10,"modified_at":"2025-03-01T12:00:00Z"}],` +
			`"wal_segments":[{"index":0,"offset":4096,"size":10,"modified_at":"2025-03-01T12:00:00Z"}]}],` +
			`"lease":{"owner":"host:1","generation":2,"expires_at":"2025-03-01T12:00:00Z","modified_at":"2025-03-01T12:00:00Z","size":90}}`},
		{Tenant{Name: "n", Totals: Totals{Format: FormatEmpty}, Levels: []Level{}, Generations: []Generation{}},
			`{"name":"n","url":"","format":"empty","objects":0,"bytes":0,"unknown_objects":0,"latest_txid":0,"snapshots":0,"wal_segments":0,"levels":[],"generations":[],"lease":null}`},
	} {
		got, err := json.Marshal(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("JSON\n got %s\nwant %s", got, tt.want)
		}
	}
}
