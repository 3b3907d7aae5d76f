package s3browse

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/litefleet/litefleet/s3conn"
)

// mixedBucket puts one tenant of every kind into f and returns the expected
// summaries, by name. Every object is 1 byte but the LTX files, which are
// fakeSize (the least an LTX file can be); object n (from 0) has
// LastModified tN(n).
func mixedBucket(t *testing.T, f *fakeS3) map[string]TenantSummary {
	t.Helper()
	const g1, g2 = "00000000000000a1", "00000000000000b2"
	keys := []string{
		// 0..5: v0.5 tenant with three levels and a lease.
		ltxKey("v5", 0, 5, 5), ltxKey("v5", 0, 6, 7), ltxKey("v5", 1, 1, 7),
		ltxKey("v5", 9, 1, 4), "databases/v5/lock.json", ltxKey("v5", 0, 8, 8),
		// 6..10: v0.3 tenant with two generations.
		snapshotKey("v3", g1, 0), walKey("v3", g1, 0, 0), walKey("v3", g1, 0, 4096),
		snapshotKey("v3", g2, 1), walKey("v3", g2, 1, 0),
		// 11..13: upgraded in place.
		snapshotKey("both", g1, 0), walKey("both", g1, 0, 0), ltxKey("both", 0, 1, 3),
		// 14..15: only unknown objects.
		"databases/junk/notes.txt", "databases/junk/0000/garbage.ltx",
		// 16: a lease and nothing else; 17: a folder marker only.
		"databases/leaseonly/lock.json", "databases/folder/",
		// 18..19: not tenants.
		"databases/stray.txt", "elsewhere/x/lock.json",
	}
	for _, k := range keys {
		body := []byte("x")
		switch {
		case strings.HasSuffix(k, "/"):
			body = nil
		case strings.HasSuffix(k, ".ltx"):
			body = bytes.Repeat([]byte("x"), fakeSize)
		}
		f.putBody(t, k, body)
	}
	v5Levels := []LevelStats{
		{Level: 0, Count: 3, Bytes: 3 * fakeSize, MaxTXID: 8, MaxTXIDHex: "0000000000000008"},
		{Level: 1, Count: 1, Bytes: fakeSize, MaxTXID: 7, MaxTXIDHex: "0000000000000007"},
		{Level: 9, Count: 1, Bytes: fakeSize, MaxTXID: 4, MaxTXIDHex: "0000000000000004"},
	}
	return map[string]TenantSummary{
		"v5": {
			Prefix: Prefix{Name: "v5", Valid: true},
			Totals: Totals{Format: FormatLTX, Objects: 6, Bytes: 5*fakeSize + 1, LatestTXID: 8, LatestTXIDHex: "0000000000000008",
				LatestLTXAt: tN(5), LatestAt: tN(5), Snapshots: 1},
			Levels: v5Levels, HasLease: true, LeaseModifiedAt: tN(4),
		},
		"v3": {
			Prefix: Prefix{Name: "v3", Valid: true},
			Totals: Totals{Format: FormatGenerations, Objects: 5, Bytes: 5, LatestAt: tN(10), Snapshots: 2, WALSegments: 3},
			Levels: []LevelStats{}, Generations: 2,
		},
		"both": {
			Prefix: Prefix{Name: "both", Valid: true},
			Totals: Totals{Format: FormatBoth, Objects: 3, Bytes: fakeSize + 2, LatestTXID: 3, LatestTXIDHex: "0000000000000003",
				LatestLTXAt: tN(13), LatestAt: tN(13), Snapshots: 1, WALSegments: 1},
			Levels:      []LevelStats{{Level: 0, Count: 1, Bytes: fakeSize, MaxTXID: 3, MaxTXIDHex: "0000000000000003"}},
			Generations: 1,
		},
		"junk": {
			Prefix: Prefix{Name: "junk", Valid: true},
			Totals: Totals{Format: FormatUnknown, Objects: 2, Bytes: 1 + fakeSize, UnknownObjects: 2},
			Levels: []LevelStats{},
		},
		"leaseonly": {
			Prefix: Prefix{Name: "leaseonly", Valid: true},
			Totals: Totals{Format: FormatEmpty, Objects: 1, Bytes: 1},
			Levels: []LevelStats{}, HasLease: true, LeaseModifiedAt: tN(16),
		},
		"folder": {
			Prefix: Prefix{Name: "folder", Valid: true},
			Totals: Totals{Format: FormatEmpty},
			Levels: []LevelStats{},
		},
	}
}

func TestScan(t *testing.T) {
	f := newFakeS3(t)
	want := mixedBucket(t, f)
	for _, maxKeys := range []int32{0, 1, 4} {
		t.Run(fmt.Sprint("maxKeys=", maxKeys), func(t *testing.T) {
			spy := &spyAPI{API: f.client, maxKeys: maxKeys}
			got, err := Scan(context.Background(), spy, f.conn)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d summaries, want %d", len(got), len(want))
			}
			for i, s := range got {
				if i > 0 && got[i-1].Name >= s.Name {
					t.Errorf("not sorted: %q before %q", got[i-1].Name, s.Name)
				}
				if !reflect.DeepEqual(s, want[s.Name]) {
					t.Errorf("%s:\n got %+v\nwant %+v", s.Name, s, want[s.Name])
				}
			}
			assertOneListing(t, spy, f.conn.TenantsPrefix())
		})
	}
}

// assertOneListing fails unless every request was a page of the same
// listing of prefix: no request per tenant.
func assertOneListing(t *testing.T, spy *spyAPI, prefix string) {
	t.Helper()
	if spy.gets != 0 {
		t.Errorf("%d GETs, want none", spy.gets)
	}
	for _, p := range spy.prefixes {
		if p != prefix {
			t.Fatalf("listed %q, want only %q", p, prefix)
		}
	}
	if spy.continuationUsed != spy.lists-1 {
		t.Errorf("%d listings, %d continued: want one paginated listing", spy.lists, spy.continuationUsed)
	}
}

func TestScanEmptyBucket(t *testing.T) {
	f := newFakeS3(t)
	got, err := Scan(context.Background(), f.client, f.conn)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Scan = %v, %v; want an empty, non-nil slice", got, err)
	}
}

// TestScanManyKeys checks paging over more than 1,000 keys and tenants and
// that the result does not depend on where pages break.
func TestScanManyKeys(t *testing.T) {
	f := newFakeS3(t)
	const tenants, perTenant = 1100, 3
	var keys []string
	for i := range tenants {
		name := fmt.Sprintf("tenant-%05d", i)
		keys = append(keys, ltxKey(name, 0, 1, 1), ltxKey(name, 0, 2, uint64(2+i)), "databases/"+name+"/lock.json")
	}
	f.put(t, keys...)
	var first []TenantSummary
	for _, maxKeys := range []int32{0, 333} {
		spy := &spyAPI{API: f.client, maxKeys: maxKeys}
		got, err := Scan(context.Background(), spy, f.conn)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tenants {
			t.Fatalf("maxKeys %d: %d tenants, want %d", maxKeys, len(got), tenants)
		}
		pageSize := int(cmp.Or(maxKeys, 1000))
		if want := (tenants*perTenant + pageSize - 1) / pageSize; spy.lists < want || spy.lists > want+1 {
			t.Errorf("maxKeys %d: %d requests, want %d (+1 for an empty last page)", maxKeys, spy.lists, want)
		}
		assertOneListing(t, spy, "databases/")
		for i, s := range got {
			if s.LatestTXID != uint64(2+i) || s.Levels[0].Count != 2 || !s.HasLease || s.Objects != perTenant {
				t.Fatalf("maxKeys %d: %+v", maxKeys, s)
			}
		}
		if first == nil {
			first = got
		} else if !reflect.DeepEqual(first, got) {
			t.Error("summaries differ with page size")
		}
	}
}

// TestScanUntrustedNames: hostile tenant names come out as invalid
// summaries, counted like any other, through gofakes3 (which turns what XML
// cannot carry into U+FFFD) and through raw and URL-encoded listings.
func TestScanUntrustedNames(t *testing.T) {
	hostile := []string{"red\x1b[31m", "bad\xffutf8", "..", ".", "", strings.Repeat("n", 300), "nul\x00"}

	t.Run("gofakes3", func(t *testing.T) {
		f := newFakeS3(t)
		for _, name := range hostile {
			f.put(t, "databases/"+name+"/"+levelDir(0)+"/0000000000000001-0000000000000001.ltx")
		}
		got, err := Scan(context.Background(), &spyAPI{API: f.client, maxKeys: 2}, f.conn)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(hostile) {
			t.Fatalf("got %d summaries, want %d", len(got), len(hostile))
		}
		for _, s := range got {
			if s.Valid || s.Format != FormatLTX || s.LatestTXID != 1 {
				t.Errorf("%s: valid %v format %s txid %d", s.Display(), s.Valid, s.Format, s.LatestTXID)
			}
			assertSafe(t, s.Display())
		}
	})

	t.Run("raw and url-encoded", func(t *testing.T) {
		obj := func(key string) types.Object {
			return types.Object{Key: aws.String(key), Size: aws.Int64(10), LastModified: aws.Time(t0())}
		}
		var raw, encoded []types.Object
		for _, name := range hostile {
			key := "databases/" + name + "/lock.json"
			raw = append(raw, obj(key))
			encoded = append(encoded, obj(url.QueryEscape(key)))
		}
		for _, page := range []*s3.ListObjectsV2Output{
			{Contents: raw},
			{Contents: encoded, EncodingType: types.EncodingTypeUrl},
		} {
			got, err := Scan(context.Background(), &pagesAPI{pages: []*s3.ListObjectsV2Output{page}}, s3conn.Conn{Bucket: "bkt"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(hostile) {
				t.Fatalf("got %d summaries, want %d", len(got), len(hostile))
			}
			for _, s := range got {
				if s.Valid || !s.HasLease || s.Bytes != 10 {
					t.Errorf("%s: %+v", s.Display(), s)
				}
				assertSafe(t, s.Display())
			}
		}
	})
}

func TestScanListError(t *testing.T) {
	f := newFakeS3(t)
	conn := f.conn
	conn.Bucket = "missing"
	_, err := Scan(context.Background(), f.client, conn)
	if err == nil || !strings.Contains(err.Error(), `bucket "missing" does not exist`) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), conn.SecretAccessKey) {
		t.Errorf("error shows the secret: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := Scan(ctx, f.client, f.conn); err == nil {
		t.Error("Scan with an expired context succeeded")
	}
}
