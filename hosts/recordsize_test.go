package hosts

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// fleetRecord is a host record of n tenants as a busy host has them:
// random GUIDs, TXIDs in the thousands to millions, syncs over the last
// day, most tenants asleep, a few lagging or failed.
func fleetRecord(n int) *Record {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	r := &Record{Host: "web-1", Version: "v1.2.3", Started: now.Add(-72 * time.Hour), At: now}
	for i := range n {
		g := fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, 0x8000|rng.Uint32()&0x3fff, rng.Uint64()&0xffffffffffff)
		txid := 1000 + rng.Uint64N(2_000_000)
		t := TenantRecord{Name: g, State: "sleeping", Local: txid, Replicated: txid,
			LastSync: now.Add(-time.Duration(rng.IntN(86400)) * time.Second).Unix(),
			Since:    now.Add(-time.Duration(rng.IntN(3*86400)) * time.Second).Unix(),
			Checksum: fmt.Sprintf("%016x", rng.Uint64()|1<<63), // the database's LTX checksum: incompressible
			// replicate -verify-every's last verdict, within the last day
			VerifiedAt: now.Add(-time.Duration(rng.IntN(86400)) * time.Second).Unix(), Verdict: "verified"}
		switch {
		case i%10 == 0:
			t.State = "replicating"
		case i%97 == 0:
			t.State, t.Local, t.LagMillis = "replicating", txid+3, int64(rng.IntN(20000))
		case i%499 == 0:
			t.State, t.Reason = "failed", "open database: permission denied"
		}
		r.Tenants = append(r.Tenants, t)
	}
	return r
}

// The host record of 10,000 tenants stays under 100 bytes a tenant,
// compressed: what `ls` and the terminal UI read of every host.
func TestRecordSizePerTenant(t *testing.T) {
	for _, n := range []int{100, 1000, 10000} {
		body, err := EncodeRecord(fleetRecord(n))
		if err != nil {
			t.Fatal(err)
		}
		per := float64(len(body)) / float64(n)
		t.Logf("host record of %d tenants: %d bytes gzipped, %.1f bytes a tenant", n, len(body), per)
		if n == 10000 && per >= 100 {
			t.Errorf("%.1f bytes a tenant at %d tenants, want under 100", per, n)
		}
	}
}

// A record names each tenant's prefix so that readers of another prefix
// (or of the bucket's root) never take it for theirs.
func TestRecordPrefixKeepsPrefixesApart(t *testing.T) {
	seen := map[string]string{}
	for _, p := range []string{"databases/", "", "staging/", "a/b/"} {
		got := RecordPrefix(p)
		if other, dup := seen[got]; dup {
			t.Errorf("prefixes %q and %q are both recorded as %q", other, p, got)
		}
		seen[got] = p
	}
	if got := RecordPrefix("databases/"); got != "" {
		t.Errorf("the usual prefix is recorded as %q, want it left out", got)
	}
}

// BenchmarkDecodeRecord100000 is what reading a 100,000-tenant host's
// record costs `ls` and the terminal UI, its limits checked (3.6 MiB
// gzipped, 10.8 MiB of JSON).
func BenchmarkDecodeRecord100000(b *testing.B) {
	body, err := EncodeRecord(fleetRecord(100000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r, err := decodeRecord(bytes.NewReader(body), int64(len(body)), "web-1")
		if err != nil || len(r.Tenants) != 100000 {
			b.Fatalf("decoded %v, %v", r, err)
		}
	}
}
