package layout

import (
	"fmt"
	"testing"

	"github.com/superfly/ltx"

	"github.com/litefleet/litefleet/untrusted"
)

func TestParseTenantKey(t *testing.T) {
	const gen = "0123456789abcdef"
	tests := []struct {
		rest string
		size int64
		want TenantKey
	}{
		{"lock.json", 90, TenantKey{Kind: KeyLease}},
		{"0000/0000000000000001-0000000000000001.ltx", 116, TenantKey{Kind: KeyLTX, Level: 0, MinTXID: 1, MaxTXID: 1}},
		{"0009/0000000000000001-00000000000000ff.ltx", 4096, TenantKey{Kind: KeyLTX, Level: 9, MinTXID: 1, MaxTXID: 255}},
		{"generations/" + gen + "/snapshots/00000000.snapshot.lz4", 1, TenantKey{Kind: KeySnapshotV3, Generation: gen}},
		{"generations/" + gen + "/snapshots/0000001f.snapshot.lz4", 1, TenantKey{Kind: KeySnapshotV3, Generation: gen, Index: 31}},
		{"generations/" + gen + "/wal/00000002_00001000.wal.lz4", 1, TenantKey{Kind: KeyWALV3, Generation: gen, Index: 2, Offset: 4096}},
		{"generations/" + gen + "/wal/00000002_0000000000001000.wal.lz4", 1, TenantKey{Kind: KeyWALV3, Generation: gen, Index: 2, Offset: 4096}},
		{"", 0, TenantKey{Kind: KeyFolder}},
		{"generations/", 0, TenantKey{Kind: KeyFolder}},

		// Everything below is unknown: counted, never fatal. The same rule
		// as the replica client's and restore's (LTXObject).
		{"000a/0000000000000001-0000000000000002.ltx", 116, TenantKey{}},                                  // above the snapshot level
		{"0000/0000000000000000-0000000000000002.ltx", 116, TenantKey{}},                                  // TXID 0
		{"0000/0000000000000003-0000000000000002.ltx", 116, TenantKey{}},                                  // min above max
		{"0000/ffffffffffffffff-ffffffffffffffff.ltx", 5, TenantKey{}},                                    // 5 bytes of junk
		{"0000/0000000000000001-0000000000000001.ltx", ltx.HeaderSize + ltx.TrailerSize - 1, TenantKey{}}, // no room for a header and trailer
		{"generations/", 5, TenantKey{}},
		{"lock.json.bak", 1, TenantKey{}},
		{"README", 1, TenantKey{}},
		{"0/0000000000000001-0000000000000001.ltx", 1, TenantKey{}},        // level not %04x
		{"000A/0000000000000001-0000000000000001.ltx", 1, TenantKey{}},     // upper-case hex
		{"0000/0000000000000001-0000000000000001.ltx.tmp", 1, TenantKey{}}, // not .ltx
		{"0000/1-1.ltx", 1, TenantKey{}},
		{"0000/000000000000000G-0000000000000001.ltx", 1, TenantKey{}},
		{"0000/x/0000000000000001-0000000000000001.ltx", 1, TenantKey{}},
		{"generations/" + gen + "/snapshots/00000000.snapshot", 1, TenantKey{}},
		{"generations/" + gen + "/snapshots/80000000.snapshot.lz4", 1, TenantKey{}}, // index beyond int32, as litestream
		{"generations/0123/snapshots/00000000.snapshot.lz4", 1, TenantKey{}},
		{"generations/" + gen + "/wal/00000002_0000100.wal.lz4", 1, TenantKey{}},
		{"generations/" + gen + "/wal/00000002_00000000000010000.wal.lz4", 1, TenantKey{}},
		{"generations/" + gen + "/wal/00000002-00001000.wal.lz4", 1, TenantKey{}},
		{"generations/" + gen + "/other/00000000.snapshot.lz4", 1, TenantKey{}},
		{"generations/" + gen + "/snapshots/a/00000000.snapshot.lz4", 1, TenantKey{}},
		{"\x1b[31m/0000000000000001-0000000000000001.ltx", 1, TenantKey{}},
	}
	for _, tt := range tests {
		t.Run(untrusted.Printable(tt.rest), func(t *testing.T) {
			if got := ParseTenantKey(tt.rest, tt.size); got != tt.want {
				t.Errorf("ParseTenantKey(%q) = %+v, want %+v", tt.rest, got, tt.want)
			}
		})
	}
}

// TestLTXKeyRoundTrip checks the parser against the library's own formatter,
// the one Litestream's S3 client writes keys with.
func TestLTXKeyRoundTrip(t *testing.T) {
	for _, c := range []struct {
		level    int
		min, max uint64
	}{{0, 1, 1}, {1, 1, 100}, {3, 7, 1 << 40}, {9, 1, ^uint64(0)}} {
		rest := levelDir(c.level) + "/" + ltx.FormatFilename(ltx.TXID(c.min), ltx.TXID(c.max))
		got := ParseTenantKey(rest, 116)
		if got.Kind != KeyLTX || got.Level != c.level || got.MinTXID != c.min || got.MaxTXID != c.max {
			t.Errorf("ParseTenantKey(%q) = %+v", rest, got)
		}
	}
	if got := TXIDHex(255); got != "00000000000000ff" {
		t.Errorf("TXIDHex(255) = %q", got)
	}
}

func TestParseTXID(t *testing.T) {
	for in, want := range map[string]uint64{"0000000000000a3f": 0xa3f, "0x10": 16, "42": 42} {
		if got, err := ParseTXID(in); err != nil || got != want {
			t.Errorf("parseTXID(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "", "-1", "g000000000000000", "0x"} {
		if _, err := ParseTXID(in); err == nil {
			t.Errorf("parseTXID(%q) accepted", in)
		}
	}
}

func levelDir(level int) string { return fmt.Sprintf("%04x", level) }
