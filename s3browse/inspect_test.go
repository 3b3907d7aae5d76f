package s3browse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/litefleet/litefleet/layout"
	"github.com/litefleet/litefleet/untrusted"
)

func TestInspectLTX(t *testing.T) {
	f := newFakeS3(t)
	keys := []string{
		ltxKey("t", 0, 1, 1), ltxKey("t", 0, 2, 3), ltxKey("t", 1, 1, 3), ltxKey("t", 9, 1, 3),
		ltxKey("t", 0, 4, 4), "databases/t/junk",
		// Neighbours sharing the name's first letters must not leak in.
		ltxKey("t-b", 0, 1, 99), ltxKey("tt", 0, 1, 99),
	}
	f.put(t, keys...)
	lease := `{"generation":7,"expires_at":"2025-03-01T12:00:30Z","owner":"host-a:123"}`
	f.putBody(t, "databases/t/lock.json", []byte(lease)) // object 8

	spy := &spyAPI{API: f.client, maxKeys: 2}
	got, err := Inspect(context.Background(), spy, f.conn, "t")
	if err != nil {
		t.Fatal(err)
	}
	file := func(level int, minTXID, maxTXID uint64, n int) LTXFile {
		return LTXFile{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, MinTXIDHex: layout.TXIDHex(minTXID), MaxTXIDHex: layout.TXIDHex(maxTXID), Size: fakeSize, ModifiedAt: tN(n)}
	}
	want := &Tenant{
		Name: "t", URL: "s3://fleet/databases/t",
		Totals: Totals{Format: FormatLTX, Objects: 7, Bytes: 5*fakeSize + 1 + int64(len(lease)), UnknownObjects: 1,
			LatestTXID: 4, LatestTXIDHex: "0000000000000004", LatestLTXAt: tN(4), LatestAt: tN(4), Snapshots: 1},
		Levels: []Level{
			{LevelStats{Level: 0, Count: 3, Bytes: 3 * fakeSize, MaxTXID: 4, MaxTXIDHex: layout.TXIDHex(4)}, []LTXFile{file(0, 1, 1, 0), file(0, 2, 3, 1), file(0, 4, 4, 4)}},
			{LevelStats{Level: 1, Count: 1, Bytes: fakeSize, MaxTXID: 3, MaxTXIDHex: layout.TXIDHex(3)}, []LTXFile{file(1, 1, 3, 2)}},
			{LevelStats{Level: 9, Count: 1, Bytes: fakeSize, MaxTXID: 3, MaxTXIDHex: layout.TXIDHex(3)}, []LTXFile{file(9, 1, 3, 3)}},
		},
		Generations: []Generation{},
		Lease: &Lease{Owner: "host-a:123", Generation: 7, ExpiresAt: tN(30), ModifiedAt: tN(8),
			Size: int64(len(lease))},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Inspect:\n got %+v\nwant %+v", got, want)
		t.Logf("lease got %+v want %+v", got.Lease, want.Lease)
	}
	if spy.gets != 1 {
		t.Errorf("%d GETs, want 1 (lock.json)", spy.gets)
	}
	if !got.Lease.Expired(tN(30)) || got.Lease.Expired(tN(29)) {
		t.Error("Lease.Expired is wrong at the expiry boundary")
	}
}

func TestInspectGenerations(t *testing.T) {
	f := newFakeS3(t)
	const older, newer = "ffffffffffffffff", "0000000000000001"
	f.put(t,
		// The older generation has the larger ID, so order by time shows.
		snapshotKey("t", older, 0), walKey("t", older, 1, 4096), walKey("t", older, 0, 0), walKey("t", older, 1, 0),
		snapshotKey("t", newer, 2), walKey("t", newer, 2, 0), snapshotKey("t", newer, 3),
	)
	got, err := Inspect(context.Background(), f.client, f.conn, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatGenerations || got.Snapshots != 3 || got.WALSegments != 4 || got.LatestAt != tN(6) || got.LatestTXID != 0 || got.LatestTXIDHex != "" {
		t.Errorf("totals %+v", got.Totals)
	}
	if len(got.Levels) != 0 || got.Lease != nil {
		t.Errorf("levels %v lease %v, want none", got.Levels, got.Lease)
	}
	// gofakes3 lists keys in byte order, so the newer generation's objects
	// (IDs 0000...) come first: the order below is Inspect's doing.
	want := []Generation{
		{ID: older, FirstAt: tN(0), LastAt: tN(3), Bytes: 4,
			Snapshots:   []Snapshot{{Index: 0, Size: 1, ModifiedAt: tN(0)}},
			WALSegments: []WALSegment{{0, 0, 1, tN(2)}, {1, 0, 1, tN(3)}, {1, 4096, 1, tN(1)}}},
		{ID: newer, FirstAt: tN(4), LastAt: tN(6), Bytes: 3,
			Snapshots:   []Snapshot{{Index: 2, Size: 1, ModifiedAt: tN(4)}, {Index: 3, Size: 1, ModifiedAt: tN(6)}},
			WALSegments: []WALSegment{{2, 0, 1, tN(5)}}},
	}
	if !reflect.DeepEqual(got.Generations, want) {
		t.Errorf("generations:\n got %+v\nwant %+v", got.Generations, want)
	}
}

func TestInspectLease(t *testing.T) {
	tests := []struct {
		name  string
		body  []byte
		owner string
		gen   int64
		err   string // substring of Lease.Error
	}{
		{name: "litestream lease", body: []byte(`{"generation":3,"expires_at":"2025-03-01T12:00:30Z","owner":"db-host:42"}`), owner: "db-host:42", gen: 3},
		{name: "no owner", body: []byte(`{"generation":1,"expires_at":"2025-03-01T12:00:30Z"}`), gen: 1},
		{name: "hostile owner kept raw", body: []byte(`{"generation":1,"owner":"evil\u001b]0;x\u0007"}`), owner: "evil\x1b]0;x\a", gen: 1},
		{name: "not JSON", body: []byte("\x1b[31mnot json"), err: "decode lock.json"},
		{name: "wrong types", body: []byte(`{"generation":"three"}`), err: "decode lock.json"},
		{name: "empty", body: []byte{}, err: "decode lock.json"},
		{name: "too large", body: bytes.Repeat([]byte(" "), maxLeaseBytes+1), err: "lock.json is over 64 KiB, where a lease is about 200 bytes: ignored, it holds nothing; delete databases/t/lock.json if no replicator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeS3(t)
			f.putBody(t, "databases/t/lock.json", tt.body)
			got, err := Inspect(context.Background(), f.client, f.conn, "t")
			if err != nil {
				t.Fatal(err)
			}
			l := got.Lease
			if l == nil {
				t.Fatal("no lease")
			}
			if got.Format != FormatEmpty || l.ModifiedAt != tN(0) || l.Size != int64(len(tt.body)) {
				t.Errorf("format %s, lease %+v", got.Format, l)
			}
			if tt.err != "" {
				if !strings.Contains(l.Error, tt.err) {
					t.Errorf("Error = %q, want %q", l.Error, tt.err)
				}
				assertSafe(t, l.Error)
				return
			}
			if l.Error != "" || l.Owner != tt.owner || l.Generation != tt.gen {
				t.Errorf("lease %+v", l)
			}
			assertSafe(t, untrusted.Printable(l.Owner))
		})
	}
}

func TestInspectRefusesInvalidNames(t *testing.T) {
	f := newFakeS3(t)
	for _, name := range []string{"", ".", "..", "a/b", "../etc", "x\x1b[2J", "bad\xff", strings.Repeat("a", 256)} {
		spy := &spyAPI{API: f.client}
		_, err := Inspect(context.Background(), spy, f.conn, name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("Inspect(%s) = %v, want ErrInvalidName", untrusted.Printable(name), err)
		}
		if err != nil {
			assertSafe(t, err.Error())
		}
		if spy.lists+spy.gets != 0 {
			t.Errorf("Inspect(%s) made %d requests", untrusted.Printable(name), spy.lists+spy.gets)
		}
	}
}

func TestInspectAbsentTenant(t *testing.T) {
	f := newFakeS3(t)
	f.put(t, ltxKey("other", 0, 1, 1))
	got, err := Inspect(context.Background(), f.client, f.conn, "12345678-1234-5678-9abc-123456789012")
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatEmpty || got.Objects != 0 || got.Lease != nil || got.Levels == nil || got.Generations == nil {
		t.Errorf("%+v", got)
	}
}

// TestInspectManyKeys pages through more than 1,000 files of one tenant.
func TestInspectManyKeys(t *testing.T) {
	f := newFakeS3(t)
	const n = 1500
	var keys []string
	for i := range n {
		keys = append(keys, ltxKey("t", 0, uint64(i+1), uint64(i+1)))
	}
	f.put(t, keys...)
	spy := &spyAPI{API: f.client}
	got, err := Inspect(context.Background(), spy, f.conn, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Levels) != 1 || len(got.Levels[0].Files) != n || got.LatestTXID != n || spy.lists != 2 {
		t.Errorf("levels %d, files %d, latest %d, %d requests", len(got.Levels), len(got.Levels[0].Files), got.LatestTXID, spy.lists)
	}
}

func TestInspectMany(t *testing.T) {
	f := newFakeS3(t)
	var tenants []string
	for i := range 12 {
		name := fmt.Sprintf("t%02d", i)
		tenants = append(tenants, name)
		f.put(t, ltxKey(name, 0, 1, uint64(i+1)))
	}
	tenants = append(tenants, "bad\x1b")

	t.Run("bounded", func(t *testing.T) {
		spy := &spyAPI{API: f.client, delay: 20 * time.Millisecond}
		seen := map[string]int{}
		var active, peakFn int
		InspectMany(context.Background(), spy, f.conn, tenants, 3, func(name string, tn *Tenant, err error) {
			active++ // not atomic on purpose: -race catches overlapping calls
			peakFn = max(peakFn, active)
			seen[name]++
			switch {
			case name == "bad\x1b":
				if !errors.Is(err, ErrInvalidName) {
					t.Errorf("%s: err %v", untrusted.Printable(name), err)
				}
			case err != nil || tn.Name != name || tn.LatestTXID == 0:
				t.Errorf("%s: %+v, %v", name, tn, err)
			}
			active--
		})
		if len(seen) != len(tenants) {
			t.Errorf("reported %d tenants, want %d", len(seen), len(tenants))
		}
		for name, n := range seen {
			if n != 1 {
				t.Errorf("%s reported %d times", name, n)
			}
		}
		if spy.peak > 3 || spy.peak < 2 {
			t.Errorf("peak %d requests in flight, want 2..3", spy.peak)
		}
		if peakFn != 1 {
			t.Errorf("fn ran %d at a time", peakFn)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var mu sync.Mutex
		n := 0
		InspectMany(ctx, f.client, f.conn, tenants, 0, func(name string, tn *Tenant, err error) {
			mu.Lock()
			defer mu.Unlock()
			n++
			if err == nil {
				t.Errorf("%s: no error after cancel", name)
			}
		})
		if n != len(tenants) {
			t.Errorf("reported %d tenants, want %d", n, len(tenants))
		}
	})
}
