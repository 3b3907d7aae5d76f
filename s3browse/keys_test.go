package s3browse

import (
	"testing"

	"github.com/superfly/ltx"
)

func TestParseTenantKey(t *testing.T) {
	const gen = "0123456789abcdef"
	tests := []struct {
		rest string
		size int64
		want tenantKey
	}{
		{"lock.json", 90, tenantKey{kind: keyLease}},
		{"0000/0000000000000001-0000000000000001.ltx", 116, tenantKey{kind: keyLTX, level: 0, minTXID: 1, maxTXID: 1}},
		{"0009/0000000000000001-00000000000000ff.ltx", 4096, tenantKey{kind: keyLTX, level: 9, minTXID: 1, maxTXID: 255}},
		{"generations/" + gen + "/snapshots/00000000.snapshot.lz4", 1, tenantKey{kind: keySnapshotV3, generation: gen}},
		{"generations/" + gen + "/snapshots/0000001f.snapshot.lz4", 1, tenantKey{kind: keySnapshotV3, generation: gen, index: 31}},
		{"generations/" + gen + "/wal/00000002_00001000.wal.lz4", 1, tenantKey{kind: keyWALV3, generation: gen, index: 2, offset: 4096}},
		{"generations/" + gen + "/wal/00000002_0000000000001000.wal.lz4", 1, tenantKey{kind: keyWALV3, generation: gen, index: 2, offset: 4096}},
		{"", 0, tenantKey{kind: keyFolder}},
		{"generations/", 0, tenantKey{kind: keyFolder}},

		// Everything below is unknown: counted, never fatal. The same rule
		// as the replica client's and restore's (LTXObject).
		{"000a/0000000000000001-0000000000000002.ltx", 116, tenantKey{}},                                  // above the snapshot level
		{"0000/0000000000000000-0000000000000002.ltx", 116, tenantKey{}},                                  // TXID 0
		{"0000/0000000000000003-0000000000000002.ltx", 116, tenantKey{}},                                  // min above max
		{"0000/ffffffffffffffff-ffffffffffffffff.ltx", 5, tenantKey{}},                                    // 5 bytes of junk
		{"0000/0000000000000001-0000000000000001.ltx", ltx.HeaderSize + ltx.TrailerSize - 1, tenantKey{}}, // no room for a header and trailer
		{"generations/", 5, tenantKey{}},
		{"lock.json.bak", 1, tenantKey{}},
		{"README", 1, tenantKey{}},
		{"0/0000000000000001-0000000000000001.ltx", 1, tenantKey{}},        // level not %04x
		{"000A/0000000000000001-0000000000000001.ltx", 1, tenantKey{}},     // upper-case hex
		{"0000/0000000000000001-0000000000000001.ltx.tmp", 1, tenantKey{}}, // not .ltx
		{"0000/1-1.ltx", 1, tenantKey{}},
		{"0000/000000000000000G-0000000000000001.ltx", 1, tenantKey{}},
		{"0000/x/0000000000000001-0000000000000001.ltx", 1, tenantKey{}},
		{"generations/" + gen + "/snapshots/00000000.snapshot", 1, tenantKey{}},
		{"generations/" + gen + "/snapshots/80000000.snapshot.lz4", 1, tenantKey{}}, // index beyond int32, as litestream
		{"generations/0123/snapshots/00000000.snapshot.lz4", 1, tenantKey{}},
		{"generations/" + gen + "/wal/00000002_0000100.wal.lz4", 1, tenantKey{}},
		{"generations/" + gen + "/wal/00000002_00000000000010000.wal.lz4", 1, tenantKey{}},
		{"generations/" + gen + "/wal/00000002-00001000.wal.lz4", 1, tenantKey{}},
		{"generations/" + gen + "/other/00000000.snapshot.lz4", 1, tenantKey{}},
		{"generations/" + gen + "/snapshots/a/00000000.snapshot.lz4", 1, tenantKey{}},
		{"\x1b[31m/0000000000000001-0000000000000001.ltx", 1, tenantKey{}},
	}
	for _, tt := range tests {
		t.Run(Printable(tt.rest), func(t *testing.T) {
			if got := parseTenantKey(tt.rest, tt.size); got != tt.want {
				t.Errorf("parseTenantKey(%q) = %+v, want %+v", tt.rest, got, tt.want)
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
		got := parseTenantKey(rest, 116)
		if got.kind != keyLTX || got.level != c.level || got.minTXID != c.min || got.maxTXID != c.max {
			t.Errorf("parseTenantKey(%q) = %+v", rest, got)
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
