package layout

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/superfly/ltx"
)

// FuzzLTXObject: keys and sizes from S3 are untrusted. What LTXObject
// accepts is exactly what Litestream writes: the key rebuilt from the
// parsed values is the key parsed.
func FuzzLTXObject(f *testing.F) {
	f.Add("0000", "0000000000000001-0000000000000001.ltx", int64(200))
	f.Add("0009", "0000000000000001-00000000000000ff.ltx", int64(-1))
	f.Add("000a", "0000000000000001-0000000000000001.ltx", int64(200))
	f.Add("0000", "ffffffffffffffff-ffffffffffffffff.ltx", int64(5))
	f.Add("0001", "0000000000000002-0000000000000001.ltx", int64(200))
	f.Fuzz(func(t *testing.T, levelDir, file string, size int64) {
		level, minTXID, maxTXID, ok := LTXObject(levelDir, file, size)
		if !ok {
			return
		}
		if level < 0 || level > SnapshotLevel || minTXID == 0 || minTXID > maxTXID {
			t.Fatalf("%q %q: level %d, TXIDs %d-%d", levelDir, file, level, minTXID, maxTXID)
		}
		if size >= 0 && size < ltx.HeaderSize+ltx.TrailerSize {
			t.Fatalf("%q %q: size %d accepted", levelDir, file, size)
		}
		if got := fmt.Sprintf("%04x", level); got != levelDir {
			t.Fatalf("level folder %q rebuilt as %q", levelDir, got)
		}
		if got := ltx.FormatFilename(minTXID, maxTXID); got != file {
			t.Fatalf("file %q rebuilt as %q", file, got)
		}
	})
}

// FuzzParseTenantKey: every key under a tenant's prefix, the v0.3 layout
// (generations/GEN/snapshots|wal/...) included, is classified without a
// panic, and what is classified as a v0.3 file rebuilds to its key.
func FuzzParseTenantKey(f *testing.F) {
	f.Add("generations/0123456789abcdef/snapshots/00000001.snapshot.lz4", int64(10))
	f.Add("generations/0123456789abcdef/wal/00000001_00000000.wal.lz4", int64(10))
	f.Add("generations/0123456789abcdef/wal/7fffffff_0000000000001000.wal.lz4", int64(10))
	f.Add("generations/0123456789abcdef/wal/80000000_00000000.wal.lz4", int64(10))
	f.Add("0000/0000000000000001-0000000000000001.ltx", int64(100))
	f.Add("lock.json", int64(10))
	f.Add("0000/", int64(0))
	f.Fuzz(func(t *testing.T, rest string, size int64) {
		k := ParseTenantKey(rest, size)
		parts := strings.Split(rest, "/")
		switch k.Kind {
		case KeySnapshotV3:
			if k.Index < 0 || parts[1] != k.Generation || parts[3] != fmt.Sprintf("%08x.snapshot.lz4", k.Index) {
				t.Fatalf("%q parsed as %+v", rest, k)
			}
		case KeyWALV3:
			off := parts[3][9 : len(parts[3])-len(".wal.lz4")]
			v, err := strconv.ParseInt(off, 16, 64)
			if k.Index < 0 || k.Offset < 0 || err != nil || v != k.Offset || parts[1] != k.Generation ||
				!strings.HasPrefix(parts[3], fmt.Sprintf("%08x_", k.Index)) {
				t.Fatalf("%q parsed as %+v", rest, k)
			}
		case KeyLTX:
			if len(parts) != 2 || ltx.FormatFilename(ltx.TXID(k.MinTXID), ltx.TXID(k.MaxTXID)) != parts[1] {
				t.Fatalf("%q parsed as %+v", rest, k)
			}
		}
	})
}
