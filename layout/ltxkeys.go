package layout

import (
	"errors"
	"strconv"
	"strings"

	"github.com/superfly/ltx"
)

// SnapshotLevel is the LTX level that holds full snapshots
// (litestream.SnapshotLevel).
const SnapshotLevel = 9

// KeyKind says what a key under a tenant's path is.
type KeyKind int

const (
	KeyUnknown    KeyKind = iota
	KeyFolder             // a zero-byte "folder/" marker made by consoles; not data
	KeyLease              // lock.json
	KeyLineage            // lineage.json (LineageFile)
	KeyLTX                // v0.5: <level %04x>/<min %016x>-<max %016x>.ltx
	KeySnapshotV3         // v0.3: generations/<gen>/snapshots/<idx %08x>.snapshot.lz4
	KeyWALV3              // v0.3: generations/<gen>/wal/<idx %08x>_<off %08x>.wal.lz4
)

// TenantKey is a key under a tenant's path, parsed from its name alone.
type TenantKey struct {
	Kind             KeyKind
	Level            int    // KeyLTX
	MinTXID, MaxTXID uint64 // KeyLTX
	Generation       string // KeySnapshotV3, KeyWALV3
	Index            int    // KeySnapshotV3, KeyWALV3
	Offset           int64  // KeyWALV3
}

// ParseTenantKey classifies rest, a key with "<prefix>/<tenant>/" removed.
// The formats follow what Litestream's own readers accept, so that anything
// counted here is something `litestream restore` would use; anything else is
// KeyUnknown, never an error.
func ParseTenantKey(rest string, size int64) TenantKey {
	if rest == "" || (strings.HasSuffix(rest, "/") && size == 0) {
		return TenantKey{Kind: KeyFolder}
	}
	if rest == ClaimFile {
		return TenantKey{Kind: KeyLease}
	}
	if rest == LineageFile {
		return TenantKey{Kind: KeyLineage}
	}
	parts := strings.Split(rest, "/")
	switch len(parts) {
	case 2:
		return parseLTXKey(parts[0], parts[1], size)
	case 4:
		if parts[0] == "generations" && isLowerHex(parts[1], 16) {
			switch parts[2] {
			case "snapshots":
				return parseSnapshotV3(parts[1], parts[3])
			case "wal":
				return parseWALV3(parts[1], parts[3])
			}
		}
	}
	return TenantKey{}
}

// KnownTenantKey reports whether rest, a key with "<prefix>/<tenant>/"
// removed (and its size), is one Inspect counts as Litestream's or
// litefleet's; anything else is an unknown object.
func KnownTenantKey(rest string, size int64) bool {
	return ParseTenantKey(rest, size).Kind != KeyUnknown
}

// LTXObject is the one rule for what an object under a tenant's prefix
// must be to count as an LTX file, for every reader: the inventory (ls,
// inspect), the replica client's manifest and restore. Keys and sizes read
// from S3 are untrusted: a level folder that is not four lower-case hex
// digits or is above the snapshot level, a file name that is not
// MIN-MAX.ltx with 0 < MIN <= MAX, or an object too small to hold an LTX
// header and trailer (size < 0: unknown, not checked) is not one. Such an
// object is an unknown object (ls counts them), never a restore point.
func LTXObject(levelDir, file string, size int64) (level int, minTXID, maxTXID ltx.TXID, ok bool) {
	if !isLowerHex(levelDir, 4) {
		return 0, 0, 0, false
	}
	l, err := strconv.ParseUint(levelDir, 16, 16)
	if err != nil || l > SnapshotLevel {
		return 0, 0, 0, false
	}
	minTXID, maxTXID, err = ltx.ParseFilename(file)
	if err != nil || minTXID == 0 || minTXID > maxTXID {
		return 0, 0, 0, false
	}
	if size >= 0 && size < ltx.HeaderSize+ltx.TrailerSize {
		return 0, 0, 0, false
	}
	return int(l), minTXID, maxTXID, true
}

// parseLTXKey parses the level folder and file name of a v0.5 LTX file, as
// written by litestream's s3.ReplicaClient (fmt "%04x/" + ltx.FormatFilename).
func parseLTXKey(levelDir, file string, size int64) TenantKey {
	level, minTXID, maxTXID, ok := LTXObject(levelDir, file, size)
	if !ok {
		return TenantKey{}
	}
	return TenantKey{Kind: KeyLTX, Level: level, MinTXID: uint64(minTXID), MaxTXID: uint64(maxTXID)}
}

// parseSnapshotV3 mirrors litestream.ParseSnapshotFilenameV3:
// ^([0-9a-f]{8})\.snapshot\.lz4$ with an index that fits an int32.
func parseSnapshotV3(gen, file string) TenantKey {
	idx, ok := strings.CutSuffix(file, ".snapshot.lz4")
	if !ok || !isLowerHex(idx, 8) {
		return TenantKey{}
	}
	index, err := strconv.ParseInt(idx, 16, 32)
	if err != nil {
		return TenantKey{}
	}
	return TenantKey{Kind: KeySnapshotV3, Generation: gen, Index: int(index)}
}

// parseWALV3 mirrors litestream.ParseWALSegmentFilenameV3:
// ^([0-9a-f]{8})_([0-9a-f]{8,16})\.wal\.lz4$ with an int32 index.
func parseWALV3(gen, file string) TenantKey {
	base, ok := strings.CutSuffix(file, ".wal.lz4")
	if !ok {
		return TenantKey{}
	}
	idx, off, ok := strings.Cut(base, "_")
	if !ok || !isLowerHex(idx, 8) || len(off) < 8 || len(off) > 16 || !isLowerHex(off, len(off)) {
		return TenantKey{}
	}
	index, err := strconv.ParseInt(idx, 16, 32)
	if err != nil {
		return TenantKey{}
	}
	offset, err := strconv.ParseInt(off, 16, 64)
	if err != nil {
		return TenantKey{}
	}
	return TenantKey{Kind: KeyWALV3, Generation: gen, Index: int(index), Offset: offset}
}

// isLowerHex reports whether s is exactly n lowercase hex digits, the only
// case Litestream writes and reads.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// TXIDHex formats a TXID the way LTX file names and `litestream restore
// -txid` spell it.
func TXIDHex(txid uint64) string { return ltx.TXID(txid).String() }

// ParseTXID reads a TXID as LTX file names spell it (16 hex digits), as
// 0x…, or as a decimal number. TXIDs start at 1.
func ParseTXID(s string) (uint64, error) {
	var v uint64
	var err error
	switch {
	case strings.HasPrefix(s, "0x"):
		v, err = strconv.ParseUint(s[2:], 16, 64)
	case len(s) == 16:
		v, err = strconv.ParseUint(s, 16, 64)
	default:
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, errors.New("write 16 hex digits as in LTX file names (0000000000000a3f), 0x…, or a decimal number")
	}
	if v == 0 {
		return 0, errors.New("TXIDs start at 1")
	}
	return v, nil
}
